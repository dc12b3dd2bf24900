import assert from "node:assert/strict";
import { ADMIN_FLAGS } from "../../../lib/state/admin.ts";
import { DASH_SPELLINGS, FLAG_VERBS } from "../../../lib/views/flags.ts";

Deno.test("each on/off pair writes one HOWTO file, 1 and 0", () => {
  const pairs = [
    ["stay", "nostay", "stay"],
    ["lstay", "nolstay", "lstay"],
    ["block", "noblock", "block"],
    ["quiet", "noquiet", "quiet"],
    ["nomfs", "mfs", "nomfs"],
  ];
  assert.deepEqual(Object.keys(FLAG_VERBS).sort(), pairs.flatMap(([on, off]) => [on, off]).sort());
  for (const [on, off, file] of pairs) {
    assert.deepEqual([FLAG_VERBS[on].file, FLAG_VERBS[on].on], [file, true]);
    assert.deepEqual([FLAG_VERBS[off].file, FLAG_VERBS[off].on], [file, false]);
    assert.ok((ADMIN_FLAGS as readonly string[]).includes(file));
  }
});

Deno.test("the original's sentences, word for word", () => {
  assert.equal(FLAG_VERBS.nostay.already, "automatic load-balancing already enabled.");
  assert.equal(
    FLAG_VERBS.nolstay.already,
    "Local processes already allowed to leave automatically.",
  );
});

Deno.test("the dash spellings are the no verbs", () => {
  for (const { flag, verb } of DASH_SPELLINGS) {
    assert.equal(verb, `no${flag.slice(1)}`);
    assert.equal(FLAG_VERBS[verb].on, false);
  }
});
