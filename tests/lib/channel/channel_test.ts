import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { silentLogger } from "../../../lib/base/log.ts";
import { makeAcl } from "../../../lib/channel/access.ts";
import {
  builtinHandlers,
  type ChannelClient,
  channelProof,
  ChannelRefusedError,
  type ChannelServer,
  connectChannel,
  DEFAULT_CHANNEL_PORT,
  dispatch,
  type Handler,
  type Peer,
  RemoteError,
  serveChannel,
  type ServeChannelOptions,
} from "../../../lib/channel/channel.ts";
import {
  encodeFrame,
  type Frame,
  FrameConn,
  HelloFlags,
  MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
} from "../../../lib/channel/frame.ts";
import { importKey } from "../../../lib/base/key.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { VERSION } from "../../../lib/base/version.ts";

const logger = silentLogger;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HOST = "127.0.0.1";

const newKey = () => importKey(crypto.getRandomValues(new Uint8Array(32)));

function serve(options: Partial<ServeChannelOptions> = {}): ChannelServer {
  return serveChannel({ hostname: HOST, port: 0, nodeId: 7, logger, ...options });
}

/** Runs `body` with a server, always closing it. */
async function withServer(
  options: Partial<ServeChannelOptions>,
  body: (server: ChannelServer) => Promise<void>,
): Promise<void> {
  const server = serve(options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** A bare TCP connection that speaks frames by hand, for the tests of misbehaving peers. */
async function raw(port: number) {
  const conn = await Deno.connect({ hostname: HOST, port });
  const link = new FrameConn(conn);
  return {
    conn,
    link,
    write: async (bytes: Uint8Array) => {
      let rest = bytes;
      while (rest.length) rest = rest.subarray(await conn.write(rest));
    },
    /** Every frame until the server closes (a reset after the last frame counts as closing). */
    async frames(): Promise<Frame[]> {
      const frames: Frame[] = [];
      try {
        for (let frame = await link.next(); frame; frame = await link.next()) frames.push(frame);
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      }
      link.close();
      return frames;
    },
  };
}

const helloFrame = (options: { version?: number; key?: boolean } = {}): Frame => ({
  type: "hello",
  version: options.version ?? PROTOCOL_VERSION,
  nodeId: 3,
  flags: options.key ? HelloFlags.key : 0,
  nonce: crypto.getRandomValues(new Uint8Array(32)),
});

const refusal = (reason: string | RegExp) => (error: unknown) => {
  const e = error as ChannelRefusedError;
  assert.equal(e.name, "ChannelRefusedError");
  if (typeof reason === "string") assert.equal(e.reason, reason);
  else assert.match(e.reason, reason);
  return true;
};

Deno.test("channel: the default port is 20302, beside discovery's 20301", () => {
  assert.equal(DEFAULT_CHANNEL_PORT, 20302);
});

Deno.test("channel: proofs are HMAC-SHA-256 over label and both nonces, in each side's order", async () => {
  const bytes = Uint8Array.from({ length: 32 }, (_, i) => i);
  const key = await importKey(bytes);
  const nonces = { client: new Uint8Array(32).fill(0xc1), server: new Uint8Array(32).fill(0x5e) };
  const expect = (label: string, first: Uint8Array, second: Uint8Array) =>
    createHmac("sha256", bytes).update(label).update(first).update(second).digest("hex");
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  assert.equal(
    hex(await channelProof(key, "server", nonces)),
    expect("om-channel-server", nonces.client, nonces.server),
  );
  assert.equal(
    hex(await channelProof(key, "client", nonces)),
    expect("om-channel-client", nonces.server, nonces.client),
  );
});

Deno.test("channel: dispatch answers unknown commands, throws and non-bytes with error texts", async () => {
  const peer: Peer = { address: HOST, port: 1, nodeId: 0, authenticated: false };
  const handlers = new Map<string, Handler>([
    ...builtinHandlers(9),
    ["boom", () => Promise.reject(new Error("disk on fire"))],
    ["silent", () => Promise.reject(new Error(""))],
    ["odd", () => Promise.resolve("text" as unknown as Uint8Array)],
    ["huge", () => Promise.resolve(new Uint8Array(MAX_FRAME_SIZE))],
  ]);
  const call = (command: string, body = new Uint8Array([1, 2])) =>
    dispatch(handlers, { command, body, peer });
  assert.deepEqual(await call("ping"), { error: "", body: new Uint8Array([1, 2]) });
  assert.deepEqual(JSON.parse(decoder.decode((await call("version")).body)), {
    om: VERSION,
    protocol: 1,
    node: 9,
  });
  assert.equal((await call("xyz")).error, 'unknown command "xyz"');
  assert.equal((await call("boom")).error, "disk on fire");
  assert.equal((await call("silent")).error, 'command "silent" failed');
  assert.equal((await call("odd")).error, 'command "odd" returned no bytes');
  assert.match((await call("huge")).error, /exceeds the frame limit of 16777216/);
});

Deno.test("channel: ping and version over loopback without a key", async () => {
  await withServer({}, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
    try {
      assert.equal(client.nodeId, 7);
      assert.deepEqual(await client.request("ping", encoder.encode("hi")), encoder.encode("hi"));
      assert.deepEqual(await client.request("ping"), new Uint8Array());
      assert.deepEqual(JSON.parse(decoder.decode(await client.request("version"))), {
        om: VERSION,
        protocol: PROTOCOL_VERSION,
        node: 7,
      });
    } finally {
      await client.close();
    }
    assert.equal(server.stats.accepted, 1);
    assert.equal(server.stats.requests, 3);
  });
});

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

Deno.test("channel: an unknown command or a failing handler is an error reply; the connection stays", async () => {
  const seen: Peer[] = [];
  const handlers = new Map<string, Handler>([
    ["fail", () => Promise.reject(new Error("Cannot freeze pid 42: no such process"))],
    ["who", (_body, peer) => {
      seen.push(peer);
      return Promise.resolve(new Uint8Array([peer.nodeId]));
    }],
  ]);
  await withServer({ handlers }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
    try {
      await assert.rejects(client.request("xyz"), (error) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.error, 'unknown command "xyz"');
        assert.equal(error.command, "xyz");
        assert.equal(
          error.message,
          `Cannot run "xyz" on ${HOST}:${server.port}: unknown command "xyz"`,
        );
        return true;
      });
      await assert.rejects(
        client.request("fail"),
        (error) =>
          error instanceof RemoteError && error.error === "Cannot freeze pid 42: no such process",
      );
      assert.deepEqual(await client.request("who"), new Uint8Array([3]));
      assert.deepEqual(seen[0], {
        address: HOST,
        port: seen[0].port,
        nodeId: 3,
        authenticated: false,
        session: new Map(),
      });
    } finally {
      await client.close();
    }
    assert.equal(server.stats.requests, 3);
  });
});

