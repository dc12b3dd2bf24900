/** lib/base/clock.ts. */
import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";

Deno.test("clock: the fake clock fires repeating and one-shot timers in order", () => {
  const clock = new FakeClock(0);
  const fired: string[] = [];
  clock.every(100, () => fired.push(`every@${clock.now()}`));
  const cancel = clock.after(150, () => fired.push(`after@${clock.now()}`));
  clock.after(250, () => fired.push(`late@${clock.now()}`));
  cancel();
  clock.advance(300);
  assert.deepEqual(fired, ["every@100", "every@200", "late@250", "every@300"]);
  assert.equal(clock.now(), 300);
});
