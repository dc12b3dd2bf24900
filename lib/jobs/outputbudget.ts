/**
 * The output one user's jobs may hold unread, all together (PROTOCOL.md §10). Each job's log stops
 * draining its pipes at its own high water (lib/jobs/table.ts, 4 MiB), so that a job nobody reads
 * blocks instead of filling the daemon's memory; but a user may run many jobs, and the table's
 * high water alone would let them hold many times that. So the logs of one user's jobs also share
 * a budget: while their unread bytes together reach it, none of them drains its pipes (each job
 * blocks on its full pipe, as at its own high water) until a reader takes some. Root's jobs have
 * none (root may fill the node's memory anyway).
 */

/** Unread output one user's jobs may hold together. */
export const DEFAULT_USER_OUTPUT = 64 * 1024 * 1024;

/** The unread output of one user's jobs, and the jobs that wait for room in it. */
export class OutputBudget {
  /** The most the user's jobs hold unread before they wait. */
  readonly limit: number;
  readonly #onWait: () => void;
  #held = 0;
  readonly #waiting = new Set<() => void>();

  /** `onWait` is told each time a job's output starts waiting for room (a counter). */
  constructor(limit: number, onWait: () => void = () => {}) {
    this.limit = limit;
    this.#onWait = onWait;
  }

  /** Bytes held unread now. */
  get held(): number {
    return this.#held;
  }

  /** A job of the user appended `bytes` to its log. */
  take(bytes: number): void {
    this.#held += bytes;
  }

  /** A reader took `bytes` of a job's log, or the log was let go with them. */
  give(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes);
    if (this.#held >= this.limit) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const go of waiting) go();
  }

  /** Resolves when the user's jobs hold less than the limit. */
  room(): Promise<void> {
    if (this.#held < this.limit) return Promise.resolve();
    this.#onWait();
    return new Promise((resolve) => this.#waiting.add(resolve));
  }
}
