/**
 * Polled waiting: ask a condition again and again until it holds or time runs out. Multi-node
 * tests and `om lab up` wait this way instead of sleeping a fixed time (memberlist's retry
 * helper), so they finish as soon as the cluster is ready and fail with the reason when not.
 */
import { systemClock, type WaitClock } from "./clock.ts";

/** A wait that ran out of time; `cause` is the condition's last error, if it threw. */
export class RetryTimeoutError extends Error {
  override name = "RetryTimeoutError";
  /** How long the wait lasted, in milliseconds. */
  readonly elapsedMs: number;
  constructor(message: string, elapsedMs: number, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.elapsedMs = elapsedMs;
  }
}

/** Options of {@linkcode retryUntil}. */
export interface RetryOptions {
  /** Pause between two tries; default 20 ms. */
  intervalMs?: number;
  /** What is awaited, for the timeout message ("maps to agree"). */
  what?: string;
  clock?: WaitClock;
}

/**
 * Calls `condition` until it returns a value other than `undefined`, `null` or `false`, and
 * resolves to that value. A condition that throws counts as not yet (files half there, a
 * process still starting); its last error becomes the timeout's cause. Throws
 * RetryTimeoutError after `timeoutMs` (the condition is always tried at least once, and once
 * more at the deadline).
 */
export async function retryUntil<T>(
  condition: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  options: RetryOptions = {},
): Promise<T> {
  const clock = options.clock ?? systemClock;
  const interval = options.intervalMs ?? 20;
  const start = clock.now();
  let lastError: unknown = undefined;
  while (true) {
    try {
      const value = await condition();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    const elapsed = clock.now() - start;
    if (elapsed >= timeoutMs) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new RetryTimeoutError(
        `Cannot wait for ${options.what ?? "the condition"}: not met after ${
          (elapsed / 1000).toFixed(2)
        } s${why}`,
        elapsed,
        lastError,
      );
    }
    await clock.sleep(Math.min(interval, timeoutMs - elapsed));
  }
}
