/**
 * lib/jobs/pipes.ts: a job's pipes wait for room while its process runs, and not once it has
 * ended; a pipe something outside the job keeps open is let go after a while or a size.
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import { OutputLog } from "../../../lib/jobs/table.ts";
import { AFTER_END_MS, pumpOutput } from "../../../lib/jobs/pipes.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** A pipe whose chunks the test pushes, and that it ends. */
function pipe() {
  let control!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (control = c) });
  return {
    stream,
    push: (text: string) => control.enqueue(bytes(text)),
    end: () => control.close(),
  };
}

/** Whether `promise` has settled once pending callbacks have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  return done;
}

Deno.test("pipes: while the job runs its output waits for a reader; once it ended, the rest is read", async () => {
  const clock = new FakeClock();
  const log = new OutputLog(clock, { highWater: 4 });
  const [out, err] = [pipe(), pipe()];
  let end!: () => void;
  const ended = new Promise<void>((resolve) => end = resolve);
  const pumped = pumpOutput(log, { stdout: out.stream, stderr: err.stream }, { ended, clock });
  out.push("12345");
  out.push("678");
  err.push("e");
  await settled(pumped);
  // Above the high water: what came after the first chunk waits in the pipe.
  assert.equal(log.buffered, 6);
  // The process ends: the rest comes in, nobody having read anything.
  end();
  out.end();
  err.end();
  assert.equal(await settled(pumped), true);
  assert.equal(log.end, 9);
  assert.deepEqual(
    log.readNow(0).chunks.map((c) => [c.fd, new TextDecoder().decode(c.data)]),
    [[1, "12345"], [2, "e"], [1, "678"]],
  );
});

Deno.test("pipes: after the end, a pipe held open is let go after a while, or after a size", async () => {
  const clock = new FakeClock();
  const log = new OutputLog(clock);
  const [out, err] = [pipe(), pipe()];
  const pumped = pumpOutput(log, { stdout: out.stream, stderr: err.stream }, {
    ended: Promise.resolve(),
    clock,
    afterEndBytes: 8,
  });
  err.push("0123456789");
  out.push("late");
  await settled(pumped);
  // stderr gave more than the job could have left in it: let go at once, its excess dropped.
  assert.equal(log.end, 4);
  assert.equal(await settled(pumped), false, "stdout is still open");
  clock.advance(AFTER_END_MS);
  assert.equal(await settled(pumped), true);
});
