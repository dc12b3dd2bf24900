import assert from "node:assert/strict";
import { downInfo, type NodeInfo, writeNodeInfo } from "../../../lib/state/nodestate.ts";
import { isUp, mapLists, upFigures } from "../../../lib/views/figures.ts";
import { sandbox } from "../../tools/sandbox.ts";

Deno.test("a node's figures when it is up; down or unknown is an error naming the figure", async () => {
  await using box = await sandbox("figures");
  const nodes = box.paths.nodes;
  const up: NodeInfo = {
    id: 2,
    status: "up",
    load: 5,
    speed: 10000,
    cpus: 1,
    mem: 1,
    rmem: 2,
    tmem: 3,
    util: 4,
  };
  await writeNodeInfo(nodes, up);
  await writeNodeInfo(nodes, downInfo(3));
  assert.equal((await upFigures(nodes, 2, "load")).load, 5);
  assert.deepEqual([await isUp(nodes, 2), await isUp(nodes, 3), await isUp(nodes, 4)], [
    true,
    false,
    false,
  ]);
  await assert.rejects(upFigures(nodes, 3, "speed"), {
    message: "Cannot read the speed of node 3: it is down",
  });
  await assert.rejects(upFigures(nodes, 4, "load"), {
    message: `Cannot read the load of node 4: nothing is known about it (no "${nodes}/4")`,
  });
});

Deno.test("isUp: a node in the map without figures is up; figures saying down win", async () => {
  await using box = await sandbox("figures");
  const nodes = box.paths.nodes;
  const map = {
    gateways: 0,
    entries: [
      { base: 1, address: "10.77.0.1", count: 1 },
      { base: 1, address: "10.77.1.1", count: 0 },
      { base: 10, address: "10.77.0.10", count: 3 },
    ],
  };
  await writeNodeInfo(nodes, downInfo(11));
  assert.deepEqual(
    await Promise.all([1, 10, 11, 12, 13, 2].map((id) => isUp(nodes, id, map))),
    [true, true, false, true, false, false],
  );
  assert.equal(await isUp(nodes, 1), false, "no map, no figures: nothing is known");
  assert.deepEqual([mapLists(map, 1), mapLists(map, 12), mapLists(map, 13)], [true, true, false]);
});
