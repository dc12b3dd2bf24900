import assert from "node:assert/strict";
import {
  type BalanceView,
  decayFactor,
  JobLoad,
  movable,
  planMove,
  STAY_INTERVALS,
} from "../../../lib/balance/policy.ts";
import { BALANCE_MARGIN, type JobView, type NodeView } from "../../../lib/balance/placement.ts";
import { loadAt as jobLoadAt } from "../../../lib/info/measure.ts";
import { DEFAULT_POLICY } from "../../../lib/jobs/table.ts";

const GiB = 2 ** 30;
const node = (id: number, load: number, extra: Partial<NodeView> = {}): NodeView => ({
  id,
  up: true,
  block: false,
  load,
  speed: 10000,
  cpus: 1,
  mem: 4 * GiB,
  tmem: 8 * GiB,
  ...extra,
});
const job = (id: number, extra: Partial<JobView> = {}): JobView => ({
  id,
  home: 1,
  policy: DEFAULT_POLICY,
  tasks: 1,
  rss: 10 * 2 ** 20,
  ...extra,
});
const view = (extra: Partial<BalanceView>): BalanceView => ({
  self: 1,
  now: 100_000,
  interval: 1000,
  nodes: [],
  jobs: [],
  stay: false,
  lstay: false,
  random: () => 0,
  ...extra,
});

