/** lib/migration/faults.ts: a test tool's faults, read from JSON and checked. */
import assert from "node:assert/strict";
import { parseFaults } from "../../../lib/migration/faults.ts";

Deno.test("faults: every kind is read", () => {
  const text = JSON.stringify({
    fileDelayMs: 2000,
    restoreLimitMs: 1500,
    commitDelayMs: 0,
    loseMoveReply: true,
    wrongPlan: false,
    pagePortVia: { listen: 20410, announce: 20411 },
  });
  assert.deepEqual(parseFaults(text), JSON.parse(text));
  assert.deepEqual(parseFaults("{}"), {});
});

Deno.test("faults: anything unknown or out of range is refused", () => {
  for (
    const text of [
      "[]",
      "null",
      '{"fileDelayMs":-1}',
      '{"wrongPlan":1}',
      '{"noSuchFault":true}',
      '{"pagePortVia":{"listen":20410}}',
      '{"pagePortVia":{"listen":0,"announce":20411}}',
      '{"pagePortVia":{"listen":20410,"announce":70000}}',
      '{"pagePortVia":null}',
    ]
  ) {
    assert.throws(() => parseFaults(text), TypeError, text);
  }
});
