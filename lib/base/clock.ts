/**
 * Time as lib/ sees it: handed in, never read directly, so tests can drive it (std FakeTime).
 */

/** A clock with timers: the one clock interface of lib/. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
  /** Calls `fn` every `ms` milliseconds until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  /** Calls `fn` once after `ms` milliseconds unless the returned function is called first. */
  after(ms: number, fn: () => void): () => void;
}

/** The part of a clock a wait needs (lib/base/retry.ts): the time, and a pause. */
export type WaitClock = Pick<Clock, "now" | "sleep">;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  every: (ms, fn) => {
    const handle = setInterval(fn, ms);
    return () => clearInterval(handle);
  },
  after: (ms, fn) => {
    const handle = setTimeout(fn, ms);
    return () => clearTimeout(handle);
  },
};

/** A clock that moves only when told to; timers fire as `advance` passes their times. */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Set<{ next: number; ms: number; fn: () => void; once?: boolean }>();

  constructor(start = 1_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  every(ms: number, fn: () => void): () => void {
    const timer = { next: this.#now + ms, ms, fn };
    this.#timers.add(timer);
    return () => this.#timers.delete(timer);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { next: this.#now + ms, ms, fn, once: true };
    this.#timers.add(timer);
    return () => this.#timers.delete(timer);
  }

  /** Moves time forward, firing due timers in time order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let due: { next: number; ms: number; fn: () => void; once?: boolean } | undefined;
      for (const t of this.#timers) if (t.next <= end && (!due || t.next < due.next)) due = t;
      if (!due) break;
      this.#now = due.next;
      due.next += due.ms;
      if (due.once) this.#timers.delete(due);
      due.fn();
    }
    this.#now = end;
  }
}
