import assert from "node:assert/strict";
import type { NodeInfo } from "../../../lib/state/nodestate.ts";
import { BALANCE_MARGIN, chooseTarget, loadAfterLeaving } from "../../../lib/balance/placement.ts";

const MiB = 1024 * 1024;

/** An up node with 2 CPUs and 1 GiB available, and the given load. */
const node = (id: number, load: number, more: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  status: "up",
  load,
  speed: 10000,
  cpus: 2,
  mem: 1024 * MiB,
  rmem: 1024 * MiB,
  tmem: 2048 * MiB,
  util: 0,
  ...more,
});

Deno.test("chooseTarget: the node least loaded per CPU, never the current one", () => {
  const nodes = [node(1, 200), node(2, 100), node(3, 0), node(4, 60)];
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0 }), 3);
  // Per CPU: node 2 has 4 CPUs (25 per CPU), node 3 one (40 per CPU).
  const perCpu = [node(1, 300), node(2, 100, { cpus: 4 }), node(3, 40, { cpus: 1 })];
  assert.equal(chooseTarget(perCpu, { current: 1, needMem: 0 }), 2);
  // An idle current node is not left for another idle one.
  assert.equal(chooseTarget([node(1, 0), node(2, 0)], { current: 1, needMem: 0 }), undefined);
});

Deno.test("chooseTarget: a random pick among the nodes within the margin of the best", () => {
  const nodes = [
    node(1, 400),
    node(2, 20),
    node(3, 20 + 2 * BALANCE_MARGIN),
    node(4, 21),
    node(5, 150),
  ];
  // Nodes 2 (10 per CPU), 3 (20) and 4 (10.5) are within the margin; 5 (75) is not.
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, random: () => 0 }), 2);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, random: () => 0.4 }), 3);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, random: () => 0.99 }), 4);
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 30; i++) seen.add(chooseTarget(nodes, { current: 1, needMem: 0 }));
  assert.ok([...seen].every((id) => id === 2 || id === 3 || id === 4), [...seen].join());
  // Exact ties too.
  const ties = [node(1, 200), node(2, 0), node(3, 0)];
  assert.equal(chooseTarget(ties, { current: 1, needMem: 0, random: () => 0.2 }), 2);
  assert.equal(chooseTarget(ties, { current: 1, needMem: 0, random: () => 0.7 }), 3);
});

Deno.test("chooseTarget: a node without the memory the job needs is skipped", () => {
  const nodes = [node(1, 200), node(2, 0, { mem: 100 * MiB }), node(3, 50)];
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 200 * MiB }), 3);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 100 * MiB }), 2);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 2048 * MiB }), undefined);
});

Deno.test("chooseTarget: down and excluded nodes are skipped", () => {
  const nodes = [
    node(1, 200),
    { ...node(2, 0), status: "down" as const },
    node(3, 0),
    node(4, 40),
  ];
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0 }), 3);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, exclude: [3] }), 4);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, exclude: [3, 4] }), undefined);
});

Deno.test("chooseTarget: no node better than the current one once the job has left", () => {
  // Node 1 runs the job (100) and nothing else: 0 per CPU after it leaves; node 2 is idle too.
  const nodes = [node(1, 100), node(2, 0), node(3, 80)];
  assert.equal(loadAfterLeaving(nodes, 1, 100), 0);
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0, jobLoad: 100 }), undefined);
  // Without the job's share the current node counts 50 per CPU: node 2 is better.
  assert.equal(chooseTarget(nodes, { current: 1, needMem: 0 }), 2);
  // Equal is not better.
  assert.equal(chooseTarget([node(1, 100), node(2, 100)], { current: 1, needMem: 0 }), undefined);
  // The current node's figures unknown: any candidate will do.
  assert.equal(chooseTarget([node(2, 300)], { current: 1, needMem: 0 }), 2);
  assert.equal(chooseTarget([], { current: 1, needMem: 0 }), undefined);
});
