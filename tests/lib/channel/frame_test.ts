/**
 * lib/channel/frame.ts: every frame type's golden bytes (PROTOCOL.md §8.3), truncations, trailing
 * bytes, bad fields, the size limits, and the version refusal. Reading frames off a stream:
 * conn_test.ts.
 */
import assert from "node:assert/strict";
import {
  CHANNEL_MAGIC,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameError,
  FrameType,
  HANDSHAKE_FRAME_LIMIT,
  HelloFlags,
  MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
  SEAL_OVERHEAD,
  UnsupportedVersionError,
} from "../../../lib/channel/frame.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) =>
  new Uint8Array(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const run = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i);

const hello: Frame = {
  type: "hello",
  version: 2,
  nodeId: 0x0adc,
  flags: HelloFlags.key,
  nonce: run(0x00, 32),
};
const welcome: Frame = {
  type: "welcome",
  version: 2,
  nodeId: 0x0001,
  nonce: run(0x20, 32),
  proof: run(0xa0, 32),
};
const auth: Frame = { type: "auth", proof: run(0x40, 32) };
const request: Frame = {
  type: "request",
  seq: 7,
  command: "ping",
  body: new Uint8Array([1, 2, 3]),
};
const reply: Frame = { type: "reply", seq: 7, error: "", body: new Uint8Array([1, 2, 3]) };
const errorReply: Frame = {
  type: "reply",
  seq: 9,
  error: 'unknown command "x"',
  body: new Uint8Array(),
};
const refused: Frame = { type: "refused", reason: "authentication failed" };
const sealed: Frame = { type: "sealed", sealed: run(0x60, 19) };
const closing: Frame = { type: "closing", reason: "idle for 120000 ms" };

// Each frame written out by hand from the tables in PROTOCOL.md §8.
const GOLDEN: [Frame, string][] = [
  [hello, `0000002b 01 4f4d4348 0002 0adc 0001 ${hex(run(0x00, 32))}`],
  [welcome, `00000045 02 0002 0001 ${hex(run(0x20, 32))} ${hex(run(0xa0, 32))}`],
  [auth, `00000021 03 ${hex(run(0x40, 32))}`],
  [request, `0000000d 04 00000007 04 70696e67 010203`],
  [reply, `0000000a 05 00000007 0000 010203`],
  [errorReply, `0000001a 05 00000009 0013 756e6b6e6f776e20636f6d6d616e6420227822`],
  [refused, `00000018 06 0015 61757468656e7469636174696f6e206661696c6564`],
  [sealed, `00000014 07 ${hex(run(0x60, 19))}`],
  [closing, `00000015 08 0012 69646c6520666f7220313230303030206d73`],
];

const payloadOf = (frame: Frame) => encodeFrame(frame).subarray(4);

Deno.test("frame: constants on the wire never change", () => {
  assert.deepEqual(FrameType, {
    hello: 0x01,
    welcome: 0x02,
    auth: 0x03,
    request: 0x04,
    reply: 0x05,
    refused: 0x06,
    sealed: 0x07,
    closing: 0x08,
  });
  assert.equal(CHANNEL_MAGIC, 0x4f4d4348);
  assert.equal(new TextDecoder().decode(fromHex("4f4d4348")), "OMCH");
  assert.equal(PROTOCOL_VERSION, 2);
  assert.equal(MAX_FRAME_SIZE, 16 * 1024 * 1024);
  assert.equal(HANDSHAKE_FRAME_LIMIT, 1024);
  assert.equal(SEAL_OVERHEAD, 17);
  assert.deepEqual(HelloFlags, { key: 1 });
});

Deno.test("frame: every type encodes to its golden bytes and decodes back", () => {
  for (const [frame, golden] of GOLDEN) {
    const bytes = encodeFrame(frame);
    assert.equal(hex(bytes), hex(fromHex(golden)), frame.type);
    assert.deepEqual(decodeFrame(bytes.subarray(4)), frame, frame.type);
  }
});

Deno.test("frame: bodies are binary-safe and may be empty; commands are UTF-8", () => {
  const body = Uint8Array.from({ length: 256 }, (_, i) => i);
  for (
    const frame of [
      { type: "request", seq: 0xffffffff, command: "migrate", body },
      { type: "request", seq: 1, command: "x", body: new Uint8Array() },
      { type: "request", seq: 1, command: "état", body },
      { type: "reply", seq: 0, error: "", body },
      { type: "reply", seq: 3, error: "échec", body },
    ] as Frame[]
  ) {
    assert.deepEqual(decodeFrame(payloadOf(frame)), frame);
  }
});

Deno.test("frame: every truncation point of a fixed-size frame is refused", () => {
  for (const frame of [hello, welcome, auth, refused, closing]) {
    const payload = payloadOf(frame);
    for (let n = 0; n < payload.length; n++) {
      assert.throws(() => decodeFrame(payload.subarray(0, n)), FrameError, `${frame.type} ${n}`);
    }
  }
});