/** Simulates the cluster: nodes of `speeds`, every job on node 1, moves until none is planned. */
function settle(speeds: number[], jobs: number, cpus = 1): { counts: number[]; moves: number } {
  const where = Array.from({ length: jobs }, () => 1);
  let moves = 0;
  let random = 0.37;
  for (let round = 0; round < 200; round++) {
    let moved = false;
    for (let self = 1; self <= speeds.length; self++) {
      const nodes = speeds.map((speed, i) =>
        node(i + 1, jobLoadAt(where.filter((w) => w === i + 1).length, speed), { speed, cpus })
      );
      const here = where.flatMap((w, id) => w === self ? [job(id)] : []);
      const move = planMove(
        view({ self, nodes, jobs: here, random: () => (random = (random * 7.13) % 1) }),
      );
      if (move) {
        where[move.id] = move.to;
        moves++;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return { counts: speeds.map((_, i) => where.filter((w) => w === i + 1).length), moves };
}

Deno.test("balance: 8 jobs on one of 4 equal nodes spread to 2 each, each moved once", () => {
  const { counts, moves } = settle([10000, 10000, 10000, 10000], 8);
  assert.deepEqual(counts, [2, 2, 2, 2]);
  assert.equal(moves, 6);
  // Two CPUs per node: the same.
  assert.deepEqual(settle([10000, 10000, 10000, 10000], 8, 2).counts, [2, 2, 2, 2]);
});

Deno.test("balance: a slow node ends with fewer jobs, a fast one with more", () => {
  const slow = settle([10000, 10000, 10000, 2500], 8).counts;
  assert.ok(slow[3] < Math.min(...slow.slice(0, 3)), `counts ${slow}`);
  const fast = settle([10000, 10000, 10000, 40000], 8).counts;
  assert.ok(fast[3] > Math.max(...fast.slice(0, 3)), `counts ${fast}`);
});

Deno.test("balance: no move when the target would be as loaded as this node", () => {
  // 2 jobs here, 1 there: moving one makes it 1 and 2; no better.
  const nodes = [node(1, 200), node(2, 100)];
  assert.equal(planMove(view({ nodes, jobs: [job(10), job(11)] })), undefined);
  // Within the margin (half a job): no move either.
  const close = [node(1, 300), node(2, 150)];
  assert.equal(planMove(view({ nodes: close, jobs: [job(10), job(11)] })), undefined);
  assert.equal(planMove(view({ nodes: [node(1, 300), node(2, 149)], jobs: [job(10)] }))?.to, 2);
  // Clearly better: the move.
  const better = [node(1, 300), node(2, 100)];
  assert.deepEqual(planMove(view({ nodes: better, jobs: [job(10), job(11), job(12)] })), {
    id: 10,
    to: 2,
    reason: "load",
    loadHere: 100,
    loadThere: 100,
    rss: 10 * 2 ** 20,
    here: 300,
    there: 200,
  });
});

Deno.test("balance: locked jobs, stay, lstay and io jobs stay; guests may leave under lstay", () => {
  const nodes = [node(1, 300), node(2, 0)];
  const locked = job(10, { policy: { ...DEFAULT_POLICY, lock: true } });
  assert.equal(planMove(view({ nodes, jobs: [locked] })), undefined);
  assert.equal(planMove(view({ nodes, jobs: [job(10)], stay: true })), undefined);
  assert.equal(planMove(view({ nodes, jobs: [job(10)], lstay: true })), undefined);
  const guest = job(11, { home: 3 });
  assert.equal(planMove(view({ nodes, jobs: [job(10), guest], lstay: true }))?.id, 11);
  assert.equal(planMove(view({ nodes, jobs: [guest], stay: true })), undefined);
  const io = job(12, { policy: { ...DEFAULT_POLICY, kind: "io" } });
  assert.equal(planMove(view({ nodes, jobs: [io] })), undefined);
  assert.equal(planMove(view({ nodes, jobs: [{ ...io, home: 3 }] }))?.id, 12);
});

Deno.test("balance: a moved job stays put for STAY_INTERVALS intervals", () => {
  const nodes = [node(1, 300), node(2, 0)];
  const arrived = job(10, { since: 100_000 - STAY_INTERVALS * 1000 + 1 });
  assert.equal(movable(view({}), arrived), false);
  assert.equal(planMove(view({ nodes, jobs: [arrived] })), undefined);
  const settled = job(10, { since: 100_000 - STAY_INTERVALS * 1000 });
  assert.equal(planMove(view({ nodes, jobs: [settled] }))?.to, 2);
  // A new job (never moved) may move as soon as its load is known.
  assert.equal(planMove(view({ nodes, jobs: [job(10)] }))?.to, 2);
  assert.equal(planMove(view({ nodes, jobs: [job(10, { tasks: 0.1 })] })), undefined);
  // A cpu job counts as busy from the start.
  const cpu = job(10, { tasks: 0, policy: { ...DEFAULT_POLICY, kind: "cpu" } });
  assert.equal(planMove(view({ nodes, jobs: [cpu] }))?.to, 2);
});

Deno.test("balance: blocked, down, excluded and short-of-memory nodes are not chosen", () => {
  const jobs = [job(10, { rss: GiB })];
  const pick = (other: NodeView, exclude?: Set<number>) =>
    planMove(view({ nodes: [node(1, 300), other, node(3, 100)], jobs, exclude }))?.to;
  assert.equal(pick(node(2, 0)), 2);
  assert.equal(pick(node(2, 0, { block: true })), 3);
  assert.equal(pick(node(2, 0, { up: false })), 3);
  assert.equal(pick(node(2, 0), new Set([2])), 3);
  assert.equal(pick(node(2, 0, { mem: GiB / 2 })), 3);
});

Deno.test("balance: a random pick among the targets within the margin of the best", () => {
  const nodes = [node(1, 500), node(2, 0), node(3, BALANCE_MARGIN), node(4, 50)];
  const seen = new Set<number | undefined>();
  for (const r of [0, 0.3, 0.6, 0.99]) {
    seen.add(planMove(view({ nodes, jobs: [job(10)], random: () => r }))?.to);
  }
  assert.deepEqual([...seen].sort(), [2, 3]);
});

Deno.test("balance: a node short of memory ushers its biggest job, even against load", () => {
  const short = node(1, 100, { mem: GiB / 2 }); // 1/16 of 8 GiB available: below USHER_LOW
  const busy = node(2, 200, { mem: 6 * GiB });
  const jobs = [job(10, { rss: GiB }), job(11, { rss: 3 * GiB })];
  assert.deepEqual(planMove(view({ nodes: [short, busy], jobs })), {
    id: 11,
    to: 2,
    reason: "memory",
    loadHere: 100,
    loadThere: 100,
    rss: 3 * GiB,
    here: 100,
    there: 300,
  });
  // Not to a node that would then be short itself: 3 GiB of 4 leaves less than 20% of 8.
  const tight = node(2, 0, { mem: 4 * GiB });
  assert.equal(planMove(view({ nodes: [short, tight], jobs }))?.id, 10);
});

Deno.test("balance: job load history decays by its factor, normalised", () => {
  const load = new JobLoad();
  assert.equal(load.tasks, 0);
  load.sample(1);
  load.sample(1);
  load.fold(0.5);
  assert.equal(load.tasks, 1);
  load.sample(0);
  load.fold(0.5); // (1 * 0.5 + 0) / (0.5 + 1)
  assert.equal(load.tasks, 1 / 3);
  load.fold(0.5); // no samples: unchanged
  assert.equal(load.tasks, 1 / 3);
  const never = new JobLoad();
  for (const tasks of [1, 0, 1, 0]) {
    never.sample(tasks);
    never.fold(decayFactor("none"));
  }
  assert.equal(never.tasks, 0.5);
  assert.equal(decayFactor("slow"), 0.975);
  assert.equal(decayFactor("fast"), 0.926);
  assert.equal(decayFactor("fast", { slow: 990, fast: 500 }), 0.5);
  // A fast decay forgets a busy past sooner than a slow one.
  const slow = new JobLoad();
  const fast = new JobLoad();
  for (const tasks of [1, 1, 1, 1, 0, 0, 0]) {
    slow.sample(tasks);
    slow.fold(decayFactor("slow"));
    fast.sample(tasks);
    fast.fold(decayFactor("fast"));
  }
  assert.ok(fast.tasks < slow.tasks);
});
