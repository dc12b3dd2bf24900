/**
 * The relay at each end of a page link (PROTOCOL.md §11.1): between the local end of CRIU's
 * page-server stream (criu dump's socket on the source, the page receiver's on the target; a unix
 * socket, "plain") and the TCP connection to the other node ("sealed"). What the local end writes
 * is sealed into records (lib/migration/pageseal.ts), one per read of its socket (at most 1 MiB),
 * and sent; the peer's records are opened, in order, and their bytes written to the local end.
 * Nothing unsealed crosses the network, and nothing that did not open reaches CRIU or the page
 * receiver.
 *
 * Each direction ends with an end record, sent when the local end closes its socket (criu dump
 * exited, or the page receiver). A relay has done its work once both directions ended so; it
 * fails, closing both connections at once, when a record does not open (altered, replayed,
 * reordered, dropped or injected), when the link ends before the peer's end record (cut short),
 * or when either end stays silent: no read of the link for PAGE_LINK_SILENCE_MS (each side sends
 * an empty record, a heartbeat, after HEARTBEAT_MS without sending), or no write of either
 * connection making progress for as long (a peer cut off, or an end that stopped reading). The
 * dump is frozen time: a source then fails the dump and the job goes on where it was; a target's
 * page server fails, and so does the migration, before anything is restored.
 *
 * Both ends seal and open on the daemon's own thread, in place (no copy per record): a record of
 * 1 MiB holds it for about a third of a millisecond with OpenSSL's cipher (lib/migration/chacha.ts;
 * about a millisecond with node:crypto's), and the kernel's socket buffers keep criu, the network
 * and the page receiver busy meanwhile. What the link adds to a migration's frozen time is now
 * mostly its copies through the sockets (PROTOCOL.md §11.1, "What it costs").
 */
import {
  RECORD_DATA_MAX,
  RECORD_DATA_OFFSET,
  RECORD_HEADER_SIZE,
  RECORD_MAX_LENGTH,
  RecordKind,
  recordLength,
  RecordOpener,
  RecordSealer,
} from "./pageseal.ts";
import { SEAL_TAG_SIZE, SealError } from "../channel/seal.ts";
import { chacha } from "./chacha.ts";
import { TimeoutError, withTimeout } from "../base/time.ts";

/**
 * How long either end of a page link waits on a peer or a local end that takes or sends nothing
 * before the link fails: no record (heartbeats included) from the other node, or a write that
 * makes no progress.
 */
export const PAGE_LINK_SILENCE_MS = 10_000;

/** After this long without sending, a relay sends an empty record: it is alive. */
export const HEARTBEAT_MS = 2_000;

/**
 * Why a page link failed: `side` "peer" for what came, or did not come, from the other node (a
 * record that did not open, a link cut short or silent), "local" for the local end (criu, the
 * page receiver) breaking or not reading.
 */
export class PageRelayError extends Error {
  override name = "PageRelayError";
  constructor(message: string, readonly side: "peer" | "local") {
    super(message);
  }
}

/** Options of {@linkcode relayPages}. */
export interface RelayOptions {
  /** The key of what this end sends, and of what it receives (pageseal.ts derivePageKeys). */
  readonly send: Uint8Array;
  readonly receive: Uint8Array;
  /** Who the other node is, for messages ("node 2", "10.0.0.2:41000"). */
  readonly peer: string;
  /** What the local end is, for messages ("criu dump", "the page server"). */
  readonly local: string;
  /** {@linkcode PAGE_LINK_SILENCE_MS} unless given (tests shorten it). */
  readonly silenceMs?: number;
  /** {@linkcode HEARTBEAT_MS} unless given (or a quarter of a shorter silence). */
  readonly heartbeatMs?: number;
}

/** A relay at work. */
export interface PageRelay {
  /** Resolves once both directions ended with their end records; rejects with PageRelayError. */
  readonly done: Promise<void>;
  /** The failure, once there is one. */
  readonly failure: PageRelayError | undefined;
  /** Ends the relay now, failing it with `reason` unless it is over; both connections close. */
  abort(reason: string): void;
}

const TICK = Symbol("tick");

/** `promise`, or TICK after `ms` when it has not settled by then. */
function orTick<T>(promise: Promise<T>, ms: number): Promise<T | typeof TICK> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = new Promise<typeof TICK>((resolve) => timer = setTimeout(resolve, ms, TICK));
  return Promise.race([promise, tick]).finally(() => clearTimeout(timer));
}

/**
 * Relays between `plain` (the local end) and `sealed` (the other node) until both directions have
 * ended, sealing what `plain` sends and opening what comes on `sealed`; closes both at the end.
 */
