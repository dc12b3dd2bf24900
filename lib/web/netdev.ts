/**
 * A node's network load (GOMD's netload): the bytes its cluster interfaces received and sent, as
 * counted by the kernel in `/proc/net/dev` (per network namespace, so a lab node counts its own).
 * `status.node` reports the counters; whoever asks turns two readings into bytes per second
 * (lib/web/collector.ts), so no node measures anything until someone looks.
 */

/** Bytes received and sent, since the interfaces came up. */
export interface NetCounters {
  readonly rx: number;
  readonly tx: number;
}

/**
 * Sums the received and sent bytes of `interfaces` in the text of `/proc/net/dev`; every
 * interface but `lo` when `interfaces` is empty. Lines that do not parse are skipped.
 */
export function parseNetDev(text: string, interfaces: readonly string[] = []): NetCounters {
  let rx = 0;
  let tx = 0;
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "" || name.includes("|")) continue;
    if (interfaces.length ? !interfaces.includes(name) : name === "lo") continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit: bytes ...
    if (fields.length < 9 || !Number.isFinite(fields[0]) || !Number.isFinite(fields[8])) continue;
    rx += fields[0];
    tx += fields[8];
  }
  return { rx, tx };
}

/** Reads this namespace's counters of `interfaces` (all but `lo` when empty); zeros without /proc. */
export function readNetCounters(interfaces: readonly string[] = []): NetCounters {
  try {
    return parseNetDev(Deno.readTextFileSync("/proc/net/dev"), interfaces);
  } catch {
    return { rx: 0, tx: 0 };
  }
}

/**
 * Bytes per second between two readings `ms` apart; null when there is no earlier reading, no
 * time between them, or a counter went back (an interface came up again).
 */
export function netRates(
  before: NetCounters | undefined,
  after: NetCounters,
  ms: number,
): { in: number | null; out: number | null } {
  if (!before || ms <= 0 || after.rx < before.rx || after.tx < before.tx) {
    return { in: null, out: null };
  }
  return {
    in: Math.round((after.rx - before.rx) * 1000 / ms),
    out: Math.round((after.tx - before.tx) * 1000 / ms),
  };
}
