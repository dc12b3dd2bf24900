import assert from "node:assert/strict";
import { parse, renderHelp, UsageError } from "../../lib/cli/parser.ts";
import { bashCompletion, fishCompletion, zshCompletion } from "../../lib/cli/completions.ts";
import { captureContext } from "../../lib/cli/context.ts";
import { loadDeclarations, run, SCRIPTS, spec } from "../../commands/completions.ts";
import { COMMANDS } from "../../commands/index.ts";
import { tempDir } from "../tools/tempdir.ts";

const LAUNCHER = new URL("../../om", import.meta.url).pathname;

async function om(argv: string[]) {
  const ctx = captureContext();
  const code = await run(parse(spec, argv), ctx);
  return { code, stdout: ctx.stdout(), stderr: ctx.stderr() };
}

async function declarations() {
  return await Promise.all(COMMANDS.map(async (c) => (await c.load()).spec));
}

Deno.test("om completions SHELL prints that shell's script for every command", async () => {
  const specs = await declarations();
  assert.deepEqual(await om(["bash"]), { code: 0, stdout: bashCompletion(specs), stderr: "" });
  assert.deepEqual(await om(["zsh"]), { code: 0, stdout: zshCompletion(specs), stderr: "" });
  assert.deepEqual(await om(["fish"]), { code: 0, stdout: fishCompletion(specs), stderr: "" });
  const links = COMMANDS.flatMap((c) => c.links);
  assert.match((await om(["bash"])).stdout, new RegExp(`complete -F _om om ${links.join(" ")}\n`));
});

Deno.test("om completions refuses what it cannot do", async () => {
  const cases: [string[], RegExp][] = [
    [[], /name the shell/],
    [["tcsh"], /"tcsh": the shells are bash, zsh, fish/],
    [["bash", "zsh"], /one argument at most/],
    [["--write", "--check"], /--write with --check/],
  ];
  for (const [argv, message] of cases) {
    await assert.rejects(
      om(argv),
      (e: Error) => e instanceof UsageError && message.test(e.message),
    );
  }
});

Deno.test("om completions --write DIR writes what --check DIR then accepts", async () => {
  await using tmp = await tempDir("completions");
  const dir = tmp.path;
  const written = await om(["--write", dir]);
  assert.equal(written.code, 0);
  assert.equal(written.stdout, SCRIPTS.map((s) => `wrote ${dir}/${s.file}\n`).join(""));
  assert.deepEqual(
    [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
    ["_om", "om.bash", "om.fish"],
  );
  const specs = await declarations();
  assert.equal(await Deno.readTextFile(`${dir}/_om`), zshCompletion(specs));

  const checked = await om(["--check", dir]);
  assert.equal(checked.code, 0);
  assert.match(checked.stdout, /are up to date/);
  assert.equal(checked.stderr, "");

  await Deno.writeTextFile(`${dir}/_om`, "# edited by hand\n", { append: true });
  await Deno.remove(`${dir}/om.fish`);
  const stale = await om(["--check", dir]);
  assert.equal(stale.code, 1);
  assert.equal(stale.stdout, "");
  assert.equal(
    stale.stderr,
    `om completions: ${dir}/_om is stale (not what the declarations generate)\n` +
      `om completions: ${dir}/om.fish is missing\n` +
      `om completions: run 'om completions --write ${dir}' to regenerate\n`,
  );
});

Deno.test("a command that does not load is named", async () => {
  const broken = {
    name: "broken",
    links: [],
    summary: "does not load",
    load: () => Promise.reject(new TypeError("Module not found: commands/broken.ts")),
  };
  await assert.rejects(
    loadDeclarations([...COMMANDS, broken]),
    /^Error: Cannot load the command "broken": Module not found: commands\/broken.ts$/,
  );
});

Deno.test("the help says how to install each script", () => {
  const help = renderHelp(spec);
  for (
    const words of [
      "om completions bash|zsh|fish",
      "/etc/bash_completion.d/om",
      "$fpath",
      "~/.config/fish/completions/om.fish",
      "deno task completions",
    ]
  ) {
    assert.ok(help.includes(words), words);
  }
});

Deno.test("the completion of the real commands works in bash", async () => {
  await using tmp = await tempDir("completions");
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/om.bash`, bashCompletion(await declarations()));
  const driver = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); ' +
    `_om "$1"; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const complete = async (...words: string[]) => {
    const output = await new Deno.Command("bash", {
      args: ["-c", driver, "driver", `${dir}/om.bash`, ...words],
    }).output();
    assert.equal(new TextDecoder().decode(output.stderr), "");
    return new TextDecoder().decode(output.stdout).split("\n").filter((w) => w !== "");
  };
  assert.deepEqual(await complete("om", "completions", ""), ["bash", "zsh", "fish"]);
  assert.deepEqual(await complete("om", "completions", "--w"), ["--write"]);
  assert.deepEqual(await complete("om", ""), [
    ...COMMANDS.map((c) => c.name),
    "--help",
    "--version",
  ]);
  assert.deepEqual(await complete("setpe", "-o"), ["-off"]);
  assert.deepEqual(await complete("omdiscd", "-i", "l"), ["lo"]);
});

Deno.test("om completions --check passes on the committed completions/", async () => {
  const output = await new Deno.Command(LAUNCHER, {
    args: ["completions", "--check"],
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(stderr, "");
  assert.equal(output.code, 0);
  assert.match(new TextDecoder().decode(output.stdout), /completions\/_om/);
});