Deno.test("frame: every truncation point inside a request or reply header is refused", () => {
  // Bytes past the header are the body, so only the header can be cut short.
  const req = payloadOf(request);
  for (let n = 0; n < 1 + 4 + 1 + 4; n++) {
    assert.throws(() => decodeFrame(req.subarray(0, n)), FrameError, `request ${n}`);
  }
  const rep = payloadOf(errorReply);
  for (let n = 0; n < 1 + 4 + 2 + 19; n++) {
    assert.throws(() => decodeFrame(rep.subarray(0, n)), FrameError, `reply ${n}`);
  }
});

Deno.test("frame: trailing bytes after a fixed-size frame are refused", () => {
  for (const frame of [hello, welcome, auth, refused, closing]) {
    const payload = payloadOf(frame);
    const longer = new Uint8Array(payload.length + 1);
    longer.set(payload);
    assert.throws(() => decodeFrame(longer), /unexpected bytes/, frame.type);
  }
});

Deno.test("frame: wrong magic, unknown type, bad UTF-8 and an empty command are refused", () => {
  const wrongMagic = payloadOf(hello).slice();
  wrongMagic[1] = 0x58;
  assert.throws(() => decodeFrame(wrongMagic), /magic 0x584d4348/);
  assert.throws(() => decodeFrame(new Uint8Array([0x09, 0, 0])), /unknown type 0x09/);
  assert.throws(() => decodeFrame(new Uint8Array([0x00])), /unknown type 0x00/);
  assert.throws(() => decodeFrame(new Uint8Array()), /empty payload/);
  assert.throws(() => decodeFrame(fromHex("06 0002 c328")), /reason is not UTF-8/);
  assert.throws(() => decodeFrame(fromHex("04 00000001 00")), /empty command/);
  assert.throws(() => decodeFrame(fromHex("04 00000001 01 ff")), /command is not UTF-8/);
});

Deno.test("frame: a HELLO of another version is UnsupportedVersionError, whatever follows", () => {
  const v1 = fromHex("01 4f4d4348 0001 ffff");
  assert.throws(
    () => decodeFrame(v1),
    (error) =>
      error instanceof UnsupportedVersionError && error.version === 1 &&
      error.message ===
        "unsupported protocol version 1: upgrade om on that node (this node speaks 2)",
  );
  // A newer peer: this node is the one to upgrade.
  assert.throws(
    () => decodeFrame(fromHex("01 4f4d4348 0003 ffff")),
    /^UnsupportedVersionError: unsupported protocol version 3: upgrade om on this node \(this node speaks 2\)$/,
  );
  // The magic is checked first: a stranger's bytes are garbage, not a version question.
  assert.throws(() => decodeFrame(fromHex("01 00000000 0002")), FrameError);
});

Deno.test("frame: size limits: commands 1-255 bytes, texts cut at 65535, payload at 16 MiB", () => {
  assert.throws(
    () => encodeFrame({ ...request, command: "" } as Frame),
    /a command has 1 to 255 bytes/,
  );
  assert.throws(
    () => encodeFrame({ ...request, command: "c".repeat(256) } as Frame),
    RangeError,
  );
  assert.equal(
    (decodeFrame(payloadOf({ ...request, command: "c".repeat(255) } as Frame)) as {
      command: string;
    }).command.length,
    255,
  );
  // A long message is cut on a character boundary: "é" is two bytes.
  const long = decodeFrame(payloadOf({ type: "refused", reason: "é".repeat(40000) })) as {
    reason: string;
  };
  assert.equal(long.reason, "é".repeat(32767));
  const biggest = MAX_FRAME_SIZE - 6 - 1;
  const framed = encodeFrame({
    type: "request",
    seq: 1,
    command: "x",
    body: new Uint8Array(biggest),
  });
  assert.equal(framed.length, 4 + MAX_FRAME_SIZE);
  assert.throws(
    () => encodeFrame({ type: "request", seq: 1, command: "x", body: new Uint8Array(biggest + 1) }),
    /exceed the limit of 16777216/,
  );
  // A sealed frame holds a whole payload and its tag; a SEALED frame shorter than a tag is none.
  const wholeSealed = new Uint8Array(MAX_FRAME_SIZE + SEAL_OVERHEAD - 1);
  assert.equal(
    encodeFrame({ type: "sealed", sealed: wholeSealed }).length,
    4 + MAX_FRAME_SIZE + 17,
  );
  assert.throws(
    () => encodeFrame({ type: "sealed", sealed: new Uint8Array(wholeSealed.length + 1) }),
    RangeError,
  );
  assert.throws(() => encodeFrame({ type: "sealed", sealed: new Uint8Array(15) }), /tag/);
  assert.throws(
    () => decodeFrame(fromHex(`07 ${hex(run(0, 15))}`)),
    /shorter than its 16-byte tag/,
  );
});
