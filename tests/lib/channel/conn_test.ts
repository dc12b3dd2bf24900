/**
 * lib/channel/conn.ts: the frame reader over chunked streams, its limits (the absolute one and the
 * bound before the handshake), and a FrameConn pair that seals after `established`: frames both
 * ways in order, and each kind of tampering refused.
 */
import assert from "node:assert/strict";
import { type ByteSource, FrameConn, FrameReader } from "../../../lib/channel/conn.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameLengthError,
  HANDSHAKE_FRAME_LIMIT,
  HelloFlags,
  MAX_FRAME_SIZE,
} from "../../../lib/channel/frame.ts";
import { deriveSeal, SealError } from "../../../lib/channel/seal.ts";
import { importKey } from "../../../lib/base/key.ts";

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
const request: Frame = {
  type: "request",
  seq: 7,
  command: "ping",
  body: new Uint8Array([1, 2, 3]),
};
const refused: Frame = { type: "refused", reason: "authentication failed" };
/** One frame of each type. */
const FRAMES: Frame[] = [
  hello,
  { type: "welcome", version: 2, nodeId: 1, nonce: run(0x20, 32), proof: run(0xa0, 32) },
  { type: "auth", proof: run(0x40, 32) },
  request,
  { type: "reply", seq: 7, error: "", body: new Uint8Array([1, 2, 3]) },
  { type: "reply", seq: 9, error: 'unknown command "x"', body: new Uint8Array() },
  refused,
  { type: "sealed", sealed: run(0x60, 19) },
  { type: "closing", reason: "idle for 120000 ms" },
];

/** A source that hands out the given chunks, one per read (split further if `into` is small). */
function chunks(...parts: Uint8Array[]): ByteSource & { reads: number } {
  const queue = parts.map((p) => p.slice());
  return {
    reads: 0,
    read(into: Uint8Array) {
      this.reads++;
      const next = queue[0];
      if (next === undefined) return Promise.resolve(null);
      const n = Math.min(into.length, next.length);
      into.set(next.subarray(0, n));
      if (n === next.length) queue.shift();
      else queue[0] = next.subarray(n);
      return Promise.resolve(n);
    },
  };
}

const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

Deno.test("frame reader: several frames in one chunk, then a clean end", async () => {
  const stream = concat(...FRAMES.map((frame) => encodeFrame(frame)));
  const reader = new FrameReader(chunks(stream));
  for (const frame of FRAMES) assert.deepEqual(decodeFrame((await reader.next())!), frame);
  assert.equal(await reader.next(), null);
});

Deno.test("frame reader: frames arriving one byte at a time", async () => {
  const stream = concat(encodeFrame(hello), encodeFrame(request));
  const reader = new FrameReader(chunks(...Array.from(stream, (b) => new Uint8Array([b]))));
  assert.deepEqual(decodeFrame((await reader.next())!), hello);
  assert.deepEqual(decodeFrame((await reader.next())!), request);
  assert.equal(await reader.next(), null);
});

Deno.test("frame reader: a stream ending inside a frame is a FrameError", async () => {
  const bytes = encodeFrame(request);
  await assert.rejects(
    new FrameReader(chunks(bytes.subarray(0, 2))).next(),
    /stream ended after 2 of 4 length bytes/,
  );
  await assert.rejects(
    new FrameReader(chunks(bytes.subarray(0, 9))).next(),
    /stream ended after 5 of 13 bytes/,
  );
});

Deno.test("frame reader: a zero or huge length is refused before any payload is read", async () => {
  await assert.rejects(new FrameReader(chunks(fromHex("00000000"))).next(), /length 0 is not/);
  const huge = chunks(fromHex("ffffffff"), new Uint8Array(1000));
  await assert.rejects(new FrameReader(huge).next(), /length 4294967295 is not between 1 and/);
  assert.equal(huge.reads, 1);
  await assert.rejects(
    new FrameReader(chunks(encodeFrame(request)), 12).next(),
    /length 13 is not between 1 and 12/,
  );
});

Deno.test("frame reader: a 16 MiB frame in 64 KiB chunks", async () => {
  const body = new Uint8Array(MAX_FRAME_SIZE - 7).fill(0x5a);
  const bytes = encodeFrame({ type: "request", seq: 5, command: "x", body });
  const parts = [];
  for (let at = 0; at < bytes.length; at += 65536) parts.push(bytes.subarray(at, at + 65536));
  const payload = (await new FrameReader(chunks(...parts)).next())!;
  const frame = decodeFrame(payload) as { body: Uint8Array };
  assert.equal(frame.body.length, body.length);
  assert.equal(frame.body.every((b) => b === 0x5a), true);
});

