/**
 * Each node's load over the last minutes, for the status page's history (the GOMD applet's
 * history mode): a ring of HISTORY_POINTS points, one per information interval, kept whether or
 * not anyone watches (it costs one small write per node per interval, and a page opened later
 * shows the minutes before it). A node not heard from for a whole ring is forgotten.
 */
import type { HistoryView } from "./model.ts";

/** Points kept: five minutes at the default information interval of one second. */
export const HISTORY_POINTS = 300;

/** No value at this point (the node was not known then). */
const NONE = -1;

/** The ring of loads. Pure: the caller says when each point is. */
export class LoadHistory {
  readonly #capacity: number;
  readonly #times: Float64Array;
  readonly #loads = new Map<number, { values: Int32Array; last: number }>();
  /** Points pushed so far; the newest is at (count - 1) % capacity. */
  #count = 0;

  constructor(capacity = HISTORY_POINTS) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`Cannot keep a history of ${capacity} points: at least 1`);
    }
    this.#capacity = capacity;
    this.#times = new Float64Array(capacity);
  }

  /** Points held now (at most the capacity). */
  get length(): number {
    return Math.min(this.#count, this.#capacity);
  }

  /** Adds the point at time `t`: each node's load (whole, 0 or more); absent nodes get none. */
  push(t: number, loads: ReadonlyMap<number, number>): void {
    const slot = this.#count % this.#capacity;
    this.#times[slot] = t;
    for (const [id, entry] of this.#loads) {
      if (!loads.has(id)) {
        entry.values[slot] = NONE;
        // Not heard from for a whole ring: nothing of it is left to show.
        if (this.#count - entry.last >= this.#capacity) this.#loads.delete(id);
      }
    }
    for (const [id, load] of loads) {
      let entry = this.#loads.get(id);
      if (!entry) {
        entry = { values: new Int32Array(this.#capacity).fill(NONE), last: this.#count };
        this.#loads.set(id, entry);
      }
      entry.values[slot] = Math.max(0, Math.min(0x7fffffff, Math.round(load)));
      entry.last = this.#count;
    }
    this.#count++;
  }

  /** The points held, oldest first, as the API and the page take them. */
  view(): HistoryView {
    const n = this.length;
    const first = this.#count - n;
    const slots = Array.from({ length: n }, (_, i) => (first + i) % this.#capacity);
    const nodes: Record<string, (number | null)[]> = {};
    for (const [id, entry] of [...this.#loads].sort((a, b) => a[0] - b[0])) {
      nodes[String(id)] = slots.map((s) => entry.values[s] === NONE ? null : entry.values[s]);
    }
    return { t: slots.map((s) => this.#times[s]), nodes };
  }
}
