import assert from "node:assert/strict";
import { jsonBytes, jsonOf } from "../../../lib/base/json.ts";
import { FakeClock } from "../../../lib/base/clock.ts";
import type { Peer } from "../../../lib/channel/handshake.ts";
import { JobTable } from "../../../lib/jobs/table.ts";
import { MoveLog } from "../../../lib/migration/movelog.ts";
import { MAX_COMMAND_CHARS, MAX_JOBS_PER_NODE } from "../../../lib/web/model.ts";
import {
  cachedNames,
  commandLine,
  KEY_ONLY,
  NodeStatus,
  readJobsReport,
  readMovesReport,
  readNodeReport,
  sinceOf,
} from "../../../lib/web/statuswire.ts";
import { job, move } from "./fixtures.ts";

const PEER = { address: "10.77.0.2", nodeId: 2 } as unknown as Peer;
const FLAGS = { stay: true, lstay: false, block: false, quiet: false };
const names = (uid: number) =>
  Promise.resolve(uid === 0 ? "root" : uid === 1000 ? "alice" : `uid ${uid}`);

/** A node with two jobs (one moved to node 3, one ended) and one move in its log. */
function fixture() {
  const clock = new FakeClock(1_700_000_000_000);
  const table = new JobTable(clock);
  table.add({ id: 300, home: 1, node: 1, command: ["sleep", "100"], uid: 1000 });
  const moved = table.add({
    id: 301,
    home: 1,
    node: 1,
    command: ["sh", "-c", "echo hi"],
    policy: { lock: true, decay: "slow" },
  });
  moved.node = 3;
  moved.migrations = 2;
  table.finish(300, { code: 0 });
  const moves = new MoveLog({ now: () => clock.now() });
  moves.begin({ id: 301, home: 1, from: 1, to: 3 }, { by: "user", uid: 1000 })
    .ok({ frozenMs: 12, totalMs: 250 });
  const status = new NodeStatus({
    nodeId: 1,
    flags: () => Promise.resolve(FLAGS),
    net: () => ({ rx: 1234, tx: 5678 }),
    jobs: () => table.list(),
    moves,
    userName: names,
  });
  return { status, moves, clock };
}

Deno.test("status.node: the node's flags and network counters", async () => {
  const { status } = fixture();
  const reply = await status.handlers(true).get("status.node")!(new Uint8Array(), PEER);
  assert.deepEqual(jsonOf(reply), { flags: FLAGS, net: { rx: 1234, tx: 5678 } });
  assert.deepEqual(readNodeReport(reply), { flags: FLAGS, net: { rx: 1234, tx: 5678 } });
});

Deno.test("status.jobs: the jobs whose home the node is, as the page shows them", async () => {
  const { status, clock } = fixture();
  const reply = await status.handlers(true).get("status.jobs")!(new Uint8Array(), PEER);
  const jobs = readJobsReport(reply, 1);
  assert.deepEqual(jobs, [
    job(1, 300, {
      user: "alice",
      uid: 1000,
      command: "sleep 100",
      started: clock.now(),
      ended: true,
    }),
    job(1, 301, {
      node: 3,
      command: "sh -c echo hi",
      started: clock.now(),
      migrations: 2,
      locked: true,
    }),
  ]);
});

Deno.test("status.migrations: the log since a revision, keyed by home, epoch and number", async () => {
  const { status, moves, clock } = fixture();
  const handler = status.handlers(true).get("status.migrations")!;
  const all = readMovesReport(await handler(new Uint8Array(), PEER), 1);
  assert.deepEqual(all, {
    epoch: moves.epoch,
    rev: 2,
    moves: [move(1, 1, {
      key: `1:${moves.epoch}:1`,
      at: clock.now(),
      pid: 301,
      to: 3,
      user: "alice",
      frozenMs: 12,
      totalMs: 250,
    })],
  });
  const since = { since: 2, epoch: moves.epoch };
  const none = readMovesReport(await handler(jsonBytes(since), PEER), 1);
  assert.deepEqual(none.moves, []);
  // An asker that knew another log (this daemon restarted) gets all of this one.
  const other = readMovesReport(await handler(jsonBytes({ since: 2, epoch: 1 }), PEER), 1);
  assert.equal(other.moves.length, 1);
  moves.begin({ id: 300, home: 1, from: 1, to: 2 }, { by: "balancer", node: 2 });
  const later = readMovesReport(await handler(jsonBytes(since), PEER), 1);
  assert.deepEqual(later.moves.map((m) => [m.by, m.asker, m.result, m.user]), [
    ["balancer", 2, "moving", null],
  ]);
});

