import assert from "node:assert/strict";
import { parse, renderHelp, UsageError } from "../../lib/cli/parser.ts";
import { captureContext } from "../../lib/cli/context.ts";
import { loadKey, parseKeyText } from "../../lib/base/key.ts";
import { run, spec } from "../../commands/keygen.ts";
import { tempDir } from "../tools/tempdir.ts";

const LAUNCHER = new URL("../../om", import.meta.url).pathname;

/** Runs keygen in-process the way main.ts does: usage errors exit 2, other errors 1. */
async function keygen(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const ctx = captureContext();
  let code: number;
  try {
    code = await run(parse(spec, argv), ctx);
  } catch (error) {
    code = error instanceof UsageError ? 2 : 1;
    ctx.err(`om keygen: ${(error as Error).message}\n`);
  }
  return { code, out: ctx.stdout(), err: ctx.stderr() };
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  await using tmp = await tempDir("keygen");
  const dir = tmp.path;
  await body(dir);
}

const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test("keygen: writes a key file of mode 0600 that parses and loads", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cluster.key`;
    const result = await keygen([path]);
    assert.equal(result.code, 0, result.err);
    assert.equal(result.err, "");
    assert.equal(await modeOf(path), 0o600);
    const text = await Deno.readTextFile(path);
    assert.match(text, /^om-cluster-key-v1 [0-9a-f]{64}\n$/);
    assert.equal(parseKeyText(text, path).length, 32);
    const key = await loadKey(path);
    assert.equal(
      result.out,
      `Wrote a new cluster key to ${path} (mode 0600).\n` +
        `Fingerprint: ${key.fingerprint}\n` +
        `Copy this file to every node (e.g. ${path}, mode 0600) and start each one with\n` +
        `  om discover --key ${path}\n` +
        `(or key = ${path} in om.conf). Every node logs the fingerprint at start.\n`,
    );
  });
});

Deno.test("keygen: every key is new", async () => {
  await inTempDir(async (dir) => {
    assert.equal((await keygen([`${dir}/a.key`])).code, 0);
    assert.equal((await keygen([`${dir}/b.key`])).code, 0);
    assert.notEqual(
      await Deno.readTextFile(`${dir}/a.key`),
      await Deno.readTextFile(`${dir}/b.key`),
    );
  });
});

Deno.test("keygen: an existing file is left alone without --force", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cluster.key`;
    await Deno.writeTextFile(path, "precious\n", { mode: 0o644 });
    const result = await keygen([path]);
    assert.equal(result.code, 1);
    assert.equal(result.out, "");
    assert.equal(
      result.err,
      `om keygen: Cannot write cluster key "${path}": it exists ` +
        `(--force replaces it; every node then needs the new key)\n`,
    );
    assert.equal(await Deno.readTextFile(path), "precious\n");
    assert.equal(await modeOf(path), 0o644);
  });
});

Deno.test("keygen: --force replaces the file with a new one of mode 0600, no leftovers", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/cluster.key`;
    await Deno.writeTextFile(path, "old and world-readable\n", { mode: 0o644 });
    await Deno.chmod(path, 0o644);
    for (const flag of ["--force", "-f"]) {
      const before = await Deno.readTextFile(path);
      const result = await keygen([flag, path]);
      assert.equal(result.code, 0, result.err);
      assert.notEqual(await Deno.readTextFile(path), before);
      assert.equal(await modeOf(path), 0o600);
      await loadKey(path);
    }
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["cluster.key"]);
  });
});

Deno.test("keygen: a missing directory is created; a directory as FILE is refused", async () => {
  await inTempDir(async (dir) => {
    const path = `${dir}/etc/om/cluster.key`;
    assert.equal((await keygen([path])).code, 0);
    assert.equal(await modeOf(path), 0o600);
    const result = await keygen(["--force", `${dir}/etc`]);
    assert.equal(result.code, 1);
    assert.match(result.err, /Cannot write cluster key ".*\/etc": it is a directory/);
  });
});

Deno.test("keygen: through the launcher, a relative FILE gets the usual path in the hint", async () => {
  await inTempDir(async (dir) => {
    const output = await new Deno.Command(LAUNCHER, { args: ["keygen", "my.key"], cwd: dir })
      .output();
    const out = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(out, /^Wrote a new cluster key to my\.key \(mode 0600\)\.\n/);
    assert.match(out, /\n {2}om discover --key \/etc\/om\/cluster\.key\n/);
    assert.equal(await modeOf(`${dir}/my.key`), 0o600);
  });
});

Deno.test("keygen: usage errors exit 2", async () => {
  const none = await keygen([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /Cannot write a key: give the FILE to write it to/);
  const two = await keygen(["a.key", "b.key"]);
  assert.equal(two.code, 2);
  assert.match(two.err, /Cannot use "b\.key": keygen writes one FILE/);
  assert.equal((await keygen(["--bogus", "a.key"])).code, 2);
});

Deno.test("keygen: help shows usage, the FILE argument and examples", () => {
  const help = renderHelp(spec);
  assert.match(help, /^om keygen: write a new cluster key file\n/);
  assert.match(help, /om keygen FILE \[--force\]/);
  assert.match(help, /-f, --force/);
  assert.match(help, /\$ om keygen \/etc\/om\/cluster\.key\n/);
  assert.match(help, /\$ om discover --key \/etc\/om\/cluster\.key\n/);
});
