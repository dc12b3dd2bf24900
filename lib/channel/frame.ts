/**
 * The frames of the node-to-node channel, their encoding and decoding (PROTOCOL.md §8 is the
 * reference; the tables here are copies of it). Reading them off a stream, and the connection
 * that reads and writes them: conn.ts; sealing them: seal.ts.
 * On the TCP stream every frame is a `u32` length, then that many payload bytes;
 * the payload's first byte is the frame type. Network byte order throughout.
 *
 * | offset | size   | field   | meaning                                                 |
 * |-------:|-------:|---------|---------------------------------------------------------|
 * |      0 |      4 | length  | payload size, 1 to `MAX_FRAME_SIZE` (16 MiB)            |
 * |      4 | length | payload | `type` (u8), then the fields of that type (below)       |
 *
 * Before the handshake is done a frame may be at most `HANDSHAKE_FRAME_LIMIT` bytes; after a
 * handshake with the cluster key, every frame both ways is a SEALED frame (seal.ts), whose
 * length may exceed `MAX_FRAME_SIZE` by its `SEAL_OVERHEAD` (conn.ts).
 *
 * Payloads, offsets from the start of the payload:
 *
 * HELLO (0x01, client to server, 43 bytes; bytes 0–6 are the same in every version):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x01                                                     |
 * |      1 |    4 | magic   | 0x4f4d4348, ASCII "OMCH" (`CHANNEL_MAGIC`)               |
 * |      5 |    2 | version | protocol version the client speaks (`PROTOCOL_VERSION`)  |
 * |      7 |    2 | node    | the client's node id (0 = none, e.g. a command-line tool)|
 * |      9 |    2 | flags   | bit 0 `HelloFlags.key`: the client has a cluster key     |
 * |     11 |   32 | nonce   | client nonce, fresh random bytes per connection          |
 *
 * WELCOME (0x02, server to client, 69 bytes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x02                                                     |
 * |      1 |    2 | version | the protocol version accepted                            |
 * |      3 |    2 | node    | the server's node id                                     |
 * |      5 |   32 | nonce   | server nonce, fresh random bytes per connection          |
 * |     37 |   32 | proof   | server proof with a key, else 32 zero bytes              |
 *
 * AUTH (0x03, client to server, 33 bytes, only with a key):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x03                                                     |
 * |      1 |   32 | proof   | client proof                                             |
 *
 * REQUEST (0x04, client to server, 7 + c + b bytes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x04                                                     |
 * |      1 |    4 | seq     | sequence number, chosen by the client                    |
 * |      5 |    1 | c       | length of the command, 1 to 255                          |
 * |      6 |    c | command | UTF-8 command name                                       |
 * |  6 + c |    b | body    | the rest of the frame: the argument bytes (may be empty) |
 *
 * REPLY (0x05, server to client, 7 + e + b bytes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x05                                                     |
 * |      1 |    4 | seq     | the seq of the request answered                          |
 * |      5 |    2 | e       | length of the error, 0 = success                         |
 * |      7 |    e | error   | UTF-8 error message                                      |
 * |  7 + e |    b | body    | the rest of the frame: the result bytes (may be empty)   |
 *
 * REFUSED (0x06, either way, 3 + r bytes; the sender then closes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x06                                                     |
 * |      1 |    2 | r       | length of the reason                                     |
 * |      3 |    r | reason  | UTF-8 reason                                             |
 *
 * SEALED (0x07, either way, after a keyed handshake only, 1 + n + 16 bytes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x07                                                     |
 * |      1 |    n | sealed  | the AES-256-GCM ciphertext of a whole frame's payload    |
 * |  1 + n |   16 | tag     | GCM tag over the ciphertext and the 5 header bytes       |
 *
 * CLOSING (0x08, server to client, 3 + r bytes; the server then closes):
 * | offset | size | field   | meaning                                                  |
 * |-------:|-----:|---------|----------------------------------------------------------|
 * |      0 |    1 | type    | 0x08                                                     |
 * |      1 |    2 | r       | length of the reason                                     |
 * |      3 |    r | reason  | UTF-8 reason; every request read was answered            |
 */
import { Reader, Writer } from "../base/cursor.ts";
import { SEAL_TAG_SIZE } from "./seal.ts";

/** "OMCH" in ASCII: the first field of every HELLO. */
export const CHANNEL_MAGIC = 0x4f4d4348;
/** The one protocol version this node speaks: 2, sealed sessions (1 had none). */
export const PROTOCOL_VERSION = 2;
/** Size of a nonce. */
export const NONCE_SIZE = 32;
/** Size of a proof (an HMAC-SHA-256). */
export const PROOF_SIZE = 32;
/** The largest payload accepted or sent: 16 MiB. Larger data goes in several requests. */
export const MAX_FRAME_SIZE = 16 * 1024 * 1024;
/**
 * The largest payload read before the handshake is done, from a peer not yet authenticated:
 * HELLO is 43 bytes, WELCOME 69, AUTH 33, and a REFUSED reason fits with room to spare.
 */
