/**
 * The sealed page stream (PROTOCOL.md §11.1): what crosses the network on a page link. The source
 * draws 32 random bytes per dump round, the link's secret, and sends them inside the sealed
 * channel (`mig.pages`, beside the token); both nodes derive one key per direction from them
 * (HKDF-SHA-256, salted with the token, labelled for the page link), and each direction is a
 * sequence of records: `u32 length` ‖ ChaCha20-Poly1305 of (`u8 kind` ‖ data), the length
 * authenticated with it, a per-direction counter as the nonce (as the channel's, lib/channel/seal.ts
 * sealIv). The last record of a direction is an end record, so a stream cut short is noticed; a
 * record altered, replayed, reordered, dropped or injected does not open.
 *
 * Why ChaCha20-Poly1305 and not the channel's AES-256-GCM: the pages are a job's whole memory,
 * sealed and opened while the job is frozen, so the cipher is chosen for speed among sound AEADs
 * that every node has. Measured on this project's machine (a 2-core EPYC VM, Deno 2.9.6, 1 MiB
 * records, one core): OpenSSL's ChaCha20-Poly1305 through FFI (lib/migration/chacha.ts) about
 * 3.7 GB/s, node:crypto's 0.9-1.4 GB/s (what a node without libcrypto uses: the same bytes),
 * WebCrypto's AES-256-GCM 570-650 MB/s, node:crypto's AES-256-GCM 220 MB/s. Records are sealed
 * and opened in place, synchronously; lib/migration/pagerelay.ts moves them.
 */
import { Reader, Writer } from "../base/cursor.ts";
import { chacha } from "./chacha.ts";
import { SEAL_TAG_SIZE, SealError, sealIv, TAMPERED } from "../channel/seal.ts";

/** Bytes of a page link's secret (64 hex characters in `mig.pages`). */
export const PAGE_SECRET_BYTES = 32;

/** Most bytes of data in one record: what one read of the dump's socket returns at most. */
export const RECORD_DATA_MAX = 1 << 20;

/** A record's kind (its plaintext's first byte). */
export const RecordKind = {
  /** Bytes of the page-server stream (none: a heartbeat, lib/migration/pagerelay.ts). */
  data: 0,
  /** The end of the direction: nothing follows. */
  end: 1,
} as const;

/** A record's kind. */
export type RecordKind = typeof RecordKind[keyof typeof RecordKind];

/** Bytes of a record's length field. */
export const RECORD_HEADER_SIZE = 4;

/** Where a record's data starts: after the length field and the kind. */
export const RECORD_DATA_OFFSET = RECORD_HEADER_SIZE + 1;

/** The least a record's length can be: the kind byte and the tag. */
export const RECORD_MIN_LENGTH = 1 + SEAL_TAG_SIZE;

/** The most a record's length can be: the kind byte, RECORD_DATA_MAX bytes and the tag. */
export const RECORD_MAX_LENGTH = 1 + RECORD_DATA_MAX + SEAL_TAG_SIZE;

/** The two directions of a page link, each with its own key and counter. */
export type PageDirection = "sourceToTarget" | "targetToSource";

/** The HKDF info labels of the two directions' keys. */
export const PAGE_SEAL_LABELS: Readonly<Record<PageDirection, string>> = {
  sourceToTarget: "om-page-link source to target",
  targetToSource: "om-page-link target to source",
};

const encoder = new TextEncoder();

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes of 64 lowercase hex characters (a token or a secret); throws on anything else. */
export function hexBytes(text: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(text)) {
    throw new TypeError("Cannot read the page link's secret: not 64 hex characters");
  }
  return Uint8Array.from({ length: 32 }, (_, i) => parseInt(text.slice(2 * i, 2 * i + 2), 16));
}

/** A fresh page link secret, as the 64 hex characters `mig.pages` carries. */
export function newPageSecret(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(PAGE_SECRET_BYTES)));
}

/** Whether `text` is a page link secret (64 lowercase hex characters). */
export function isPageSecret(text: unknown): text is string {
  return typeof text === "string" && /^[0-9a-f]{64}$/.test(text);
}

/** The raw keys of a page link's two directions. */
export interface PageKeys {
  readonly sourceToTarget: Uint8Array;
  readonly targetToSource: Uint8Array;
}

/**
 * The keys of a page link: HKDF-SHA-256 with the secret's 32 bytes as input key material, the
 * token's 32 bytes as salt, and a direction's label as info; 32 bytes each.
 */
export async function derivePageKeys(secret: string, token: string): Promise<PageKeys> {
  const base = await crypto.subtle.importKey(
    "raw",
    hexBytes(secret) as Uint8Array<ArrayBuffer>,
    "HKDF",
    false,
    ["deriveBits"],
  );
  const salt = hexBytes(token) as Uint8Array<ArrayBuffer>;
  const derive = async (direction: PageDirection) =>
    new Uint8Array(
      await crypto.subtle.deriveBits(
        {
          name: "HKDF",
          hash: "SHA-256",
          salt,
          info: encoder.encode(PAGE_SEAL_LABELS[direction]),
        },
        base,
        256,
      ),
    );
  const [sourceToTarget, targetToSource] = await Promise.all([
    derive("sourceToTarget"),
    derive("targetToSource"),
  ]);
  return { sourceToTarget, targetToSource };
}

