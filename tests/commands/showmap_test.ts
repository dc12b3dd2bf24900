import assert from "node:assert/strict";
import type { ClusterMap } from "../../lib/state/hpcmap.ts";
import { resolveStatePaths, writeMap } from "../../lib/state/tree.ts";
import { run, spec } from "../../commands/showmap.ts";
import { execute, invoke, sandbox as shared } from "../tools/sandbox.ts";

const sandbox = () => shared("showmap");
const showmap = (argv: string[], env: Record<string, string>) => invoke({ spec, run }, argv, env);

const LAUNCHER = new URL("../../om", import.meta.url).pathname;

const HOWTO: ClusterMap = {
  gateways: 0,
  entries: [
    { base: 0x0a4e, address: "192.168.10.78", count: 1 },
    { base: 0x0adc, address: "192.168.10.220", count: 1 },
    { base: 0x0a56, address: "192.168.10.86", count: 1 },
  ],
};

const TABLE = "My Node-Id: 0x0adc\n\n" +
  "Base Node-Id Address          Count\n" +
  "------------ ---------------- -----\n" +
  "0x0adc       192.168.10.220   1\n" +
  "0x0a4e       192.168.10.78    1\n" +
  "0x0a56       192.168.10.86    1\n";

Deno.test("showmap prints the map in force, own node first", async () => {
  await using box = await sandbox();
  await writeMap(box.paths, 0x0adc, HOWTO);
  assert.deepEqual(await showmap([], box.env), { code: 0, out: TABLE, err: "" });
});

Deno.test("showmap --json gives the same rows", async () => {
  await using box = await sandbox();
  await writeMap(box.paths, 0x0adc, {
    gateways: 1,
    entries: [...HOWTO.entries, { base: 0x0adc, address: "10.0.0.1", count: 0 }],
  });
  const { code, out, err } = await showmap(["--json"], box.env);
  assert.equal(code, 0);
  assert.equal(err, "");
  assert.ok(out.endsWith("}\n"));
  assert.deepEqual(JSON.parse(out), {
    self: 2780,
    selfHex: "0x0adc",
    backend: "userland",
    gateways: 1,
    entries: [
      { base: 2780, baseHex: "0x0adc", address: "192.168.10.220", count: 1 },
      { base: 2638, baseHex: "0x0a4e", address: "192.168.10.78", count: 1 },
      { base: 2646, baseHex: "0x0a56", address: "192.168.10.86", count: 1 },
      { base: 2780, baseHex: "0x0adc", address: "10.0.0.1", count: 0, alias: true },
    ],
  });
});

Deno.test("showmap with no map written says no map is in force, exit 1", async () => {
  await using box = await sandbox();
  assert.deepEqual(await showmap([], box.env), {
    code: 1,
    out: "",
    err: `om showmap: Cannot read the map "${box.env.OM_ROOT}/admin/config": no map in force ` +
      "(is om discover running, or setpe -w done?)\n",
  });
});

Deno.test("showmap --root overrides OM_ROOT; a stray argument exits 2", async () => {
  await using box = await sandbox();
  const other = resolveStatePaths({
    root: `${box.dir}/other`,
    proc: box.env.OM_PROC,
    alpha: false,
  });
  await writeMap(other, 0x0adc, HOWTO);
  assert.equal((await showmap([], box.env)).code, 1);
  assert.deepEqual(await showmap(["--root", `${box.dir}/other`], box.env), {
    code: 0,
    out: TABLE,
    err: "",
  });
  assert.deepEqual(await showmap(["all"], box.env), {
    code: 2,
    out: "",
    err: `om showmap: Cannot use "all": showmap takes no arguments\nTry 'om showmap --help'.\n`,
  });
});

Deno.test("the launcher through a link named showmap behaves like om showmap", async () => {
  await using box = await sandbox();
  await writeMap(box.paths, 0x0adc, HOWTO);
  await Deno.symlink(LAUNCHER, `${box.dir}/showmap`);
  const runIt = (command: string, args: string[], env = box.env) =>
    execute(command, args, { ...env, OM_ALPHA: "" });
  const direct = await runIt(LAUNCHER, ["showmap"]);
  assert.deepEqual(direct, { code: 0, out: TABLE, err: "" });
  assert.deepEqual(await runIt(`${box.dir}/showmap`, []), direct);
  assert.deepEqual(
    await runIt(`${box.dir}/showmap`, ["--json"]),
    await runIt(LAUNCHER, ["showmap", "--json"]),
  );

  const empty = { ...box.env, OM_ROOT: `${box.dir}/empty` };
  const missing = await runIt(`${box.dir}/showmap`, [], empty);
  assert.equal(missing.code, 1);
  assert.equal(missing.out, "");
  assert.match(
    missing.err,
    /^om showmap: Cannot read the map ".*\/empty\/admin\/config": no map/,
  );
  assert.deepEqual(await runIt(LAUNCHER, ["showmap"], empty), missing);
});