export const HANDSHAKE_FRAME_LIMIT = 1024;
/** What sealing adds to a payload: the SEALED type byte and the GCM tag. */
export const SEAL_OVERHEAD = 1 + SEAL_TAG_SIZE;
/** Bytes before the body of a REQUEST, plus the command. */
export const REQUEST_OVERHEAD = 6;
/** Bytes before the body of a REPLY, plus the error. */
export const REPLY_OVERHEAD = 7;

/** Frame types: the byte values are on the wire and never change. */
export const FrameType = {
  hello: 0x01,
  welcome: 0x02,
  auth: 0x03,
  request: 0x04,
  reply: 0x05,
  refused: 0x06,
  sealed: 0x07,
  closing: 0x08,
} as const;
/** A frame type's name ("hello", "request", ...). */
export type FrameKind = keyof typeof FrameType;

/** Bits of HELLO's flags; unknown bits are sent as 0 and ignored. */
export const HelloFlags = { key: 0x0001 } as const;

/** One decoded frame. */
export type Frame =
  | {
    readonly type: "hello";
    readonly version: number;
    readonly nodeId: number;
    readonly flags: number;
    readonly nonce: Uint8Array;
  }
  | {
    readonly type: "welcome";
    readonly version: number;
    readonly nodeId: number;
    readonly nonce: Uint8Array;
    readonly proof: Uint8Array;
  }
  | { readonly type: "auth"; readonly proof: Uint8Array }
  | {
    readonly type: "request";
    readonly seq: number;
    readonly command: string;
    readonly body: Uint8Array;
  }
  | {
    readonly type: "reply";
    readonly seq: number;
    readonly error: string;
    readonly body: Uint8Array;
  }
  | { readonly type: "refused"; readonly reason: string }
  | { readonly type: "sealed"; readonly sealed: Uint8Array }
  | { readonly type: "closing"; readonly reason: string };

/** A frame that does not parse, or a stream that is not a stream of frames. */
export class FrameError extends SyntaxError {
  override name = "FrameError";
}

/** A frame's announced length out of bounds, refused before its payload is read. */
export class FrameLengthError extends FrameError {
  override name = "FrameLengthError";
  constructor(message: string, readonly length: number) {
    super(message);
  }
}

/**
 * A HELLO of a protocol version this node does not speak; the message is the REFUSED reason, and
 * says which node to upgrade (from the side of the node that refuses).
 */
