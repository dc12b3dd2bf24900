import assert from "node:assert/strict";
import {
  BALANCE_MARGIN,
  type JobView,
  type NodeView,
  placeByLoad,
  placeJob,
  shortOfMemory,
  USHER_KEEP,
} from "../../../lib/balance/placement.ts";
import { type BalanceView, planMove } from "../../../lib/balance/policy.ts";
import { DEFAULT_POLICY } from "../../../lib/jobs/table.ts";

const MiB = 1024 * 1024;

/** An up node with 2 CPUs and 1 GiB of 2 available, not blocking, and the given load. */
const node = (id: number, load: number, more: Partial<NodeView> = {}): NodeView => ({
  id,
  up: true,
  block: false,
  load,
  speed: 10000,
  cpus: 2,
  mem: 1024 * MiB,
  tmem: 2048 * MiB,
  ...more,
});

/** A job without a kind hint, `tasks` runnable (0: its load unknown) and `rss` resident. */
const job = (more: Partial<JobView> = {}): JobView => ({
  id: 7,
  home: 1,
  policy: DEFAULT_POLICY,
  tasks: 0,
  rss: 0,
  ...more,
});

/** Where placeJob sends a job of node 1 (or `from`). */
const target = (
  nodes: readonly NodeView[],
  options: {
    tasks?: number;
    rss?: number;
    from?: number;
    exclude?: number[];
    random?: () => number;
  } = {},
) =>
  placeJob(nodes, job({ tasks: options.tasks ?? 0, rss: options.rss ?? 0 }), {
    from: options.from ?? 1,
    exclude: new Set(options.exclude),
    random: options.random,
  })?.to;

Deno.test("placeJob: the node least loaded per CPU, never the job's own", () => {
  const nodes = [node(1, 200), node(2, 100), node(3, 0), node(4, 60)];
  assert.equal(target(nodes), 3);
  // Per CPU: node 2 has 4 CPUs (25 per CPU), node 3 one (40 per CPU).
  const perCpu = [node(1, 300), node(2, 100, { cpus: 4 }), node(3, 40, { cpus: 1 })];
  assert.equal(target(perCpu), 2);
  // An idle node is not left for another idle one.
  assert.equal(target([node(1, 0), node(2, 0)]), undefined);
});

Deno.test("placeJob: a random pick among the nodes within the margin of the best", () => {
  const nodes = [
    node(1, 400),
    node(2, 20),
    node(3, 20 + 2 * BALANCE_MARGIN),
    node(4, 21),
    node(5, 150),
  ];
  // Nodes 2 (10 per CPU), 3 (20) and 4 (10.5) are within the margin; 5 (75) is not.
  assert.equal(target(nodes, { random: () => 0 }), 2);
  assert.equal(target(nodes, { random: () => 0.4 }), 3);
  assert.equal(target(nodes, { random: () => 0.99 }), 4);
  const seen = new Set<number | undefined>();
  for (let i = 0; i < 30; i++) seen.add(target(nodes));
  assert.ok([...seen].every((id) => id === 2 || id === 3 || id === 4), [...seen].join());
  // Exact ties too.
  const ties = [node(1, 200), node(2, 0), node(3, 0)];
  assert.equal(target(ties, { random: () => 0.2 }), 2);
  assert.equal(target(ties, { random: () => 0.7 }), 3);
});

Deno.test("placeJob: a node without the memory the job needs is skipped", () => {
  const nodes = [node(1, 200), node(2, 0, { mem: 100 * MiB }), node(3, 50)];
  assert.equal(target(nodes, { rss: 200 * MiB }), 3);
  assert.equal(target(nodes, { rss: 100 * MiB }), 2);
  assert.equal(target(nodes, { rss: 2048 * MiB }), undefined);
});

Deno.test("placeJob: down and excluded nodes are skipped", () => {
  const nodes = [node(1, 200), node(2, 0, { up: false }), node(3, 0), node(4, 40)];
  assert.equal(target(nodes), 3);
  assert.equal(target(nodes, { exclude: [3] }), 4);
  assert.equal(target(nodes, { exclude: [3, 4] }), undefined);
});

Deno.test("placeJob: a node that blocks arrivals is never chosen, however idle", () => {
  const nodes = [node(1, 200), node(2, 0, { block: true }), node(3, 50)];
  assert.equal(target(nodes), 3);
  for (const r of [0, 0.5, 0.99]) assert.equal(target(nodes, { random: () => r }), 3);
  assert.equal(target([node(1, 400), node(2, 0, { block: true })]), undefined);
  // Its own node blocking does not keep a job from leaving it.
  assert.equal(target([node(1, 200, { block: true }), node(2, 0)]), 2);
});

