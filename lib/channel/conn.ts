/**
 * A stream of frames (PROTOCOL.md §8.1): the reader that takes whole frames off a stream within
 * a limit, and the connection that the channel's client and server both talk through, which
 * bounds what it reads before the handshake is done and, after a keyed handshake, seals every
 * frame both ways (seal.ts; PROTOCOL.md §8.7). The frames themselves: frame.ts.
 */
import { Reader, Writer } from "../base/cursor.ts";
import {
  boundedPayload,
  decodeFrame,
  type Frame,
  FrameError,
  FrameLengthError,
  FrameType,
  HANDSHAKE_FRAME_LIMIT,
  kindOfByte,
  MAX_FRAME_SIZE,
  prefixed,
  SEAL_OVERHEAD,
} from "./frame.ts";
import { type Seal, SealError } from "./seal.ts";

/** What frames are read from: a Deno.Conn, or anything with its `read`. */
export interface ByteSource {
  read(into: Uint8Array): Promise<number | null>;
}

/**
 * Reads whole frames from a stream, holding at most one frame: a 64 KiB buffer for headers and
 * small frames, and a payload of exactly the announced length (never more than `maxSize`, nor
 * than the `bound` while one is set), read straight from the source.
 */
export class FrameReader {
  readonly #source: ByteSource;
  readonly #buffer = new Uint8Array(64 * 1024);
  #maxSize: number;
  #bound: number | undefined;
  #start = 0;
  #end = 0;

  constructor(source: ByteSource, maxSize = MAX_FRAME_SIZE) {
    this.#source = source;
    this.#maxSize = maxSize;
  }

  /** The largest length read from now on. */
  set maxSize(size: number) {
    this.#maxSize = size;
  }

  /**
   * A tighter limit for the frames read before the handshake is done (HANDSHAKE_FRAME_LIMIT), so
   * that a peer not yet authenticated makes no large allocation; undefined lifts it.
   */
  set bound(size: number | undefined) {
    this.#bound = size;
  }

