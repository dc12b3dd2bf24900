/** `om migrate`'s arguments, in-process. */
import assert from "node:assert/strict";
import { parseTarget } from "../../commands/migrate.ts";

Deno.test("migrate: NODE is a node id, decimal or hex, or home", () => {
  assert.equal(parseTarget("2"), 2);
  assert.equal(parseTarget("0x0adc"), 0x0adc);
  assert.equal(parseTarget("home"), "home");
  assert.throws(() => parseTarget("0"), /not a node id/);
  assert.throws(() => parseTarget("node2"), /not a node id/);
});
