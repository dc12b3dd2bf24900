import assert from "node:assert/strict";
import { DEFAULT_DECAY } from "../../../lib/balance/policy.ts";
import { DEFAULT_DECAY as ADMIN_DECAY } from "../../../lib/state/admin.ts";
import {
  DEFAULT_OVERHEADS,
  DEFAULT_YARDSTICK,
  formatYardstick,
  parseYardstick,
  PROCESSOR_TYPES,
  readDecay,
  readOverheads,
  readYardstick,
} from "../../../lib/views/tuning.ts";
import { sandbox } from "../../tools/sandbox.ts";

Deno.test("the documented defaults", () => {
  // The balancer's decay defaults are the very object getdecay shows: one definition.
  assert.deepEqual(DEFAULT_DECAY, { interval: 1, slow: 975, fast: 926 });
  assert.equal(DEFAULT_DECAY, ADMIN_DECAY);
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

Deno.test("absent files read as the defaults; a value out of range is an error", async () => {
  await using box = await sandbox("tuning");
  const { paths } = box;
  assert.deepEqual(await readDecay(paths), DEFAULT_DECAY);
  assert.deepEqual(await readYardstick(paths), DEFAULT_YARDSTICK);
  assert.deepEqual(await readOverheads(paths), { overheads: "0", tuned: false });

  await Deno.mkdir(paths.admin, { recursive: true });
  await Deno.writeTextFile(`${paths.admin}/fastdecay`, "900\n");
  assert.deepEqual(await readDecay(paths), { interval: 1, slow: 975, fast: 900 });
  await Deno.writeTextFile(`${paths.admin}/decayinterval`, "3601\n");
  await assert.rejects(readDecay(paths), {
    message: `Cannot read "${paths.admin}/decayinterval": "3601" is not a number from 1 to 3600`,
  });
  await Deno.writeTextFile(`${paths.admin}/overheads`, "\n");
  assert.deepEqual(await readOverheads(paths), { overheads: "0", tuned: false });
});
