/** forkit: three children per CPU; each child's sum and status, and perl's. */
import assert from "node:assert/strict";
import {
  childrenFor,
  childStatus,
  childSum,
  forkit,
  forkitOutput,
  MODULUS,
} from "../../../lib/stress/forkit.ts";
import { canRun, runHere } from "./twin.ts";

Deno.test("forkit: three children per CPU of the cluster, at least three", () => {
  assert.equal(childrenFor(6), 18);
  assert.equal(childrenFor(0), 3);
  assert.equal(
    forkit.plan(10, { cpus: 4, memoryMiB: 1, seconds: 1 }, "t").what.includes("12 children"),
    true,
  );
});

Deno.test("forkit: each child's closed-form sum is its loop's, and its own status", () => {
  for (const [c, terms] of [[0, 0], [0, 5], [3, 1000], [17, 4321]]) {
    let s = 0;
    for (let i = 0; i < terms; i++) s = (s + i * (c + 1)) % MODULUS;
    assert.equal(childSum(c, terms), s);
  }
  assert.equal(childStatus(0), 1);
  assert.equal(childStatus(199), 200);
  assert.equal(childStatus(200), 1);
  assert.equal(forkitOutput(2, 3), "child 0: sum 3, exit 1\nchild 1: sum 6, exit 2\n");
});

Deno.test({
  name: "forkit: perl's children send every sum and exit status to the parent",
  ignore: !canRun(forkit),
  fn: async () => {
    assert.equal((await runHere(forkit, 5000)).ok, true);
  },
});
