/**
 * `om completions`: prints the bash, zsh or fish completion script, writes the committed copies
 * in completions/, or checks that those are current (the CI runs `om completions --check`).
 * The scripts are generated from every command's declaration by lib/cli/completions.ts.
 */
import type { CommandSpec, Parsed } from "../lib/cli/parser.ts";
import { UsageError } from "../lib/cli/parser.ts";
import { bashCompletion, fishCompletion, zshCompletion } from "../lib/cli/completions.ts";
import type { Context } from "../lib/cli/context.ts";
import { type CommandMeta, COMMANDS, meta } from "./index.ts";

/**
 * The scripts and the names they are committed under. zsh's is `_om`: zsh autoloads a
 * completion function from the file of the same name in $fpath, so that is the name it must
 * have when installed, and the committed copy carries it already.
 */
export const SCRIPTS = [
  { shell: "bash", file: "om.bash", generate: bashCompletion },
  { shell: "zsh", file: "_om", generate: zshCompletion },
  { shell: "fish", file: "om.fish", generate: fishCompletion },
] as const;

const LINKS = COMMANDS.flatMap((c) => c.links);

/** completions/ beside main.ts. */
const DEFAULT_DIR = decodeURIComponent(new URL("../completions", import.meta.url).pathname);

export const spec: CommandSpec = {
  ...meta("completions"),
  usage: [
    "om completions bash|zsh|fish",
    "om completions --write [DIR]",
    "om completions --check [DIR]",
  ],
  description:
    `The scripts are generated from the commands' declarations, so they complete exactly the
commands, verbs and flags om parses, and the values of those flags (files, network interfaces,
host names, fixed words). They also complete om's link names (${LINKS.join(", ")}).
completions/ in the repository holds the copies that are committed; after changing a command's
options run 'deno task completions' (om completions --write), and the tests run --check.

Install:
  bash  copy completions/om.bash to /etc/bash_completion.d/om, or source it from ~/.bashrc
  zsh   copy completions/_om into a directory of $fpath, e.g. /usr/local/share/zsh/site-functions
        (zsh finds a completion function by its file name, hence _om), then start a new shell;
        remove ~/.zcompdump if compinit still has the old list
  fish  copy completions/om.fish to ~/.config/fish/completions/om.fish; fish loads a completion
        file by command name, so for the link names link it there as NAME.fish too`,
  options: [
    {
      name: "write",
      flags: ["--write"],
      help: "write om.bash, _om and om.fish into DIR (default: completions/ beside main.ts)",
    },
    {
      name: "check",
      flags: ["--check"],
      help: "exit 1, naming them, when the scripts in DIR are not the ones generated now",
    },
  ],
  args: [
    {
      name: "SHELL|DIR",
      help: "the shell whose script to print; with --write or --check, the directory",
      complete: SCRIPTS.map((s) => s.shell),
    },
  ],
  examples: [
    {
      command: "om completions bash > /etc/bash_completion.d/om",
      says: "installs the bash completion of om and its link names",
    },
    {
      command: "om completions zsh > /usr/local/share/zsh/site-functions/_om",
      says: "installs the zsh completion (any directory of $fpath will do)",
    },
    {
      command: "om completions fish > ~/.config/fish/completions/om.fish",
      says: "installs the fish completion",
    },
    {
      command: "deno task completions",
      says: "rewrites completions/ after a command's options changed",
    },
    {
      command: "om completions --check",
      says: "exit 1 and names completions/_om if it is stale",
    },
  ],
};

/** Every command's declaration, in the order `om --help` lists them. */
export async function loadDeclarations(
  commands: readonly CommandMeta[] = COMMANDS,
): Promise<CommandSpec[]> {
  const specs: CommandSpec[] = [];
  for (const command of commands) {
    try {
      specs.push((await command.load()).spec);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(`Cannot load the command "${command.name}": ${why}`);
    }
  }
  return specs;
}

async function readIfThere(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const write = parsed.options.write === true;
  const check = parsed.options.check === true;
  if (write && check) throw new UsageError("Cannot use --write with --check: choose one");
  if (parsed.args.length > 1) {
    throw new UsageError(`Cannot use "${parsed.args[1]}": one argument at most`);
  }
  const [arg] = parsed.args;

  if (!write && !check) {
    if (arg === undefined) throw new UsageError("Cannot print a script: name the shell");
    const script = SCRIPTS.find((s) => s.shell === arg);
    if (!script) {
      throw new UsageError(`Cannot print a script for "${arg}": the shells are bash, zsh, fish`);
    }
    ctx.out(script.generate(await loadDeclarations()));
    return 0;
  }

  const dir = arg ?? DEFAULT_DIR;
  // Name the files as the person will look for them: completions/_om in the repository.
  const shown = (file: string) => `${arg ?? "completions"}/${file}`;
  const specs = await loadDeclarations();
  if (write) {
    await Deno.mkdir(dir, { recursive: true });
    for (const script of SCRIPTS) {
      await Deno.writeTextFile(`${dir}/${script.file}`, script.generate(specs));
      ctx.out(`wrote ${shown(script.file)}\n`);
    }
    return 0;
  }

  let stale = 0;
  for (const script of SCRIPTS) {
    const committed = await readIfThere(`${dir}/${script.file}`);
    if (committed === script.generate(specs)) continue;
    stale++;
    ctx.err(
      `om completions: ${shown(script.file)} is ${
        committed === undefined ? "missing" : "stale (not what the declarations generate)"
      }\n`,
    );
  }
  if (stale) {
    const fix = arg === undefined
      ? "'deno task completions' (om completions --write)"
      : `'om completions --write ${arg}'`;
    ctx.err(`om completions: run ${fix} to regenerate\n`);
    return 1;
  }
  ctx.out(`om completions: ${SCRIPTS.map((s) => shown(s.file)).join(", ")} are up to date\n`);
  return 0;
}