Deno.test("status.*: a keyless node tells its flags, but refuses its jobs and moves", async () => {
  const { status } = fixture();
  const handlers = status.handlers(false);
  assert.ok(await handlers.get("status.node")!(new Uint8Array(), PEER));
  for (const name of ["status.jobs", "status.migrations"]) {
    await assert.rejects(
      () => handlers.get(name)!(new Uint8Array(), PEER),
      (error: Error) => error.message === `Cannot run "${name}" on this node: ${KEY_ONLY}`,
    );
  }
});

Deno.test("status.migrations: a body of the wrong shape is refused, naming the command", () => {
  assert.deepEqual(sinceOf(new Uint8Array()), { since: 0 });
  assert.deepEqual(sinceOf(jsonBytes({})), { since: 0 });
  assert.deepEqual(sinceOf(jsonBytes({ since: 9, epoch: 5 })), { since: 9, epoch: 5 });
  assert.throws(() => sinceOf(new TextEncoder().encode("{")), /status.migrations: not JSON/);
  assert.throws(() => sinceOf(jsonBytes({ since: -1 })), /not a whole number/);
  assert.throws(() => sinceOf(jsonBytes({ since: "3" })), /not a whole number/);
  assert.throws(() => sinceOf(jsonBytes({ epoch: 1.5 })), /not a whole number/);
});

Deno.test("reading replies: wrong shapes are errors", () => {
  const bytes = (v: unknown) => jsonBytes(v);
  assert.throws(() => readNodeReport(new TextEncoder().encode("nope")), TypeError);
  assert.throws(() => readNodeReport(bytes([])), TypeError);
  assert.throws(() => readNodeReport(bytes({ flags: FLAGS, net: { rx: -1, tx: 0 } })), TypeError);
  assert.throws(
    () => readNodeReport(bytes({ flags: { ...FLAGS, quiet: 1 }, net: { rx: 0, tx: 0 } })),
    TypeError,
  );
  assert.throws(() => readJobsReport(bytes({ jobs: "x" }), 1), TypeError);
  assert.throws(() => readMovesReport(bytes({ epoch: 1, rev: 1 }), 1), TypeError);
});

Deno.test("reading replies: jobs of another home, and malformed ones, are left out; texts cut", () => {
  const good = job(4, 10);
  const long = job(4, 11, { command: "x".repeat(5000), user: "u".repeat(500) });
  const jobs = readJobsReport(
    jsonBytes({
      jobs: [
        good,
        long,
        job(5, 12),
        { ...job(4, 13), node: 0 },
        { ...job(4, 14), locked: "yes" },
        null,
        { ...job(4, 15), pid: 0 },
      ],
    }),
    4,
  );
  assert.deepEqual(jobs.map((j) => j.key), ["4:10", "4:11"]);
  assert.equal(jobs[1].command.length, MAX_COMMAND_CHARS);
  assert.equal(jobs[1].user.length, 64);
  assert.deepEqual(jobs[0], good);
});

Deno.test("reading replies: at most MAX_JOBS_PER_NODE jobs from one node", () => {
  const many = Array.from({ length: MAX_JOBS_PER_NODE + 50 }, (_, i) => job(2, i + 1));
  assert.equal(readJobsReport(jsonBytes({ jobs: many }), 2).length, MAX_JOBS_PER_NODE);
});

Deno.test("reading replies: moves must carry their home's key and known values", () => {
  const ok = move(3, 1, { key: "3:77:1" });
  const report = readMovesReport(
    jsonBytes({
      epoch: 77,
      rev: 5,
      moves: [
        ok,
        { ...move(3, 2), key: "3:76:2" },
        { ...move(3, 3, { key: "3:77:3" }), home: 4 },
        { ...move(3, 4, { key: "3:77:4" }), by: "somebody" },
        { ...move(3, 5, { key: "3:77:5" }), result: "maybe" },
        { ...move(3, 6, { key: "3:77:6" }), error: "e".repeat(1000), result: "failed" },
      ],
    }),
    3,
  );
  assert.equal(report.epoch, 77);
  assert.equal(report.rev, 5);
  assert.deepEqual(report.moves.map((m) => m.key), ["3:77:1", "3:77:6"]);
  assert.deepEqual(report.moves[0], ok);
  assert.equal(report.moves[1].error?.length, 300);
});

Deno.test("command lines are cut to MAX_COMMAND_CHARS; names are looked up once per uid", async () => {
  assert.equal(commandLine(["a", "b"]), "a b");
  const cut = commandLine(["y".repeat(1000)]);
  assert.equal(cut.length, MAX_COMMAND_CHARS);
  assert.ok(cut.endsWith("..."));
  let lookups = 0;
  const name = cachedNames((uid) => {
    lookups++;
    return uid === 13 ? Promise.reject(new Error("no getent")) : Promise.resolve(`user${uid}`);
  });
  assert.deepEqual(await Promise.all([name(1), name(1), name(2), name(13)]), [
    "user1",
    "user1",
    "user2",
    "uid 13",
  ]);
  assert.equal(lookups, 3);
});