export class UnsupportedVersionError extends RangeError {
  override name = "UnsupportedVersionError";
  constructor(readonly version: number) {
    super(
      `unsupported protocol version ${version}: upgrade om on ${
        version < PROTOCOL_VERSION ? "that" : "this"
      } node (this node speaks ${PROTOCOL_VERSION})`,
    );
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** The frame kind of each type byte. */
export const kindOfByte = new Map<number, FrameKind>(
  Object.entries(FrameType).map(([kind, byte]) => [byte, kind as FrameKind]),
);

/** UTF-8 of a message, cut on a character boundary to at most `max` bytes. */
function clipped(text: string, max: number): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

function fixed(bytes: Uint8Array, size: number, field: string): Uint8Array {
  if (bytes.length !== size) {
    throw new RangeError(`Cannot encode ${field}: ${bytes.length} bytes, expected ${size}`);
  }
  return bytes;
}

/** The payload of a frame, without the length prefix. */
function encodePayload(frame: Frame): Uint8Array {
  switch (frame.type) {
    case "hello":
      return new Writer(11 + NONCE_SIZE).u8(FrameType.hello).u32(CHANNEL_MAGIC)
        .u16(frame.version).u16(frame.nodeId).u16(frame.flags)
        .raw(fixed(frame.nonce, NONCE_SIZE, "nonce")).done();
    case "welcome":
      return new Writer(5 + NONCE_SIZE + PROOF_SIZE).u8(FrameType.welcome)
        .u16(frame.version).u16(frame.nodeId)
        .raw(fixed(frame.nonce, NONCE_SIZE, "nonce"))
        .raw(fixed(frame.proof, PROOF_SIZE, "proof")).done();
    case "auth":
      return new Writer(1 + PROOF_SIZE).u8(FrameType.auth)
        .raw(fixed(frame.proof, PROOF_SIZE, "proof")).done();
    case "request": {
      const command = encoder.encode(frame.command);
      if (command.length < 1 || command.length > 255) {
        throw new RangeError(
          `Cannot encode request "${frame.command}": a command has 1 to 255 bytes`,
        );
      }
      return new Writer(REQUEST_OVERHEAD + command.length + frame.body.length)
        .u8(FrameType.request).u32(frame.seq).u8(command.length).raw(command)
        .raw(frame.body).done();
    }
    case "reply": {
      const error = clipped(frame.error, 0xffff);
      return new Writer(REPLY_OVERHEAD + error.length + frame.body.length)
        .u8(FrameType.reply).u32(frame.seq).u16(error.length).raw(error)
        .raw(frame.body).done();
    }
    case "refused":
    case "closing": {
      const reason = clipped(frame.reason, 0xffff);
      return new Writer(3 + reason.length).u8(FrameType[frame.type]).u16(reason.length)
        .raw(reason).done();
    }
    case "sealed":
      if (frame.sealed.length < SEAL_TAG_SIZE) {
        throw new RangeError(
          `Cannot encode sealed frame: shorter than its ${SEAL_TAG_SIZE}-byte tag`,
        );
      }
      return new Writer(1 + frame.sealed.length).u8(FrameType.sealed).raw(frame.sealed).done();
  }
}

/** The largest payload of a frame of this type: a sealed frame holds a whole one, and its tag. */
const limitOf = (frame: Frame) =>
  frame.type === "sealed" ? MAX_FRAME_SIZE + SEAL_OVERHEAD : MAX_FRAME_SIZE;

/** A frame's payload (without the length prefix), checked against its type's limit. */
export function boundedPayload(frame: Frame): Uint8Array {
  const payload = encodePayload(frame);
  if (payload.length > limitOf(frame)) {
    throw new RangeError(
      `Cannot encode ${frame.type} frame: ${payload.length} bytes exceed the limit of ` +
        `${MAX_FRAME_SIZE}`,
    );
  }
  return payload;
}

/** A payload with its length prefix. */
export const prefixed = (payload: Uint8Array) =>
  new Writer(4 + payload.length).u32(payload.length).raw(payload).done();

/**
 * Encodes a frame with its length prefix, ready to write. Error and reason texts longer than
 * 65535 bytes are cut; a payload over MAX_FRAME_SIZE (a sealed one: over it plus SEAL_OVERHEAD)
 * throws a RangeError.
 */
export function encodeFrame(frame: Frame): Uint8Array {
  return prefixed(boundedPayload(frame));
}

function text(reader: Reader, length: number, field: string): string {
  try {
    return decoder.decode(reader.bytesOf(length, field));
  } catch (error) {
    if (error instanceof RangeError) throw error;
    throw new FrameError(`Cannot read ${reader.what}: ${field} is not UTF-8`);
  }
}

function decodeFields(reader: Reader, kind: FrameKind): Frame {
  switch (kind) {
    case "hello": {
      const magic = reader.u32("magic");
      if (magic !== CHANNEL_MAGIC) {
        throw new FrameError(`Cannot read HELLO: magic 0x${magic.toString(16)}, not "OMCH"`);
      }
      const version = reader.u16("version");
      if (version !== PROTOCOL_VERSION) throw new UnsupportedVersionError(version);
      const nodeId = reader.u16("node");
      const flags = reader.u16("flags");
      const nonce = reader.bytesOf(NONCE_SIZE, "nonce");
      reader.end();
      return { type: "hello", version, nodeId, flags, nonce };
    }
    case "welcome": {
      const version = reader.u16("version");
      const nodeId = reader.u16("node");
      const nonce = reader.bytesOf(NONCE_SIZE, "nonce");
      const proof = reader.bytesOf(PROOF_SIZE, "proof");
      reader.end();
      return { type: "welcome", version, nodeId, nonce, proof };
    }
    case "auth": {
      const proof = reader.bytesOf(PROOF_SIZE, "proof");
      reader.end();
      return { type: "auth", proof };
    }
    case "request": {
      const seq = reader.u32("seq");
      const length = reader.u8("command length");
      if (length === 0) throw new FrameError("Cannot read REQUEST: empty command");
      const command = text(reader, length, "command");
      return { type: "request", seq, command, body: reader.bytesOf(reader.remaining, "body") };
    }
    case "reply": {
      const seq = reader.u32("seq");
      const error = text(reader, reader.u16("error length"), "error");
      return { type: "reply", seq, error, body: reader.bytesOf(reader.remaining, "body") };
    }
    case "refused":
    case "closing": {
      const reason = text(reader, reader.u16("reason length"), "reason");
      reader.end();
      return { type: kind, reason };
    }
    case "sealed": {
      if (reader.remaining < SEAL_TAG_SIZE) {
        throw new FrameError(
          `Cannot read SEALED frame: shorter than its ${SEAL_TAG_SIZE}-byte tag`,
        );
      }
      return { type: "sealed", sealed: reader.bytesOf(reader.remaining, "sealed") };
    }
  }
}

/**
 * Decodes one payload (the bytes after the length prefix). Throws FrameError for anything that
 * is not a frame (unknown type, wrong magic, short or trailing bytes, bad UTF-8) and
 * UnsupportedVersionError for a well-formed HELLO of another version. Bodies are views into
 * `payload`, not copies.
 */
export function decodeFrame(payload: Uint8Array): Frame {
  const type = payload[0];
  const kind = kindOfByte.get(type);
  if (kind === undefined) {
    throw new FrameError(
      payload.length === 0
        ? "Cannot read frame: empty payload"
        : `Cannot read frame: unknown type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
  const reader = new Reader(payload, `${kind.toUpperCase()} frame`);
  reader.u8("type");
  try {
    return decodeFields(reader, kind);
  } catch (error) {
    if (error instanceof RangeError && !(error instanceof UnsupportedVersionError)) {
      throw new FrameError(error.message);
    }
    throw error;
  }
}