export function relayPages(plain: Deno.Conn, sealed: Deno.Conn, options: RelayOptions): PageRelay {
  const silenceMs = options.silenceMs ?? PAGE_LINK_SILENCE_MS;
  // Several heartbeats within the silence, however short a test makes it.
  const heartbeatMs = options.heartbeatMs ?? Math.min(HEARTBEAT_MS, silenceMs / 4);
  // The cipher is loaded now, as the link is made, not at the first record: that is frozen time.
  chacha();
  const sealer = new RecordSealer(options.send);
  const opener = new RecordOpener(options.receive);
  const { peer, local } = options;
  let failure: PageRelayError | undefined;
  let closed = false;

  const closeAll = () => {
    if (closed) return;
    closed = true;
    for (const conn of [plain, sealed]) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const fail = (error: PageRelayError) => {
    failure ??= error;
    closeAll();
  };
  /** What an operation's error means, once the relay is failing or the operation broke. */
  const failed = (error: unknown, side: "peer" | "local", what: string): PageRelayError => {
    if (failure) return failure;
    if (error instanceof PageRelayError) return error;
    if (error instanceof SealError) return new PageRelayError(error.message, "peer");
    if (error instanceof TimeoutError) return new PageRelayError(error.message, side);
    return new PageRelayError(`${what}: ${(error as Error).message ?? error}`, side);
  };

  const writeAll = async (conn: Deno.Conn, bytes: Uint8Array, side: "peer" | "local") => {
    const who = side === "peer" ? peer : local;
    try {
      while (bytes.length > 0) {
        bytes = bytes.subarray(
          await withTimeout(
            conn.write(bytes),
            silenceMs,
            `${who} took nothing of the page link for ${silenceMs} ms`,
          ),
        );
      }
    } catch (error) {
      throw failed(error, side, `the page link to ${who} broke`);
    }
  };

  // What comes from the link is read into one buffer, record after record: a record is opened
  // in place and its plaintext written to the local end before the next is read.
  const incoming = new Uint8Array(RECORD_HEADER_SIZE + RECORD_MAX_LENGTH);
  /**
   * Exactly `n` bytes of the link, in `incoming` from `at`; null at its end when none came and
   * `first` (a record's start).
   */
  const readLink = async (n: number, at: number, first: boolean): Promise<Uint8Array | null> => {
    const bytes = incoming.subarray(at, at + n);
    let filled = 0;
    try {
      while (filled < n) {
        const got = await withTimeout(
          sealed.read(bytes.subarray(filled)),
          silenceMs,
          `nothing came from ${peer} on the page link for ${silenceMs} ms`,
        );
        if (got === null) {
          if (filled === 0 && first) return null;
          throw new PageRelayError(
            `the page link from ${peer} ended in the middle of record ${opener.counter}: ` +
              "it was cut short on the way",
            "peer",
          );
        }
        filled += got;
      }
    } catch (error) {
      throw failed(error, "peer", `the page link from ${peer} broke`);
    }
    return bytes;
  };

  /** Sends one record to the other node. */
  const send = (kind: RecordKind, data?: Uint8Array) =>
    writeAll(sealed, sealer.seal(kind, data), "peer");

  /** The local end's bytes, sealed, to the other node; then the end record. */
  const outward = async () => {
    // Read where the record's data goes and sealed there, in place: no copy per record. A
    // heartbeat, sealed while the read waits, has a buffer of its own.
    const record = new Uint8Array(RECORD_DATA_OFFSET + RECORD_DATA_MAX + SEAL_TAG_SIZE);
    const buffer = record.subarray(RECORD_DATA_OFFSET, RECORD_DATA_OFFSET + RECORD_DATA_MAX);
    for (;;) {
      const reading = plain.read(buffer);
      let got: number | null | typeof TICK;
      try {
        while ((got = await orTick(reading, heartbeatMs)) === TICK) await send(RecordKind.data);
      } catch (error) {
        throw failed(error, "local", `the page link's socket to ${local} broke`);
      }
      if (got === null) break;
      await writeAll(sealed, sealer.sealInPlace(RecordKind.data, record, got), "peer");
    }
    await send(RecordKind.end);
    await sealed.closeWrite().catch((error) => {
      throw failed(error, "peer", `the page link to ${peer} broke`);
    });
  };

  /** The other node's records, opened, to the local end; until its end record. */
  const inward = async () => {
    for (;;) {
      const lengthField = await readLink(RECORD_HEADER_SIZE, 0, true);
      if (lengthField === null) {
        throw new PageRelayError(
          `the page link from ${peer} ended before its end record: it was cut short on the way`,
          "peer",
        );
      }
      let opened;
      try {
        const length = recordLength(lengthField, opener.counter);
        const box = await readLink(length, RECORD_HEADER_SIZE, false);
        opened = opener.open(lengthField, box!);
      } catch (error) {
        throw failed(error, "peer", `the page link from ${peer} broke`);
      }
      if (opened.kind === RecordKind.end) break;
      if (opened.data.length > 0) await writeAll(plain, opened.data, "local");
    }
    await plain.closeWrite().catch((error) => {
      throw failed(error, "local", `the page link's socket to ${local} broke`);
    });
  };

  const both = [outward(), inward()].map((direction) =>
    direction.catch((error) => {
      fail(failed(error, "peer", `the page link to ${peer} broke`));
      throw failure;
    })
  );
  const done = Promise.all(both).then(() => closeAll(), () => {
    closeAll();
    throw failure;
  });
  done.catch(() => {});
  return {
    done,
    get failure() {
      return failure;
    },
    abort(reason: string) {
      if (!closed) fail(new PageRelayError(reason, "local"));
    },
  };
}