Deno.test("frame reader: before the handshake, a length over the bound is refused unread", async () => {
  const source = chunks(fromHex("00000401"), new Uint8Array(1025));
  const reader = new FrameReader(source);
  reader.bound = HANDSHAKE_FRAME_LIMIT;
  await assert.rejects(reader.next(), (error) => {
    assert.ok(error instanceof FrameLengthError);
    assert.equal(error.length, 1025);
    assert.equal(
      error.message,
      "Cannot read frame: length 1025 before the handshake is done (at most 1024)",
    );
    return true;
  });
  assert.equal(source.reads, 1, "nothing of the payload was read");
  // A frame of exactly the bound is read; with the bound lifted, a longer one too.
  const body = new Uint8Array(HANDSHAKE_FRAME_LIMIT - 6 - 4);
  const ok = new FrameReader(
    chunks(encodeFrame({ type: "request", seq: 1, command: "ping", body })),
  );
  ok.bound = HANDSHAKE_FRAME_LIMIT;
  assert.equal((await ok.next())!.length, HANDSHAKE_FRAME_LIMIT);
  const lifted = new FrameReader(chunks(fromHex("00000401"), new Uint8Array(1025)));
  lifted.bound = HANDSHAKE_FRAME_LIMIT;
  lifted.bound = undefined;
  assert.equal((await lifted.next())!.length, 1025);
});

/** Two FrameConns over a loopback TCP connection, and the bare socket under the first. */
async function connPair() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [near, far] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  const a = new FrameConn(near);
  const b = new FrameConn(far);
  return {
    a,
    b,
    /** Writes bytes straight onto a's socket, past a's FrameConn. */
    inject: async (bytes: Uint8Array) => {
      while (bytes.length) bytes = bytes.subarray(await near.write(bytes));
    },
    [Symbol.dispose]() {
      a.close();
      b.close();
    },
  };
}

const params = {
  version: 2,
  nonces: { client: run(0x10, 32), server: run(0x90, 32) },
  clientNode: 3,
  serverNode: 7,
};
const testKey = () => importKey(run(0x33, 32));

Deno.test("conn: before `established`, a FrameConn reads no frame longer than a handshake frame", async () => {
  using pair = await connPair();
  const big = { type: "request", seq: 1, command: "ping", body: new Uint8Array(2000) } as Frame;
  await pair.a.send(big);
  await assert.rejects(pair.b.next(), /length 2010 before the handshake is done \(at most 1024\)/);
  using again = await connPair();
  again.b.established();
  await again.a.send(big);
  assert.deepEqual(await again.b.next(), big);
});

Deno.test("conn: sealed, frames go both ways, in the order they were sent", async () => {
  using pair = await connPair();
  const key = await testKey();
  pair.a.established(await deriveSeal(key, "client", params));
  pair.b.established(await deriveSeal(key, "server", params));
  assert.equal(pair.a.sealed, true);
  const secret = new TextEncoder().encode("a body nobody else may read");
  const requests = Array.from(
    { length: 5 },
    (_, i) => ({ type: "request", seq: i, command: "ping", body: secret }) as Frame,
  );
  // Sent without waiting: the counters follow the order of the calls.
  await Promise.all(requests.map((frame) => pair.a.send(frame)));
  for (const frame of requests) assert.deepEqual(await pair.b.next(), frame);
  const big = {
    type: "reply",
    seq: 9,
    error: "",
    body: new Uint8Array(MAX_FRAME_SIZE - 7),
  } as Frame;
  const sending = Promise.all([pair.b.send(big), pair.b.send(refused)]);
  assert.equal(((await pair.a.next()) as { body: Uint8Array }).body.length, MAX_FRAME_SIZE - 7);
  assert.deepEqual(await pair.a.next(), refused);
  await sending;
});

Deno.test("conn: sealed, an unsealed or foreign frame is a SealError", async () => {
  const key = await testKey();
  for (
    const [name, bytes] of [
      ["an unsealed request", encodeFrame(request)],
      ["a refusal in clear", encodeFrame(refused)],
      ["a sealed frame of made-up bytes", encodeFrame({ type: "sealed", sealed: run(0, 40) })],
    ] as const
  ) {
    using pair = await connPair();
    pair.a.established(await deriveSeal(key, "client", params));
    pair.b.established(await deriveSeal(key, "server", params));
    await pair.inject(bytes);
    await assert.rejects(pair.b.next(), SealError, name);
  }
  // A seal of other nonces (another connection's keys) does not open here.
  using pair = await connPair();
  pair.a.established(
    await deriveSeal(key, "client", {
      ...params,
      nonces: { ...params.nonces, server: run(1, 32) },
    }),
  );
  pair.b.established(await deriveSeal(key, "server", params));
  await pair.a.send(request);
  await assert.rejects(pair.b.next(), /sealed frame 0 did not open: it was altered/);
});
