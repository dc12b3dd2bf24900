import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import type { NodeInfo } from "../../../lib/state/nodestate.ts";
import { ClusterCollector, IDLE_CLOSE_MS, replay } from "../../../lib/web/collector.ts";
import type { ChangeEvent } from "../../../lib/web/diff.ts";
import type { JobView } from "../../../lib/web/model.ts";
import type { PeerReport } from "../../../lib/web/poller.ts";
import type { MovesReport } from "../../../lib/web/statuswire.ts";
import { job, move } from "./fixtures.ts";

const FLAGS = { stay: false, lstay: false, block: false, quiet: false };

function info(id: number, load = 100): NodeInfo {
  return {
    id,
    status: "up",
    load,
    speed: 10000,
    cpus: 2,
    mem: 1000,
    rmem: 1000,
    tmem: 4000,
    util: 50,
  };
}

/** A node 1 in a cluster of three, whose other nodes answer what `answers` says. */
function cluster() {
  const clock = new FakeClock(1_000_000);
  const state = {
    members: [1, 2, 3].map((id) => ({ id, address: `10.77.0.${id}` })),
    figures: [info(1), info(2), info(3)],
    ownJobs: [] as JobView[],
    ownMoves: { epoch: 1, rev: 0, moves: [] } as MovesReport,
    ownNet: { rx: 0, tx: 0 },
    polls: [] as { id: number; since: number; epoch: number }[],
    locals: 0,
    idled: 0,
    answers: new Map<number, () => Promise<PeerReport>>(),
  };
  const answer = (id: number): PeerReport => ({
    node: { flags: FLAGS, net: { rx: 1000 * state.polls.length, tx: 0 } },
    jobs: [job(id, 10 * id)],
    moves: { epoch: 7, rev: 0, moves: [] },
  });
  const collector = new ClusterCollector({
    self: { id: 1, address: "10.77.0.1" },
    keyed: true,
    clock,
    interval: () => 1000,
    members: () => state.members,
    figures: () => Promise.resolve(state.figures),
    local: {
      node: () => {
        state.locals++;
        return Promise.resolve({ flags: FLAGS, net: state.ownNet });
      },
      jobs: () => Promise.resolve(state.ownJobs),
      moves: () => Promise.resolve(state.ownMoves),
    },
    poll: (id, _address, since, epoch) => {
      state.polls.push({ id, since, epoch });
      return state.answers.get(id)?.() ?? Promise.resolve(answer(id));
    },
    idle: () => state.idled++,
  }, { historyPoints: 10 });
  return { clock, state, collector };
}

Deno.test("collector: with nobody watching, a tick adds history and asks nobody", async () => {
  const { clock, state, collector } = cluster();
  for (let i = 0; i < 3; i++) {
    clock.advance(1000);
    await collector.tick();
  }
  assert.deepEqual(state.polls, []);
  assert.equal(state.locals, 0);
  assert.equal(collector.gathered, 0);
  assert.deepEqual(collector.history().nodes["2"], [100, 100, 100]);
  assert.equal(collector.history().t.length, 3);
});

Deno.test("collector: a watcher gets a view, then each interval's change; each node asked once per interval", async () => {
  const { clock, state, collector } = cluster();
  const changes: ChangeEvent[] = [];
  const watch = await collector.watch((c) => changes.push(c));
  assert.deepEqual(state.polls.map((p) => p.id), [2, 3]);
  assert.deepEqual(watch.view.nodes.map((n) => [n.id, n.status, n.flags !== null]), [
    [1, "up", true],
    [2, "up", true],
    [3, "up", true],
  ]);
  assert.deepEqual(watch.view.jobs.map((j) => j.key), ["2:20", "3:30"]);
  assert.equal(collector.watchers, 1);

  state.figures = [info(1, 300), info(2), info(3)];
  state.ownJobs = [job(1, 5)];
  clock.advance(1000);
  await collector.tick();
  assert.deepEqual(state.polls.map((p) => p.id), [2, 3, 2, 3]);
  assert.equal(changes.length, 1);
  assert.deepEqual(changes[0].jobs, { set: [job(1, 5)] });
  assert.deepEqual(changes[0].nodes?.set?.find((n) => n.id === 1)?.load, 300);
  // The watcher, applying the changes, shows what the collector holds.
  assert.deepEqual(replay(watch.view, changes), await collector.fresh());

  // A tick sooner than an interval after the last asks nobody again.
  clock.advance(300);
  await collector.tick();
  assert.equal(state.polls.length, 4);
  watch.stop();
  assert.equal(collector.watchers, 0);
  clock.advance(2000);
  await collector.tick();
  assert.equal(state.polls.length, 4, "nobody watches: nobody asked");
});

