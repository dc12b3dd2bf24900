/**
 * Authenticated datagrams, when the cluster has a key: every datagram (discovery or node
 * information) carries a trailer with a sequence number and a MAC, and a receiver refuses a
 * sequence number it has seen from that node (a replay) or one far from now. PROTOCOL.md §1.4.
 *
 * | offset | size | field | meaning                                                        |
 * |-------:|-----:|-------|----------------------------------------------------------------|
 * |      0 |    n | body  | the plain datagram (53-byte discovery or 48-byte information)  |
 * |      n |    8 | seq   | sender's sequence: microseconds since the epoch, strictly rising |
 * |    n+8 |   16 | mac   | HMAC-SHA-256(key, "om-datagram-v1" ‖ body ‖ seq), first 16 bytes |
 */
import { Reader, Writer } from "../base/cursor.ts";
import { type ClusterKey, sameMac, sign } from "../base/key.ts";
import { WireError } from "../base/wireerror.ts";

export const TRAILER_SIZE = 24;
const MAC_SIZE = 16;
const LABEL = new TextEncoder().encode("om-datagram-v1");

/** How far a sequence number (a time stamp) may be from the receiver's clock. */
export const SEQUENCE_WINDOW_MS = 60_000;

function macInput(body: Uint8Array, seq: Uint8Array): Uint8Array {
  const input = new Uint8Array(LABEL.length + body.length + seq.length);
  input.set(LABEL, 0);
  input.set(body, LABEL.length);
  input.set(seq, LABEL.length + body.length);
  return input;
}

function seqBytes(seq: number): Uint8Array {
  return new Writer(8).u32(Math.floor(seq / 2 ** 32)).u32(seq % 2 ** 32).done();
}

/** Hands out strictly rising sequence numbers: microseconds of the clock, or last + 1. */
export class Sequencer {
  #last = 0;
  constructor(readonly now: () => number) {}
  next(): number {
    this.#last = Math.max(this.#last + 1, Math.floor(this.now() * 1000));
    return this.#last;
  }
}

/** Appends the trailer to a datagram. */
export async function seal(key: ClusterKey, body: Uint8Array, seq: number): Promise<Uint8Array> {
  const seqField = seqBytes(seq);
  const mac = (await sign(key, macInput(body, seqField))).subarray(0, MAC_SIZE);
  return new Writer(body.length + TRAILER_SIZE).raw(body).raw(seqField).raw(mac).done();
}

/** Checks the trailer; returns the body and sequence, or throws WireError "auth"/"length". */
export async function unseal(
  key: ClusterKey,
  bytes: Uint8Array,
): Promise<{ body: Uint8Array; seq: number }> {
  if (bytes.length <= TRAILER_SIZE) {
    throw new WireError("length", `Cannot authenticate datagram: ${bytes.length} bytes`);
  }
  const body = bytes.subarray(0, bytes.length - TRAILER_SIZE);
  const reader = new Reader(bytes.subarray(body.length), "datagram trailer");
  const seqField = reader.bytesOf(8, "seq");
  const mac = reader.bytesOf(MAC_SIZE, "mac");
  reader.end();
  const expected = (await sign(key, macInput(body, seqField))).subarray(0, MAC_SIZE);
  if (!sameMac(mac, expected)) {
    throw new WireError("auth", "Cannot authenticate datagram: wrong MAC (another key?)");
  }
  const seqReader = new Reader(seqField, "seq");
  const seq = seqReader.u32("seq (high)") * 2 ** 32 + seqReader.u32("seq (low)");
  return { body, seq };
}

/**
 * Refuses replays: per sender, a sequence number must rise, and must lie within
 * SEQUENCE_WINDOW_MS of the receiver's clock (so a recording cannot be replayed after the
 * receiver restarts and forgets).
 */
export class ReplayGuard {
  readonly #last = new Map<string, number>();

  /** True (and remembered) when `seq` from `sender` is new; false for a replay or a stale one. */
  admit(sender: string, seq: number, now: number): boolean {
    if (Math.abs(seq / 1000 - now) > SEQUENCE_WINDOW_MS) return false;
    const last = this.#last.get(sender);
    if (last !== undefined && seq <= last) return false;
    this.#last.set(sender, seq);
    return true;
  }
}