/** A record's length field, for `kind` with `dataLength` bytes of data. */
function header(dataLength: number): Uint8Array {
  return new Writer(RECORD_HEADER_SIZE).u32(1 + dataLength + SEAL_TAG_SIZE).done();
}

/**
 * Seals one direction's records, counting from 0. Records must go on the wire in the order they
 * were sealed.
 */
export class RecordSealer {
  readonly #key: Uint8Array;
  #counter = 0;
  #ended = false;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** How many records were sealed so far. */
  get count(): number {
    return this.#counter;
  }

  /**
   * The whole record (length field included) of `kind` with `data` (at most RECORD_DATA_MAX bytes;
   * none for an end record), in a buffer of its own. Nothing may be sealed after an end record.
   */
  seal(kind: RecordKind, data: Uint8Array = new Uint8Array(0)): Uint8Array {
    if (data.length > RECORD_DATA_MAX) {
      throw new RangeError(`Cannot seal a page record of ${data.length} bytes of kind ${kind}`);
    }
    const record = new Uint8Array(RECORD_HEADER_SIZE + 1 + data.length + SEAL_TAG_SIZE);
    record.set(data, RECORD_HEADER_SIZE + 1);
    return this.sealInPlace(kind, record, data.length);
  }

  /**
   * Seals a data record in place: `buffer` holds its `length` bytes of data from
   * RECORD_DATA_OFFSET, and room for the tag after them; the length field and the kind are written
   * before them. Returns the whole record, a view of `buffer`.
   */
  sealInPlace(kind: RecordKind, buffer: Uint8Array, length: number): Uint8Array {
    if (this.#ended) throw new RangeError("Cannot seal a page record: the stream has ended");
    if (
      length > RECORD_DATA_MAX || (kind === RecordKind.end && length > 0) ||
      buffer.length < RECORD_DATA_OFFSET + length + SEAL_TAG_SIZE
    ) {
      throw new RangeError(`Cannot seal a page record of ${length} bytes of kind ${kind}`);
    }
    if (kind === RecordKind.end) this.#ended = true;
    const record = buffer.subarray(0, RECORD_DATA_OFFSET + length + SEAL_TAG_SIZE);
    record.set(header(length), 0);
    record[RECORD_HEADER_SIZE] = kind;
    const text = record.subarray(RECORD_HEADER_SIZE, RECORD_DATA_OFFSET + length);
    chacha().seal(
      this.#key,
      sealIv(this.#counter++),
      record.subarray(0, RECORD_HEADER_SIZE),
      text,
      record.subarray(RECORD_DATA_OFFSET + length),
    );
    return record;
  }
}

/**
 * The length a record's 4-byte length field announces, checked against the bounds before any of
 * the record is read; throws SealError when it is out of them (a length altered on the way).
 */
export function recordLength(lengthField: Uint8Array, counter: number): number {
  const reader = new Reader(lengthField, "a page record");
  const length = reader.u32("length");
  reader.end();
  if (length < RECORD_MIN_LENGTH || length > RECORD_MAX_LENGTH) {
    throw new SealError(
      `sealed record ${counter} did not open: its length ${length} is not between ` +
        `${RECORD_MIN_LENGTH} and ${RECORD_MAX_LENGTH}; ${TAMPERED}`,
    );
  }
  return length;
}

/** One opened record. */
export interface OpenedRecord {
  readonly kind: RecordKind;
  readonly data: Uint8Array;
}

/**
 * Opens the peer's records of one direction, in the order it sealed them, each once; throws
 * SealError when one does not open (its plaintext is never returned), or comes after the end.
 */
export class RecordOpener {
  readonly #key: Uint8Array;
  #counter = 0;
  #ended = false;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  /** The number of the next record (0 for the first). */
  get counter(): number {
    return this.#counter;
  }

  /** Whether the end record has been opened. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Opens the record made of `lengthField` (4 bytes) and `box` (ciphertext and tag), in place: the
   * data returned is a view of `box`. A record that does not open leaves zeroes in `box`.
   */
  open(lengthField: Uint8Array, box: Uint8Array): OpenedRecord {
    const counter = this.#counter++;
    const notOpened = (why: string) =>
      new SealError(`sealed record ${counter} did not open: ${why}`);
    if (this.#ended) throw notOpened("it came after the end record");
    if (recordLength(lengthField, counter) !== box.length) {
      throw notOpened(`its length field does not match its ${box.length} bytes`);
    }
    // Opened in place: the plaintext takes the ciphertext's place in `box`.
    const text = box.length - SEAL_TAG_SIZE;
    const plain = box.subarray(0, text);
    if (!chacha().open(this.#key, sealIv(counter), lengthField, plain, box.subarray(text))) {
      throw notOpened(TAMPERED);
    }
    const kind = plain[0];
    if (kind === RecordKind.end && plain.length === 1) {
      this.#ended = true;
      return { kind, data: plain.subarray(1) };
    }
    if (kind === RecordKind.data) return { kind, data: plain.subarray(1) };
    // Sealed with the key, so sent by the peer: a peer that speaks another version.
    throw notOpened(`its kind ${kind} is not one of this version`);
  }
}
