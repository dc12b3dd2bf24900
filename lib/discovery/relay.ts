/**
 * Loop prevention for relaying discovery datagrams between networks (the original had none).
 * Three rules (lib/discovery/daemon.ts applies them): never send a datagram onto the network its source
 * node lives on (split horizon); always relay a datagram heard directly from its source node (it
 * cannot be a looping copy); relay a copy that came through another relay only if the same bytes
 * were not relayed within a short window (relays in a ring of networks would pass it round for
 * ever). The window is shorter than the re-announce interval.
 */

/** Remembers the datagrams relayed recently. */
export class RelayFilter {
  readonly #seen = new Map<string, number>();

  constructor(readonly windowMs: number) {}

  /** True when these bytes were not relayed within the window; records them. */
  admit(bytes: Uint8Array, now: number): boolean {
    if (this.#seen.size > 4096) this.#prune(now);
    const key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    const last = this.#seen.get(key);
    if (last !== undefined && now - last < this.windowMs) return false;
    this.#seen.set(key, now);
    return true;
  }

  #prune(now: number): void {
    for (const [key, at] of this.#seen) if (now - at >= this.windowMs) this.#seen.delete(key);
  }
}
