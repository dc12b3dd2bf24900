/**
 * The time limits of a migration (PROTOCOL.md §11, §11.2): how long each side waits for the other
 * before it gives up safely, so that a job never runs in two places and never stays frozen.
 */

/**
 * How long a target keeps a restored, stopped job waiting for mig.commit before it kills it; the
 * waiter's own limit (WAITER_WINDOW_S) is longer, for when the daemon is gone.
 */
export const COMMIT_WINDOW_MS = 20_000;

/** How long a job taken by mig.begin waits here for mig.restore before it is dropped. */
export const STALE_INCOMING_MS = 60_000;
/** The restore waiter's own commit window, in seconds: it kills an uncommitted copy after it. */
export const WAITER_WINDOW_S = 30;
/** How long the source waits for one answer to mig.commit. */
export const COMMIT_TIMEOUT_MS = 10_000;
/**
 * How long the source asks again after mig.commit got no answer: past the waiter's window a copy
 * that no commit reached is gone, so the job can go on at the source.
 */
export const COMMIT_SETTLE_MS = (WAITER_WINDOW_S + 10) * 1000;
/** How long the home asks both nodes where a job is after mig.move got no answer. */
export const MOVE_SETTLE_MS = 180_000;
/**
 * How long a target's criu restore of a job with `pages` bytes of memory may take from its go
 * before it is killed, with what it had restored, and mig.restore fails (lib/criu/restore.ts): 90 s,
 * and 1 s more per 50 MB (a slow 50 MB/s to read them back). The source waits 30 s longer for
 * the answer.
 */
export function restoreLimitMs(pages: number): number {
  return 90_000 + Math.ceil(pages / 50_000);
}
