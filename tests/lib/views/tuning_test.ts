import assert from "node:assert/strict";
import {
  DEFAULT_DECAY,
  DEFAULT_OVERHEADS,
  DEFAULT_YARDSTICK,
  formatYardstick,
  parseYardstick,
  PROCESSOR_TYPES,
} from "../../../lib/views/tuning.ts";

Deno.test("the documented defaults", () => {
  assert.deepEqual(DEFAULT_DECAY, { interval: 1, slow: 975, fast: 926 });
  assert.deepEqual(DEFAULT_YARDSTICK, { name: "PIII-1000", speed: 10000 });
  assert.deepEqual(PROCESSOR_TYPES, { "PIII-1000": 10000 });
  assert.equal(DEFAULT_OVERHEADS, "0");
});

Deno.test("the yardstick file is NAME SPEED and reads back", () => {
  assert.equal(formatYardstick({ name: "node12", speed: 25000 }), "node12 25000");
  assert.deepEqual(parseYardstick("node12 25000\n"), { name: "node12", speed: 25000 });
  assert.deepEqual(parseYardstick("  PIII-1000\t10000 "), DEFAULT_YARDSTICK);
  for (const bad of ["", "PIII-1000", "PIII-1000 fast", "x 0", "x 1000001", "a b c", "-x 5"]) {
    assert.throws(() => parseYardstick(bad), { name: "SyntaxError" }, bad);
  }
});
