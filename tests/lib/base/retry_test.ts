import assert from "node:assert/strict";
import { RetryTimeoutError, retryUntil } from "../../../lib/base/retry.ts";
import type { WaitClock } from "../../../lib/base/clock.ts";

/** A clock whose sleeps pass instantly, recording them. */
function fakeClock(): WaitClock & { sleeps: number[] } {
  let now = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: (ms) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

Deno.test("retryUntil resolves to the first value that is not undefined, null or false", async () => {
  const clock = fakeClock();
  const answers = [undefined, null, false, 0, 7];
  assert.equal(await retryUntil(() => answers.shift(), 1000, { clock }), 0);
  assert.deepEqual(clock.sleeps, [20, 20, 20]);
});

Deno.test("retryUntil awaits async conditions and counts throws as not yet", async () => {
  const clock = fakeClock();
  let tries = 0;
  const value = await retryUntil(
    async () => {
      await Promise.resolve();
      if (++tries < 3) throw new Error("not there");
      return "ready";
    },
    1000,
    { clock, intervalMs: 5 },
  );
  assert.equal(value, "ready");
  assert.deepEqual(clock.sleeps, [5, 5]);
});

Deno.test("retryUntil times out with the last error as cause, trying at the deadline", async () => {
  const clock = fakeClock();
  let tries = 0;
  const error = await retryUntil(
    () => {
      tries++;
      throw new Error("still starting");
    },
    50,
    { clock, what: "the maps to agree" },
  ).catch((e) => e);
  assert.ok(error instanceof RetryTimeoutError);
  assert.equal(error.elapsedMs, 50);
  assert.match(error.message, /^Cannot wait for the maps to agree: not met after 0\.05 s: still/);
  assert.equal((error.cause as Error).message, "still starting");
  assert.deepEqual(clock.sleeps, [20, 20, 10]);
  assert.equal(tries, 4);
});

Deno.test("retryUntil with the real clock", async () => {
  const start = performance.now();
  let ready = false;
  setTimeout(() => ready = true, 60);
  assert.equal(await retryUntil(() => ready, 2000), true);
  assert.ok(performance.now() - start < 1000);
  await assert.rejects(retryUntil(() => false, 30), RetryTimeoutError);
});
