import assert from "node:assert/strict";
import { MOVE_ERROR_CHARS, MoveLog, UNSAID } from "../../../lib/migration/movelog.ts";

function clockAt(start: number) {
  let now = start;
  return { now: () => now, advance: (ms: number) => now += ms };
}

Deno.test("movelog: a move is entered as it begins, and updated when it ends", () => {
  const clock = clockAt(5000);
  const log = new MoveLog({ now: clock.now });
  assert.equal(log.epoch, 5000);
  assert.equal(log.rev, 0);
  clock.advance(10);
  const move = log.begin({ id: 42, home: 1, from: 1, to: 2 }, { by: "user", uid: 1000 });
  assert.deepEqual(log.since(), [{
    seq: 1,
    rev: 1,
    at: 5010,
    id: 42,
    home: 1,
    from: 1,
    to: 2,
    cause: { by: "user", uid: 1000 },
    result: "moving",
  }]);
  move.ok({ frozenMs: 40.4, totalMs: 312.6 });
  assert.deepEqual(log.since(1), [{
    seq: 1,
    rev: 2,
    at: 5010,
    id: 42,
    home: 1,
    from: 1,
    to: 2,
    cause: { by: "user", uid: 1000 },
    result: "ok",
    frozenMs: 40,
    totalMs: 313,
  }]);
  assert.deepEqual(log.since(2), []);
  // Ended once: a second end changes nothing.
  move.failed({ message: "late", totalMs: 1 });
  assert.equal(log.rev, 2);
});

Deno.test("movelog: a failure keeps its step and a bounded reason", () => {
  const log = new MoveLog({ now: () => 1 });
  const move = log.begin({ id: 7, home: 3, from: 2, to: 3 }, { by: "balancer", node: 2 });
  move.failed({ step: "restore", message: "x".repeat(1000), totalMs: 950 });
  const [entry] = log.since();
  assert.equal(entry.result, "failed");
  assert.equal(entry.step, "restore");
  assert.equal(entry.error?.length, MOVE_ERROR_CHARS);
  assert.equal(entry.totalMs, 950);
  assert.equal(entry.frozenMs, undefined);
  const unsaid = log.begin({ id: 8, home: 3, from: 3, to: 1 }, UNSAID);
  unsaid.failed({ message: "no step", totalMs: 3 });
  assert.equal(log.since(2)[0].step, undefined);
});

Deno.test("movelog: the ring keeps the newest moves; readers ask for what changed since", () => {
  const log = new MoveLog({ now: () => 1, size: 3 });
  const handles = [1, 2, 3, 4, 5].map((id) =>
    log.begin({ id, home: 1, from: 1, to: 2 }, { by: "placement" })
  );
  assert.deepEqual(log.since().map((e) => e.id), [3, 4, 5]);
  // A move dropped from the ring meanwhile is not brought back by its end.
  handles[0].ok({ frozenMs: 1, totalMs: 2 });
  assert.deepEqual(log.since().map((e) => e.id), [3, 4, 5]);
  const rev = log.rev;
  handles[3].ok({ frozenMs: 1, totalMs: 2 });
  assert.deepEqual(log.since(rev).map((e) => [e.id, e.result]), [[4, "ok"]]);
});
