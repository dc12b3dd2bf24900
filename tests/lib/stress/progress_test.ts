/** The progress line: time, jobs, moves, jobs per node. */
import assert from "node:assert/strict";
import { type Progress, progressLine } from "../../../lib/stress/progress.ts";

const progress: Progress = {
  phase: "running",
  elapsedMs: 12_400,
  durationMs: 60_000,
  running: 6,
  done: 2,
  failed: 1,
  movesDone: 3,
  movesFailed: 0,
  balancerMoves: 4,
  perNode: [[1, 2], [2, 3], [3, 1]],
};

Deno.test("progress: elapsed and remaining time, jobs, moves and jobs per node", () => {
  assert.equal(
    progressLine(progress),
    "12 s of 60 (48 left): jobs 6 running, 2 done, 1 failed; moves 3 done, 0 failed, " +
      "4 by the balancer; jobs per node 1:2 2:3 3:1",
  );
  assert.match(progressLine({ ...progress, phase: "calibrating" }), /^sizing the workloads: /);
  assert.match(
    progressLine({ ...progress, phase: "finishing", elapsedMs: 61_000 }),
    /^61 s, waiting for the last jobs: /,
  );
  assert.match(
    progressLine({ ...progress, phase: "stopping", perNode: [] }),
    /^12 s, stopping the jobs: .*jobs per node none$/,
  );
});
