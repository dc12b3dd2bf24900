/**
 * Waiting, the one way lib/ does it: a pause, and a promise bounded in time. Everything that waits
 * a fixed time or races a deadline uses these two, so a timeout always clears its timer and always
 * fails with a {@linkcode TimeoutError} that says what did not happen in time.
 */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A bounded wait that ran out; the message says what did not happen ("no connection ..."). */
export class TimeoutError extends Error {
  override name = "TimeoutError";
  constructor(message: string, readonly ms: number) {
    super(message);
  }
}

/**
 * `promise`, or a {@linkcode TimeoutError} with `message` after `ms` milliseconds, whichever comes
 * first. The timer is cleared either way; the promise itself runs on (the caller cancels it, if it
 * can, when the timeout wins).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message, ms)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