Deno.test("collector: API requests share one gathering per interval", async () => {
  const { clock, state, collector } = cluster();
  const [a, b] = await Promise.all([collector.fresh(), collector.fresh()]);
  assert.equal(a, b);
  assert.equal(collector.gathered, 1);
  clock.advance(999);
  assert.equal(await collector.fresh(), a);
  assert.equal(state.polls.length, 2);
  clock.advance(1);
  assert.notEqual(await collector.fresh(), a);
  assert.equal(state.polls.length, 4);
});

Deno.test("collector: a node that does not answer delays the view by part of an interval only", async () => {
  const { clock, state, collector } = cluster();
  state.answers.set(3, () => new Promise(() => {}));
  const gathering = collector.fresh();
  // Let the gathering reach its wait, then let the wait run out.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  clock.advance(800);
  const view = await gathering;
  assert.deepEqual(view.unread, [3]);
  assert.deepEqual(view.jobs.map((j) => j.key), ["2:20"]);
  assert.equal(view.nodes.find((n) => n.id === 3)?.flags, null);
  // Still waiting for its answer: not asked again.
  clock.advance(1000);
  await collector.fresh();
  assert.deepEqual(state.polls.map((p) => p.id), [2, 3, 2]);
});

Deno.test("collector: a node that refuses (keyless) or fails is unread; network load from two readings", async () => {
  const { clock, state, collector } = cluster();
  state.answers.set(2, () => Promise.resolve({ node: { flags: FLAGS, net: { rx: 0, tx: 0 } } }));
  state.answers.set(3, () => Promise.reject(new Error("gone")));
  const first = await collector.fresh();
  assert.deepEqual(first.unread, [2, 3]);
  assert.deepEqual(first.nodes.map((n) => n.netIn), [null, null, null]);
  state.ownNet = { rx: 4000, tx: 2000 };
  clock.advance(2000);
  const second = await collector.fresh();
  assert.deepEqual([second.nodes[0].netIn, second.nodes[0].netOut], [2000, 1000]);
});

Deno.test("collector: a node that goes down keeps its moves and loses its jobs; a restarted one's log begins again", async () => {
  const { clock, state, collector } = cluster();
  let epoch = 7;
  let moves = [move(2, 1, { key: "2:7:1" }), move(2, 2, { key: "2:7:2" })];
  state.answers.set(2, () =>
    Promise.resolve({
      node: { flags: FLAGS, net: { rx: 0, tx: 0 } },
      jobs: [job(2, 20, { node: 3 })],
      moves: { epoch, rev: moves.length, moves },
    }));
  const first = await collector.fresh();
  assert.deepEqual(first.moves.map((m) => m.key), ["2:7:2", "2:7:1"]);
  assert.equal(first.nodes.find((n) => n.id === 3)?.jobs, 2, "node 3 runs its own and node 2's");
  assert.deepEqual(state.polls.filter((p) => p.id === 2).map((p) => p.since), [0]);
  assert.deepEqual(state.locals, 1);

  state.figures = [info(1), info(3)];
  state.members = state.members.filter((m) => m.id !== 2);
  clock.advance(1000);
  const down = await collector.fresh();
  const two = down.nodes.find((n) => n.id === 2)!;
  assert.deepEqual([two.status, two.inMap, two.load, two.netIn], ["down", false, 0, null]);
  assert.deepEqual(down.jobs.map((j) => j.key), ["3:30"]);
  assert.equal(down.moves.length, 2);
  assert.deepEqual(down.unread, []);

  epoch = 8;
  moves = [move(2, 1, { key: "2:8:1" })];
  state.figures = [info(1), info(2), info(3)];
  clock.advance(1000);
  const back = await collector.fresh();
  // Asked from where it was, in the log it was of; the restarted node then sends all of its new one.
  assert.deepEqual(state.polls.filter((p) => p.id === 2).map((p) => [p.since, p.epoch]), [
    [0, 0],
    [2, 7],
  ]);
  assert.deepEqual(back.moves.map((m) => m.key), ["2:8:1"]);
});

Deno.test("collector: nobody watching or asking for a while: the connections close, once", async () => {
  const { clock, state, collector } = cluster();
  await collector.fresh();
  clock.advance(IDLE_CLOSE_MS - 1000);
  await collector.tick();
  assert.equal(state.idled, 0);
  clock.advance(1000);
  await collector.tick();
  clock.advance(1000);
  await collector.tick();
  assert.equal(state.idled, 1);
});

Deno.test("collector: a snapshot waits an interval for network load nobody was watching", async () => {
  const { clock, state, collector } = cluster();
  const taking = collector.snapshot();
  for (let i = 0; i < 20; i++) await Promise.resolve();
  state.ownNet = { rx: 1000, tx: 1000 };
  clock.advance(1000);
  const view = await taking;
  assert.equal(view.nodes[0].netIn, 1000);
  assert.equal(collector.gathered, 2);
});
