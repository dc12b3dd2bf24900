/** eatmem: its lines, and awk's. */
import assert from "node:assert/strict";
import { eatmem, eatmemOutput } from "../../../lib/stress/eatmem.ts";
import { canRun, runHere } from "./twin.ts";

Deno.test("eatmem: one line per counter value, each ok", () => {
  assert.equal(eatmemOutput(0), "");
  assert.equal(eatmemOutput(3), "0 ok\n1 ok\n2 ok\n");
});

Deno.test({
  name: "eatmem: awk logs every counter once, in order, each ok",
  ignore: !canRun(eatmem),
  fn: async () => {
    assert.deepEqual(await runHere(eatmem, 25), {
      ok: true,
      actual: "25 lines, cksum 3484025733 140",
    });
  },
});
