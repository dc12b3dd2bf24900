/** The verdict: passed only if every job was right, none lost, every move om stress asked for done. */
import assert from "node:assert/strict";
import { summaryLine, verdictOf } from "../../../lib/stress/verdict.ts";
import { job, move, runOf } from "./fixture.ts";

Deno.test("verdict: every job right, every move done: passed, with the counts", () => {
  const run = runOf(
    [job(1, { balancerMoves: 2, nodes: [1, 2, 3, 1] }), job(2)],
    [move(1), move(2, { job: 4702 }), move(3, { by: "balancer", frozenMs: undefined })],
  );
  const verdict = verdictOf(run);
  assert.deepEqual(verdict, {
    passed: true,
    jobs: 2,
    right: 2,
    wrongResults: 0,
    lost: 0,
    timedOut: 0,
    stopped: 0,
    skipped: 0,
    // The balancer's moves: as many as the jobs' counters say, when more than were seen.
    migrations: 4,
    stressMigrations: 2,
    balancerMigrations: 2,
    failedMigrations: 0,
    notNeeded: 0,
    reasons: [],
  });
  assert.equal(
    summaryLine(verdict),
    "PASSED: 2 jobs (2 right, 0 wrong, 0 lost); 4 moves done (2 by om stress, 2 by the balancer), 0 failed",
  );
});

Deno.test("verdict: a move that failed safely fails the run, with its step; jobs still right", () => {
  const verdict = verdictOf(runOf([job(1)], [
    move(1),
    move(2, { outcome: "failed", step: "restore", error: "restore failed on node 2" }),
    move(3, { outcome: "failed", step: "restore" }),
    move(4, { outcome: "failed" }),
  ]));
  assert.equal(verdict.passed, false);
  assert.equal(verdict.failedMigrations, 3);
  assert.equal(verdict.right, 1);
  assert.deepEqual(verdict.reasons, ["3 moves that om stress asked for failed (restore, no step)"]);
  assert.match(
    summaryLine(verdict),
    /^FAILED: 3 moves that om stress asked for failed \(restore, no step\)\. 1 job \(1 right/,
  );
});

Deno.test("verdict: a move not made because the job ended or the balancer moved it is no failure", () => {
  const verdict = verdictOf(runOf([job(1)], [
    move(1),
    move(2, { outcome: "job ended", step: "dump" }),
    move(3, { outcome: "overtaken" }),
  ]));
  assert.equal(verdict.passed, true);
  assert.equal(verdict.notNeeded, 2);
  assert.equal(verdict.failedMigrations, 0);
});

Deno.test("verdict: a wrong result, a lost job, a timeout, an interruption each fail it", () => {
  const one = (extra: Parameters<typeof job>[1], interrupted = false) =>
    verdictOf(runOf([job(1), job(2, extra)], [move(1)], { interrupted }));
  assert.deepEqual(one({ status: "wrong", test: "eatmem" }).reasons, [
    "1 job ended with a wrong result (eatmem)",
  ]);
  assert.deepEqual(one({ status: "lost" }).reasons, ["1 job was lost"]);
  assert.deepEqual(one({ status: "timed out" }).reasons, [
    "1 job did not end in time and was stopped",
  ]);
  const stopped = one({ status: "stopped" }, true);
  assert.deepEqual(stopped.reasons, ["the run was interrupted before its end"]);
  assert.equal(stopped.stopped, 1);
  assert.equal(one({ status: "wrong" }).wrongResults, 1);
  assert.equal(one({ status: "lost" }).lost, 1);
});

Deno.test("verdict: skipped workloads do not fail it, but a run where nothing moved does", () => {
  const skipped = job(2, { status: "skipped", command: [], nodes: [], pid: undefined });
  const verdict = verdictOf(runOf([job(1), skipped], [move(1)]));
  assert.equal(verdict.passed, true);
  assert.equal(verdict.skipped, 1);
  assert.equal(verdict.jobs, 1);
  const still = verdictOf(runOf([job(1, { stressMoves: 0, nodes: [1] })], []));
  assert.deepEqual(still.reasons, ["no job moved at all"]);
  assert.deepEqual(verdictOf(runOf([skipped], [])).reasons, ["no job was started"]);
});
