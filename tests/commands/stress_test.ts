/** `om stress` in-process: its help, its usage errors, and what it says before it starts. */
import assert from "node:assert/strict";
import * as stress from "../../commands/stress.ts";
import { writeNodeInfo } from "../../lib/state/nodestate.ts";
import { writeMap } from "../../lib/state/tree.ts";
import { TEST_NAMES } from "../../lib/stress/workload.ts";
import { invoke, sandbox } from "../tools/sandbox.ts";

Deno.test("stress: --help has the options, every workload and examples", async () => {
  const { code, out } = await invoke(stress, ["--help"], {});
  assert.equal(code, 0);
  assert.match(out, /^om stress: the stress test/);
  for (
    const flag of [
      "--duration SECONDS",
      "--jobs N",
      "--interval SECONDS",
      "--tests LIST",
      "--memory MIB",
      "--report FILE",
      "--json",
    ]
  ) {
    assert.ok(out.includes(flag), flag);
  }
  for (const name of TEST_NAMES) assert.match(out, new RegExp(`\\n  ${name} +\\S`), name);
  assert.match(out, /\nExamples:\n {2}\$ om stress\n/);
});

Deno.test("stress: a mistake on the command line exits 2 before anything starts", async () => {
  await using box = await sandbox("stress-usage");
  const usage = async (argv: string[], message: RegExp) => {
    const { code, err } = await invoke(stress, argv, box.env);
    assert.equal(code, 2, err);
    assert.match(err, message);
    assert.match(err, /Try 'om stress --help'\.\n$/);
  };
  await usage(["--duration", "soon"], /Cannot use "soon" for --duration: not a number of seconds/);
  await usage(["--interval", "0.1"], /at least 0\.5 seconds/);
  await usage(["--jobs", "0"], /Cannot use "0" for --jobs: not between 1 and 1000/);
  await usage(["--tests", "awk,gcc"], /Cannot use "gcc" as a test: not one of awk, portfolio/);
  await usage(["--memory", "lots"], /Cannot use "lots" for --memory: not a whole number/);
  await usage(["now"], /Cannot use "now": stress takes no arguments/);
});

Deno.test("stress: without a cluster map, or with one node up, it says why and exits 1", async () => {
  await using box = await sandbox("stress-nomap");
  const none = await invoke(stress, ["--duration", "5"], box.env);
  assert.equal(none.code, 1);
  assert.match(
    none.err,
    /^om stress: Cannot run the stress test: this node has no cluster map in .* \(is om discover running\?\)\n$/,
  );
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "10.0.0.1", count: 2 }],
  });
  const info = {
    load: 0,
    speed: 10000,
    cpus: 1,
    mem: 1 << 30,
    rmem: 1 << 30,
    tmem: 1 << 31,
    util: 0,
  };
  await writeNodeInfo(box.paths.nodes, { id: 1, status: "up", ...info });
  await writeNodeInfo(box.paths.nodes, { id: 2, status: "down", ...info });
  const alone = await invoke(stress, [], box.env);
  assert.equal(alone.code, 1);
  assert.equal(
    alone.err,
    "om stress: Cannot run the stress test: only node 1 is up; moving jobs needs two nodes or more\n",
  );
  assert.equal(alone.out, "");
});
