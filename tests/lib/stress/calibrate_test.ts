/** Sizing a workload here: doubling until a run takes long enough; a wrong run ends it. */
import assert from "node:assert/strict";
import {
  calibrate,
  CALIBRATION_MS,
  type RunLocal,
  sizeFor,
} from "../../../lib/stress/calibrate.ts";
import { awkLoop, awkLoopSum } from "../../../lib/stress/awkloop.ts";
import { cksum } from "../../../lib/stress/cksum.ts";
import type { JobPlan } from "../../../lib/stress/workload.ts";
import { PARAMS } from "./twin.ts";

/**
 * A stand-in interpreter: each run takes `msPerUnit` per unit of size on its clock, and answers
 * right (or `wrong`).
 */
function fakeRun(msPerUnit: number, wrong = false) {
  let now = 0;
  const sizes: number[] = [];
  const run: RunLocal = (plan: JobPlan) => {
    sizes.push(plan.size);
    now += plan.size * msPerUnit;
    const text = wrong ? "0\n" : plan.expected.kind === "text" ? plan.expected.text : "";
    return Promise.resolve({
      text,
      sum: cksum(new TextEncoder().encode(text)),
      exitCode: 0,
      stderr: wrong ? "awk: oops\n" : "",
    });
  };
  return { run, sizes, clock: { now: () => now } };
}

Deno.test("calibrate: doubles the size until a run takes long enough; the rate is per second", async () => {
  const fake = fakeRun(0.5);
  const result = await calibrate(awkLoop, PARAMS, fake);
  assert.deepEqual(fake.sizes, [50, 100, 200, 400]);
  assert.ok(400 * 0.5 >= CALIBRATION_MS);
  assert.deepEqual(result, { ok: true, rate: 2000 });
  assert.equal(sizeFor(awkLoop, 2000, 3), 6000);
  assert.equal(sizeFor(awkLoop, 2000, 0.001), awkLoop.smallest);
});

Deno.test("calibrate: a workload that computes wrong here is said, with its interpreter's words", async () => {
  const fake = fakeRun(1, true);
  const result = await calibrate(awkLoop, PARAMS, fake);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(fake.sizes, [50]);
  assert.equal(result.actual, `0: line 1 is "0", not "${awkLoopSum(50)}" (awk: oops)`);
  assert.equal(result.expected.size, 50);
});