  /** Reads more bytes into the buffer; false at the end of the stream. */
  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#source.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /**
   * The next frame's payload, or null when the stream ends cleanly between frames. Throws
   * FrameError for a stream that ends inside a frame, and FrameLengthError for a zero length, a
   * length over the limit, or over the bound (before reading the payload).
   */
  async next(): Promise<Uint8Array | null> {
    while (this.#end - this.#start < 4) {
      if (!(await this.#fill())) {
        const got = this.#end - this.#start;
        if (got === 0) return null;
        throw new FrameError(`Cannot read frame: stream ended after ${got} of 4 length bytes`);
      }
    }
    const length = new Reader(this.#buffer.subarray(this.#start, this.#start + 4), "frame")
      .u32("length");
    this.#start += 4;
    if (length === 0 || length > this.#maxSize) {
      throw new FrameLengthError(
        `Cannot read frame: length ${length} is not between 1 and ${this.#maxSize}`,
        length,
      );
    }
    if (this.#bound !== undefined && length > this.#bound) {
      throw new FrameLengthError(
        `Cannot read frame: length ${length} before the handshake is done (at most ${this.#bound})`,
        length,
      );
    }
    const payload = new Uint8Array(length);
    let got = Math.min(length, this.#end - this.#start);
    payload.set(this.#buffer.subarray(this.#start, this.#start + got));
    this.#start += got;
    while (got < length) {
      const n = await this.#source.read(payload.subarray(got));
      if (n === null) {
        throw new FrameError(`Cannot read frame: stream ended after ${got} of ${length} bytes`);
      }
      got += n;
    }
    return payload;
  }
}

/** What a FrameConn talks over: a Deno.Conn, or anything with its read, write and close. */
export interface ByteStream extends ByteSource {
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

/** Writes all of `bytes` (a conn's write may take only part of them). */
async function writeAll(sink: ByteStream, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await sink.write(bytes));
}

/** The 5 bytes before a SEALED frame's ciphertext, authenticated with it: length and type. */
const sealedHeader = (length: number) => new Writer(5).u32(length).u8(FrameType.sealed).done();

/** A payload sealed under the seal's next counter, with its length prefix. */
async function sealedFrame(seal: Seal, payload: Uint8Array): Promise<Uint8Array> {
  const header = sealedHeader(payload.length + SEAL_OVERHEAD);
  const sealed = await seal.seal(payload, header);
  return new Writer(header.length + sealed.length).raw(header).raw(sealed).done();
}

/**
 * A connection that speaks in frames: serialized writes (frames never interleave), frame reads,
 * and an idempotent close. The channel's client and server both talk through one. Until
 * `established`, frames longer than HANDSHAKE_FRAME_LIMIT are refused; after a keyed handshake,
 * every frame both ways is sealed (seal.ts) and one that does not open is a SealError.
 */
export class FrameConn {
  readonly #conn: ByteStream;
  readonly #reader: FrameReader;
  #sending: Promise<void> = Promise.resolve();
  #closed = false;
  #seal: Seal | undefined;

  constructor(conn: ByteStream) {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
    this.#reader.bound = HANDSHAKE_FRAME_LIMIT;
  }

  /**
   * The handshake is done: frames may be as long as MAX_FRAME_SIZE, and with `seal` (a keyed
   * handshake) every frame sent or read from now on is sealed with it.
   */
  established(seal?: Seal): void {
    this.#reader.bound = undefined;
    if (seal) {
      this.#seal = seal;
      this.#reader.maxSize = MAX_FRAME_SIZE + SEAL_OVERHEAD;
    }
  }

  /** Whether frames are sealed. */
  get sealed(): boolean {
    return this.#seal !== undefined;
  }

  /** Sends a frame after those already queued (frames never interleave), sealed if sealing. */
  send(frame: Frame): Promise<void> {
    let payload: Uint8Array;
    try {
      payload = boundedPayload(frame);
    } catch (error) {
      return Promise.reject(error);
    }
    // The seal's counter is taken now, in the order of the calls, as the writes go.
    const bytes = this.#seal
      ? sealedFrame(this.#seal, payload)
      : Promise.resolve(prefixed(payload));
    bytes.catch(() => this.close());
    const sent = this.#sending.then(async () => writeAll(this.#conn, await bytes));
    this.#sending = sent.catch(() => {});
    return sent;
  }

  /**
   * The next frame, or null at a clean end of stream. On a sealed connection, throws SealError
   * for a frame that is not sealed or does not open.
   */
  async next(): Promise<Frame | null> {
    const payload = await this.#reader.next();
    if (payload === null) return null;
    const seal = this.#seal;
    if (!seal) return decodeFrame(payload);
    if (payload[0] !== FrameType.sealed) {
      const kind = kindOfByte.get(payload[0])?.toUpperCase() ??
        `type 0x${payload[0].toString(16).padStart(2, "0")}`;
      // A server whose handshake timer fired as the client finished refuses unsealed: its
      // reason, marked as unproven, tells that apart from an attack.
      let reason = "";
      try {
        const frame = decodeFrame(payload);
        if (frame.type === "refused") reason = ` (its unauthenticated reason: "${frame.reason}")`;
      } catch { /* no reason to tell */ }
      throw new SealError(`a ${kind} frame came unsealed after a keyed handshake${reason}`);
    }
    const frame = decodeFrame(
      await seal.open(payload.subarray(1), sealedHeader(payload.length)),
    );
    if (frame.type === "sealed") {
      throw new FrameError("Cannot read frame: a SEALED frame inside a sealed frame");
    }
    return frame;
  }

  /**
   * Sends REFUSED if it can, then closes. With `linger`, reads and drops whatever the peer still
   * sends until it closes or `linger` settles, then closes: closing a socket with unread bytes
   * resets the connection, and the reset could destroy the refusal before the peer reads it.
   */
  async refuse(reason: string, linger?: Promise<unknown>): Promise<void> {
    if (!this.#closed) await this.send({ type: "refused", reason }).catch(() => {});
    if (linger && !this.#closed) {
      const scratch = new Uint8Array(64 * 1024);
      const over = linger.then(() => null, () => null);
      try {
        while (await Promise.race([this.#conn.read(scratch), over]) !== null) { /* dropped */ }
      } catch { /* the peer is gone */ }
    }
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already gone */ }
  }
}