Deno.test("channel: pipelined requests each get their own reply", async () => {
  const handlers = new Map<string, Handler>([
    ["slow", async (body) => {
      await new Promise((resolve) => setTimeout(resolve, body[0]));
      return body;
    }],
  ]);
  await withServer({ handlers }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
    try {
      const bodies = Array.from({ length: 40 }, (_, i) => new Uint8Array([i % 5, i]));
      const replies = await Promise.all(bodies.map((b) => client.request("slow", b)));
      assert.deepEqual(replies, bodies);
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
      version: 1,
      nodeId: 2,
      nonce: new Uint8Array(32),
      proof: new Uint8Array(32),
    });
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

Deno.test("channel: a client of another protocol version is refused with both versions", async () => {
  await withServer({}, async (server) => {
    const peer = await raw(server.port);
    await peer.write(encodeFrame(helloFrame({ version: 2 })));
    assert.deepEqual(await peer.frames(), [
      { type: "refused", reason: "unsupported protocol version 2 (this node speaks 1)" },
    ]);
    assert.equal(server.stats.refused, 1);
    assert.equal(server.stats.accepted, 0);
  });
});

Deno.test("channel: with the same key on both sides, requests flow and the peer is authenticated", async () => {
  const key = await newKey();
  let authenticated = false;
  const handlers = new Map<string, Handler>([["auth?", (_b, peer) => {
    authenticated = peer.authenticated;
    return Promise.resolve(new Uint8Array());
  }]]);
  // With a key, the default no-key access rule does not apply.
  await withServer({ key, handlers }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3, key });
    try {
      assert.deepEqual(await client.request("ping", new Uint8Array([9])), new Uint8Array([9]));
      await client.request("auth?");
      assert.equal(authenticated, true);
    } finally {
      await client.close();
    }
    assert.equal(server.stats.accepted, 1);
  });
});

Deno.test("channel: a key on one side only, or two different keys, is refused", async () => {
  const key = await newKey();
  const other = await newKey();
  await withServer({ key }, async (server) => {
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3 }),
      refusal("authentication failed: this node requires the cluster key"),
    );
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3, key: other }),
      refusal(/^authentication failed \(its proof does not match this node's cluster key\)$/),
    );
    // The client told the server why it left.
    await retryUntil(() => server.stats.refused === 2, 2000, { what: "two refusals" });
    assert.equal(server.stats.accepted, 0);
  });
  await withServer({}, async (server) => {
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3, key }),
      refusal("authentication failed: this node has no cluster key"),
    );
  });
});