Deno.test("placeJob: the target with the job must beat the job's node by the margin", () => {
  // One busy task (100) from node 1 at 150 per CPU: at node T it adds 50 per CPU, and must then
  // leave half of that (25) between T and node 1.
  const busy = (other: number) => target([node(1, 300), node(2, other)], { tasks: 1 });
  assert.equal(busy(120), 2, "110 + 25 < 150");
  assert.equal(busy(149), 2, "124.5 + 25 < 150");
  assert.equal(busy(150), undefined, "125 + 25 = 150 is not less than 150");
  // Node 1 without the job would be at 100 per CPU, node 2 is at 80: not enough to move it.
  assert.equal(busy(160), undefined, "130 + 25 > 150");
  // A small job: at least BALANCE_MARGIN. 0.1 task adds 5 per CPU at T.
  const small = (other: number) => target([node(1, 100), node(2, other)], { tasks: 0.1 });
  assert.equal(small(69), 2, "39.5 + 10 < 50");
  assert.equal(small(70), undefined, "40 + 10 = 50 is not less than 50");
});

Deno.test("placeJob: no node better than the job's node once it counts the job", () => {
  // Node 1 runs the job (100) and nothing else; node 2, idle, would then be as loaded.
  const nodes = [node(1, 100), node(2, 0), node(3, 80)];
  assert.equal(target(nodes, { tasks: 1 }), undefined);
  // A job of unknown load (0 tasks): node 1 counts 50 per CPU, node 2 is better by the margin.
  assert.equal(target(nodes), 2);
  // Equal is not better.
  assert.equal(target([node(1, 100), node(2, 100)]), undefined);
  // The job's node's figures unknown: any target will do.
  assert.equal(target([node(2, 300)]), 2);
  assert.equal(target([]), undefined);
});

Deno.test("placeJob: a job on a node short of memory goes where memory is kept, load or not", () => {
  const short = node(1, 200, { mem: 100 * MiB }); // below a tenth of 2 GiB
  assert.equal(shortOfMemory(short), true);
  assert.equal(shortOfMemory(node(1, 0)), false);
  const busy = node(2, 300);
  const placement = placeJob([short, busy], job({ tasks: 1, rss: 500 * MiB }), { from: 1 });
  assert.equal(placement?.to, 2);
  assert.equal(placement?.reason, "memory");
  // Not to a node that would keep less than USHER_KEEP of its total: then by load, if at all.
  const tight = node(2, 0, { mem: USHER_KEEP * 2048 * MiB + 499 * MiB });
  assert.equal(placeJob([short, tight], job({ rss: 500 * MiB }), { from: 1 })?.reason, "load");
  assert.equal(placeJob([short, busy], job({ tasks: 1, rss: 1024 * MiB }), { from: 1 }), undefined);
});

Deno.test("placeJob: a cpu job counts as one busy task from the start", () => {
  const nodes = [node(1, 100), node(2, 0)];
  assert.equal(target(nodes), 2, "unknown load: node 2 is better");
  const cpu = job({ policy: { ...DEFAULT_POLICY, kind: "cpu" } });
  assert.equal(placeJob(nodes, cpu, { from: 1 }), undefined, "with the job, node 2 is as loaded");
});

Deno.test("placeJob sends a job where planMove would, the job being the one planMove moves", () => {
  let seed = 0.123;
  const random = () => (seed = (seed * 9301 + 0.49297) % 1);
  let compared = 0;
  for (let round = 0; round < 300; round++) {
    const nodes = [1, 2, 3, 4].map((id) =>
      node(id, Math.floor(random() * 400), {
        cpus: 1 + Math.floor(random() * 3),
        speed: [5000, 10000, 20000][Math.floor(random() * 3)],
        mem: Math.floor(random() * 2048) * MiB,
        block: random() < 0.2,
        up: random() < 0.9,
      })
    );
    const one = job({ tasks: 0.5 + random() * 2, rss: Math.floor(random() * 600) * MiB });
    const r = random();
    const view: BalanceView = {
      self: 1,
      now: 0,
      interval: 1000,
      nodes,
      jobs: [one],
      stay: false,
      lstay: false,
      random: () => r,
    };
    const planned = planMove(view);
    const placed = placeJob(nodes, one, { from: 1, random: () => r });
    assert.deepEqual(
      planned && { to: planned.to, reason: planned.reason },
      placed && { to: placed.to, reason: placed.reason },
      JSON.stringify(nodes),
    );
    if (planned) compared++;
  }
  assert.ok(compared > 20, `only ${compared} moves compared`);
});

Deno.test("placeByLoad: the figures of the decision", () => {
  const placement = placeByLoad([node(1, 300), node(2, 100)], job({ tasks: 1 }), { from: 1 });
  assert.deepEqual(placement, {
    to: 2,
    reason: "load",
    loadHere: 100,
    loadThere: 100,
    here: 150,
    there: 100,
  });
});
