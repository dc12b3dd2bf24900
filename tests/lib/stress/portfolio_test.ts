/** The portfolio simulation: its TypeScript twin agrees with perl to the last bit. */
import assert from "node:assert/strict";
import {
  doubleBits,
  portfolio,
  portfolioOutput,
  SIMULATIONS,
} from "../../../lib/stress/portfolio.ts";
import { canRun, runHere } from "./twin.ts";

Deno.test("portfolio: doubles as perl packs them, most significant byte first", () => {
  assert.equal(doubleBits(0.1), "3fb999999999999a");
  assert.equal(doubleBits(-2), "c000000000000000");
  assert.equal(doubleBits(0), "0000000000000000");
});

Deno.test("portfolio: one line per simulation, fixed by the seed", () => {
  const text = portfolioOutput(50);
  assert.equal(text.split("\n").filter(Boolean).length, SIMULATIONS);
  assert.match(text, /^simulation 0: mean [0-9a-f]{16} sd [0-9a-f]{16} value [0-9a-f]{16}\n/);
  assert.equal(portfolioOutput(50), text);
  assert.notEqual(portfolioOutput(51), text);
});

Deno.test({
  name: "portfolio: perl computes what the twin computed, bit for bit",
  ignore: !canRun(portfolio),
  fn: async () => {
    for (const months of [1, 13, 1500]) {
      const judged = await runHere(portfolio, months);
      assert.equal(judged.ok, true, `${months} months: ${judged.actual}`);
    }
  },
});