Deno.test("channel: the server refuses a client proof that is wrong", async () => {
  const key = await newKey();
  await withServer({ key }, async (server) => {
    const peer = await raw(server.port);
    await peer.write(encodeFrame(helloFrame({ key: true })));
    const welcome = await peer.link.next();
    assert.equal(welcome?.type, "welcome");
    await peer.write(encodeFrame({ type: "auth", proof: new Uint8Array(32).fill(1) }));
    await peer.write(
      encodeFrame({ type: "request", seq: 1, command: "ping", body: new Uint8Array() }),
    );
    assert.deepEqual(await peer.frames(), [{ type: "refused", reason: "authentication failed" }]);
    assert.equal(server.stats.refused, 1);
    assert.equal(server.stats.requests, 0);
  });
});

/** A TCP relay to `port` that records what the client sends. */
function recordingProxy(port: number) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const sent: Uint8Array[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn, record: boolean) => {
    const buffer = new Uint8Array(65536);
    try {
      for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
        if (record) sent.push(buffer.slice(0, n));
        let rest = buffer.subarray(0, n);
        while (rest.length) rest = rest.subarray(await to.write(rest));
      }
    } catch { /* either side went away */ }
  };
  const done = (async () => {
    const inbound = await listener.accept();
    const outbound = await Deno.connect({ hostname: HOST, port });
    const close = () => {
      for (const c of [inbound, outbound]) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    };
    await Promise.race([pipe(inbound, outbound, true), pipe(outbound, inbound, false)]);
    close();
    listener.close();
  })();
  return { port: listener.addr.port, sent, done };
}

Deno.test("channel: a recorded conversation replayed on a new connection is refused", async () => {
  const key = await newKey();
  await withServer({ key }, async (server) => {
    const proxy = recordingProxy(server.port);
    const client = await connectChannel({ hostname: HOST, port: proxy.port, nodeId: 3, key });
    assert.deepEqual(await client.request("ping", new Uint8Array([42])), new Uint8Array([42]));
    await client.close();
    await proxy.done;
    const recorded = new Uint8Array(proxy.sent.reduce((n, c) => n + c.length, 0));
    proxy.sent.reduce((at, c) => (recorded.set(c, at), at + c.length), 0);

    const replay = await raw(server.port);
    await replay.write(recorded);
    const frames = await replay.frames();
    assert.deepEqual(frames.map((f) => f.type), ["welcome", "refused"]);
    assert.deepEqual(frames[1], { type: "refused", reason: "authentication failed" });
    assert.equal(server.stats.requests, 1, "only the genuine request was answered");
    assert.equal(server.stats.refused, 1);
  });
});

Deno.test("channel: without a key, the access rule decides, with the documented refusal", async () => {
  await withServer({ acl: () => false }, async (server) => {
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3 }),
      refusal("not allowed: 127.0.0.1 is not a cluster member nor in the allowed networks"),
    );
    assert.equal(server.stats.refused, 1);
  });
  const acl = makeAcl({ members: () => new Set(["10.0.0.2"]), allowed: ["192.168.0.0/16"] });
  await withServer({ acl }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
    assert.deepEqual(await client.request("ping", new Uint8Array([1])), new Uint8Array([1]));
    await client.close();
  });
  // A rule given with a key applies as well.
  const key = await newKey();
  await withServer({ key, acl: () => false }, async (server) => {
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3, key }),
      refusal(/^not allowed: 127\.0\.0\.1/),
    );
  });
});

