/** lib/discovery/relay.ts. */
import assert from "node:assert/strict";
import { RelayFilter } from "../../../lib/discovery/relay.ts";

Deno.test("relay: the same bytes pass once per window", () => {
  const filter = new RelayFilter(1000);
  const a = new Uint8Array([1, 2, 3]);
  assert.equal(filter.admit(a, 0), true);
  assert.equal(filter.admit(a, 999), false);
  assert.equal(filter.admit(new Uint8Array([1, 2, 4]), 999), true);
  assert.equal(filter.admit(a, 1000), true);
});
