/** The HOWTO's awk loop: its closed-form sum against the loop, and against awk itself. */
import assert from "node:assert/strict";
import { awkLoop, awkLoopSum, INNER, MODULUS } from "../../../lib/stress/awkloop.ts";
import { canRun, PARAMS, runHere } from "./twin.ts";

Deno.test("awkloop: the closed form is the loop's sum", () => {
  for (const outer of [0, 1, 2, 7, 150]) {
    let s = 0;
    for (let i = 0; i < outer; i++) for (let j = 0; j < INNER; j++) s = (s + i * j) % MODULUS;
    assert.equal(awkLoopSum(outer), s, `outer ${outer}`);
  }
  // Sizes far past what a test could loop: no precision lost.
  assert.equal(awkLoopSum(3_000_000), Number((4499998500000n * 499500n) % 1000003n));
});

Deno.test("awkloop: the job carries its tag and expects the one number", () => {
  const plan = awkLoop.plan(10, PARAMS, "om-stress-x-1");
  assert.deepEqual(plan.argv.slice(0, 3), ["awk", "-v", "om_stress=om-stress-x-1"]);
  assert.deepEqual(plan.expected, { kind: "text", text: `${awkLoopSum(10)}\n` });
});

Deno.test({
  name: "awkloop: awk prints what om stress expects",
  ignore: !canRun(awkLoop),
  fn: async () => {
    for (const size of [1, 37, 400]) assert.equal((await runHere(awkLoop, size)).ok, true);
  },
});