Deno.test("channel: garbage connections are closed and counted; good ones keep working", async () => {
  await withServer({ helloTimeoutMs: 600 }, async (server) => {
    const afterHandshake = async (port: number) => {
      const peer = await raw(port);
      await peer.write(encodeFrame(helloFrame()));
      assert.equal((await peer.link.next())?.type, "welcome");
      return peer;
    };
    const bad: Record<string, () => Promise<Frame[]>> = {
      random: async () => {
        const peer = await raw(server.port);
        const bytes = crypto.getRandomValues(new Uint8Array(4096));
        await peer.write(bytes);
        return peer.frames();
      },
      huge: async () => {
        const peer = await raw(server.port);
        await peer.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
        return peer.frames();
      },
      half: async () => {
        const peer = await raw(server.port);
        await peer.write(encodeFrame(helloFrame()).subarray(0, 20));
        await peer.conn.closeWrite();
        return peer.frames();
      },
      early: async () => {
        const peer = await raw(server.port);
        await peer.write(
          encodeFrame({ type: "request", seq: 1, command: "ping", body: new Uint8Array() }),
        );
        return peer.frames();
      },
      secondHello: async () => {
        const peer = await afterHandshake(server.port);
        await peer.write(encodeFrame(helloFrame()));
        return peer.frames();
      },
      silent: async () => (await raw(server.port)).frames(),
      hangUp: async () => {
        const peer = await raw(server.port);
        await peer.conn.closeWrite();
        return peer.frames();
      },
    };
    const good = async (i: number) => {
      const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: i });
      try {
        for (let n = 0; n < 20; n++) {
          const body = new Uint8Array([i, n]);
          assert.deepEqual(await client.request("ping", body), body);
        }
      } finally {
        await client.close();
      }
    };
    const [badResults] = await Promise.all([
      Promise.all(Object.entries(bad).map(async ([name, run]) => [name, await run()] as const)),
      Promise.all([1, 2, 3, 4, 5].map(good)),
    ]);
    const results = Object.fromEntries(badResults);
    const reasons = (frames: Frame[]) =>
      frames.filter((f) => f.type === "refused").map((f) => (f as { reason: string }).reason);
    assert.deepEqual(reasons(results.huge), [
      "protocol error: Cannot read frame: length 4294967295 is not between 1 and 16777216",
    ]);
    assert.deepEqual(reasons(results.half), [
      "protocol error: Cannot read frame: stream ended after 16 of 43 bytes",
    ]);
    assert.deepEqual(reasons(results.early), [
      "protocol error: Cannot start: expected HELLO, got REQUEST",
    ]);
    assert.deepEqual(reasons(results.secondHello), [
      "protocol error: Cannot continue: unexpected HELLO after the handshake",
    ]);
    assert.deepEqual(reasons(results.silent), ["no handshake within 600 ms"]);
    assert.equal(results.random.every((f) => f.type === "refused"), true);

    await retryUntil(() => server.stats.open === 0, 3000, { what: "every connection closed" });
    assert.deepEqual({ ...server.stats }, {
      connections: 12,
      open: 0,
      accepted: 6,
      refused: 0,
      garbage: 7,
      requests: 100,
    });
    await good(9);
  });
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

Deno.test("channel: a port in use is a clear error", () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    assert.throws(
      () => serve({ port: listener.addr.port }),
      new RegExp(`Cannot listen for the channel on ${HOST}:${listener.addr.port}`),
    );
  } finally {
    listener.close();
  }
});

Deno.test("channel: on a unix socket, requests flow without key or ACL, peer 'local', mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/omdiscd.sock`;
  // A stale socket file from a daemon that died is replaced.
  // (Deno removes a listener's file on close: a hard link of it stays, like a crash's leftover.)
  const stale = Deno.listen({ transport: "unix", path: `${dir}/old.sock` });
  await Deno.link(`${dir}/old.sock`, path);
  stale.close();
  assert.ok((await Deno.lstat(path)).isSocket, "a stale socket file is left behind");
  let seen: Peer | undefined;
  const server = serveChannel({
    path,
    nodeId: 7,
    logger,
    handlers: new Map<string, Handler>([["who", (_body, peer) => {
      seen = peer;
      return Promise.resolve(encoder.encode(peer.address));
    }]]),
  });
  try {
    assert.equal(server.port, 0);
    assert.equal((await Deno.lstat(path)).mode! & 0o777, 0o600);
    const client = await connectChannel({ path, nodeId: 3 });
    try {
      assert.equal(client.nodeId, 7);
      assert.equal(decoder.decode(await client.request("ping", encoder.encode("hi"))), "hi");
      assert.equal(decoder.decode(await client.request("who")), "local");
      assert.deepEqual(seen, {
        address: "local",
        port: 0,
        nodeId: 3,
        authenticated: false,
        session: new Map(),
      });
      await assert.rejects(client.request("nope"), RemoteError);
    } finally {
      await client.close();
    }
  } finally {
    await server.close();
  }
  // Closing removes the socket file.
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
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

Deno.test("channel: past maxConnections a connection is refused at once; a freed place serves again", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/om.sock`;
  const server = serveChannel({ path, nodeId: 7, logger, maxConnections: 2 });
  const clients: ChannelClient[] = [];
  try {
    clients.push(await connectChannel({ path }), await connectChannel({ path }));
    const refused = await connectChannel({ path }).then(
      (client) => (clients.push(client), undefined),
      (error) => error,
    );
    assert.ok(refused instanceof ChannelRefusedError, String(refused));
    assert.match(refused.message, /too many connections \(2 open\)/);
    // The two served ones still work.
    for (const client of clients) assert.equal(decoder.decode(await client.request("ping")), "");
    await clients.shift()!.close();
    await retryUntil(() => server.stats.open < 2, 2000, { what: "the closed connection's end" });
    const again = await connectChannel({ path });
    clients.push(again);
    assert.equal(decoder.decode(await again.request("ping", encoder.encode("x"))), "x");
    assert.equal(server.stats.refused, 1);
  } finally {
    for (const client of clients) await client.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
