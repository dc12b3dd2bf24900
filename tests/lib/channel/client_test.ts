/**
 * lib/channel/client.ts over loopback and a unix socket: bodies up to the frame limit, replies
 * matched by sequence number, timeouts on a silent server and a slow reply, pending requests
 * rejected when either side closes, and the errors of a connection that cannot be made.
 */
import assert from "node:assert/strict";
import { connectChannel } from "../../../lib/channel/client.ts";
import { FrameConn } from "../../../lib/channel/conn.ts";
import { type Frame, MAX_FRAME_SIZE, PROTOCOL_VERSION } from "../../../lib/channel/frame.ts";
import { type Handler, serveChannel } from "../../../lib/channel/server.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { HOST, logger, newKey, serve, withServer } from "./channelkit.ts";

Deno.test("channel: bodies are binary-safe up to the frame limit", async () => {
  await withServer({}, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
    try {
      const random = crypto.getRandomValues(new Uint8Array(65536));
      const body = new Uint8Array(MAX_FRAME_SIZE - 6 - 4);
      for (let at = 0; at < body.length; at += random.length) {
        body.set(random.subarray(0, body.length - at), at);
      }
      const echoed = await client.request("ping", body);
      assert.equal(echoed.length, body.length);
      assert.equal(echoed.every((b, i) => b === body[i]), true);
      await assert.rejects(
        client.request("ping", new Uint8Array(MAX_FRAME_SIZE)),
        /exceed the limit of 16777216/,
      );
      assert.deepEqual(await client.request("ping", random), random, "still usable");
    } finally {
      await client.close();
    }
  });
});

Deno.test("channel: the client matches replies by seq, whatever their order", async () => {
  // A hand-made server that answers three requests in reverse order.
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const fake = (async () => {
    const link = new FrameConn(await listener.accept());
    await link.next();
    await link.send({
      type: "welcome",
      version: PROTOCOL_VERSION,
      nodeId: 2,
      nonce: new Uint8Array(32),
      proof: new Uint8Array(32),
    });
    link.established();
    const requests = [];
    for (let i = 0; i < 3; i++) requests.push((await link.next()) as Frame & { type: "request" });
    for (const r of requests.reverse()) {
      await link.send({ type: "reply", seq: r.seq, error: "", body: r.body });
    }
    assert.equal(await link.next(), null);
    link.close();
  })();
  const client = await connectChannel({ hostname: HOST, port: listener.addr.port, nodeId: 3 });
  const replies = await Promise.all(
    [1, 2, 3].map((n) => client.request("echo", new Uint8Array([n]))),
  );
  assert.deepEqual(replies, [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
  await client.close();
  await fake;
  listener.close();
});

Deno.test("channel: the client gives up on a silent server and on a slow reply", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  await assert.rejects(
    connectChannel({ hostname: HOST, port: listener.addr.port, timeoutMs: 150 }),
    (error) =>
      error instanceof Deno.errors.TimedOut && /no handshake within 150 ms/.test(error.message),
  );
  for (const conn of held) conn.close();
  listener.close();
  await accepting;

  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const handlers = new Map<string, Handler>([["wait", async () => {
    await gate;
    return new Uint8Array([1]);
  }]]);
  await withServer({ handlers }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, timeoutMs: 2000 });
    try {
      await assert.rejects(
        client.request("wait", undefined, { timeoutMs: 100 }),
        (error) =>
          error instanceof Deno.errors.TimedOut &&
          /"wait" .* no reply within 100 ms/.test(error.message),
      );
      release();
      // The late reply is dropped; the next request gets its own.
      assert.deepEqual(await client.request("ping", new Uint8Array([5])), new Uint8Array([5]));
    } finally {
      await client.close();
    }
  });
});

Deno.test("channel: closing either side rejects what is pending", async () => {
  const handlers = new Map<string, Handler>([["never", () => new Promise(() => {})]]);
  await withServer({ handlers }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port });
    const pending = assert.rejects(
      client.request("never", undefined, { timeoutMs: 0 }),
      /the channel was closed/,
    );
    await client.close();
    await pending;
    await assert.rejects(client.request("ping"), /the channel was closed/);
  });
  const server = serve({ handlers });
  const client = await connectChannel({ hostname: HOST, port: server.port });
  const pending = assert.rejects(
    client.request("never", undefined, { timeoutMs: 0 }),
    /connection closed|reset/i,
  );
  await retryUntil(() => server.stats.requests === 0 && server.stats.accepted === 1, 2000);
  await server.close();
  await pending;
  await client.close();
});

Deno.test("channel: nobody listening is the connection's own error", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(connectChannel({ hostname: HOST, port }), Deno.errors.ConnectionRefused);
});

Deno.test("channel: a unix socket that is not there fails to connect; key and path do not mix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(connectChannel({ path: `${dir}/none.sock` }), Deno.errors.NotFound);
    await assert.rejects(connectChannel({ path: `${dir}/x`, hostname: HOST }), TypeError);
    const key = await newKey();
    assert.throws(() => serveChannel({ path: `${dir}/k.sock`, nodeId: 1, logger, key }), TypeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
