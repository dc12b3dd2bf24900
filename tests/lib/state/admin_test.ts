import assert from "node:assert/strict";
import {
  ADMIN_FLAGS,
  ADMIN_REQUESTS,
  ADMIN_SETTINGS,
  DECAY_FILES,
  readAdmin,
  readFlag,
  readNumber,
  setFlag,
  writeDecay,
  writeRequest,
} from "../../../lib/state/admin.ts";
import { sandbox } from "../../tools/sandbox.ts";

Deno.test("the admin files' names are the HOWTO's and PROTOCOL.md's, each defined once", () => {
  assert.deepEqual(ADMIN_FLAGS, ["stay", "lstay", "block", "quiet", "nomfs", "expel", "bring"]);
  assert.deepEqual(ADMIN_SETTINGS, [
    "speed",
    "yardstick",
    "decayinterval",
    "slowdecay",
    "fastdecay",
    "overheads",
  ]);
  assert.deepEqual(DECAY_FILES, {
    interval: "decayinterval",
    slow: "slowdecay",
    fast: "fastdecay",
  });
  assert.deepEqual(ADMIN_REQUESTS, { expel: "block", bring: "lstay" });
});

for (const kernel of [false, true]) {
  Deno.test(`flags, requests and settings ${kernel ? "in /proc/hpc/admin" : "in the state tree"}`, async () => {
    await using box = await sandbox("admin", { kernel });
    const { paths } = box;
    // An absent flag is 0: setting it to 0 writes nothing.
    assert.equal(await setFlag(paths, "stay", false), false);
    assert.equal(await readAdmin(paths, "stay"), undefined);
    assert.equal(await setFlag(paths, "stay", true), true);
    assert.equal(await setFlag(paths, "stay", true), false);
    assert.equal(await readFlag(paths, "stay"), true);

    await writeRequest(paths, "expel");
    assert.deepEqual([await readAdmin(paths, "expel"), await readAdmin(paths, "block")], [
      "1",
      "1",
    ]);

    await writeDecay(paths, { interval: 2 });
    assert.deepEqual(
      [await readNumber(paths, "decayinterval"), await readNumber(paths, "slowdecay")],
      [2, undefined],
    );
    await writeDecay(paths, { interval: 3, slow: 980, fast: 900 });
    assert.equal(await Deno.readTextFile(`${paths.admin}/fastdecay`), "900\n");
    assert.equal(await readNumber(paths, "slowdecay"), 980);
  });
}
