/** The cluster as om stress reads it: this node, every node's address and figures, CRIU. */
import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import { VERSION } from "../../../lib/base/version.ts";
import { type NodeInfo, writeNodeInfo } from "../../../lib/state/nodestate.ts";
import { writeMap } from "../../../lib/state/tree.ts";
import {
  nodesOf,
  readCluster,
  readMeasuredCluster,
  readSoftware,
  upIds,
} from "../../../lib/stress/cluster.ts";
import { sandbox } from "../../tools/sandbox.ts";

const info = (id: number, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  status: "up",
  load: 0,
  speed: 12000,
  cpus: 4,
  mem: 2 * 1024 ** 3,
  rmem: 3 * 1024 ** 3,
  tmem: 4 * 1024 ** 3,
  util: 0,
  ...extra,
});
const MAP = {
  gateways: 0,
  entries: [{ base: 1, address: "10.0.0.1", count: 3 }, { base: 9, address: "10.0.9.9", count: 1 }],
};

Deno.test("cluster: every node of the map or the figures, with its address; up by figures or map", () => {
  const nodes = nodesOf(MAP, [info(1), info(2, { status: "down" }), info(12)]);
  assert.deepEqual(nodes.map((n) => [n.id, n.address, n.up, n.measured, n.cpus]), [
    [1, "10.0.0.1", true, true, 4],
    [2, "10.0.0.2", false, false, 4],
    [3, "10.0.0.3", true, false, 0],
    [9, "10.0.9.9", true, false, 0],
    [12, undefined, true, true, 4],
  ]);
  assert.deepEqual(upIds({ self: 1, nodes }), [1, 3, 9, 12]);
});

Deno.test("cluster: no map is said; the figures that come late are waited for", async () => {
  await using box = await sandbox("stress-cluster");
  await assert.rejects(
    () => readCluster(box.paths),
    /no cluster map in .* \(is om discover running\?\)/,
  );
  await writeMap(box.paths, 2, MAP);
  await writeNodeInfo(box.paths.nodes, info(1));
  const first = await readCluster(box.paths);
  assert.equal(first.self, 2);
  assert.equal(first.nodes.find((n) => n.id === 2)?.measured, false);
  // The others' figures arrive while om stress waits (its clock's sleep lets them).
  const clock = new FakeClock();
  const late = {
    now: () => clock.now(),
    sleep: async (ms: number) => {
      for (const id of [2, 3, 9]) await writeNodeInfo(box.paths.nodes, info(id));
      clock.advance(ms);
    },
  };
  const view = await readMeasuredCluster(box.paths, late, 5000);
  assert.ok(view.nodes.every((n) => n.measured), JSON.stringify(view.nodes));
  assert.ok(clock.now() - 1_000_000 < 5000);
  // Figures that never come: the view as it is, at the deadline.
  await Deno.remove(`${box.paths.nodes}/3`, { recursive: true });
  const still = {
    now: () => clock.now(),
    sleep: (ms: number) => Promise.resolve(clock.advance(ms)),
  };
  const start = clock.now();
  const partial = await readMeasuredCluster(box.paths, still, 1000);
  assert.equal(partial.nodes.find((n) => n.id === 3)?.measured, false);
  assert.ok(clock.now() - start >= 1000);
});

Deno.test("cluster: the daemon's CRIU and its version, else ours, else none", async () => {
  await using box = await sandbox("stress-software");
  const criu = await box.file("criu", "#!/bin/sh\necho Version: 4.1.1\n");
  await Deno.chmod(criu, 0o755);
  // The daemon's environment names it (its pid file, its /proc/PID/environ).
  await Deno.mkdir(`${box.dir}/root`, { recursive: true });
  await Deno.writeTextFile(`${box.dir}/root/omdiscd.pid`, "4242\n");
  await Deno.mkdir(`${box.dir}/proc/4242`, { recursive: true });
  await Deno.writeTextFile(`${box.dir}/proc/4242/environ`, `PATH=/nowhere\0OM_CRIU=${criu}\0`);
  const settings = { root: `${box.dir}/root`, proc: `${box.dir}/proc` };
  const now = () => 0;
  const software = await readSoftware(settings, () => undefined, now);
  assert.deepEqual(software, { om: VERSION, kernel: Deno.osRelease(), criu: `4.1.1 (${criu})` });
  // The daemon has none on its PATH: said so, whatever ours has.
  await Deno.writeTextFile(`${box.dir}/proc/4242/environ`, "PATH=/nowhere\0");
  const none = await readSoftware(settings, (name) => name === "OM_CRIU" ? criu : undefined, now);
  assert.equal(none.criu, "none found (no OM_CRIU and no criu on om discover's PATH)");
  // No daemon to read: ours.
  await Deno.remove(`${box.dir}/root/omdiscd.pid`);
  const ours = await readSoftware(settings, (name) => name === "OM_CRIU" ? criu : undefined, now);
  assert.equal(ours.criu, `4.1.1 (${criu})`);
});
