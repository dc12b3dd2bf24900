/** The memory workload: each round's sum of the pattern, and perl's. */
import assert from "node:assert/strict";
import { memory, memoryOutput, roundSum } from "../../../lib/stress/memory.ts";
import { canRun, PARAMS, runHere } from "./twin.ts";

Deno.test("memory: a round's sum is of its own pattern, over all of the memory", () => {
  // One 4 KiB block of round 0: words i*2654435761 mod 2^32, summed mod 2^32.
  let block = 0n;
  for (let i = 0n; i < 1024n; i++) block += (i * 2654435761n) & 0xffffffffn;
  assert.equal(roundSum(1, 0), ((block * 256n) & 0xffffffffn).toString(16).padStart(8, "0"));
  assert.notEqual(roundSum(1, 1), roundSum(1, 0));
  assert.notEqual(roundSum(2, 1), roundSum(1, 1));
  assert.equal(memoryOutput(1, 1), `round 0: ${roundSum(1, 0)}\nround 1: ${roundSum(1, 1)}\n`);
  assert.match(memory.plan(3, PARAMS, "t").what, /^memory: 2 MiB checked and rewritten 3 times/);
});

Deno.test({
  name: "memory: perl holds, checks and rewrites the pattern as om stress expects",
  ignore: !canRun(memory),
  fn: async () => {
    assert.equal((await runHere(memory, 4)).ok, true);
    assert.equal((await runHere(memory, 2, { ...PARAMS, memoryMiB: 3 })).ok, true);
  },
});
