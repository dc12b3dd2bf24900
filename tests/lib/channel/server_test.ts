/**
 * lib/channel/server.ts over loopback and a unix socket: the dispatcher and the built-in commands,
 * error replies, pipelined requests, garbage connections among good ones, a port in use, the local
 * socket's peer and mode, and the limit on connections.
 */
import assert from "node:assert/strict";
import { type ChannelClient, connectChannel, RemoteError } from "../../../lib/channel/client.ts";
import {
  encodeFrame,
  type Frame,
  MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
} from "../../../lib/channel/frame.ts";
import { ChannelRefusedError, type Peer } from "../../../lib/channel/handshake.ts";
import {
  builtinHandlers,
  dispatch,
  type Handler,
  serveChannel,
} from "../../../lib/channel/server.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { VERSION } from "../../../lib/base/version.ts";
import { helloFrame, HOST, logger, raw, serve, withServer } from "./channelkit.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
    protocol: 2,
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
      tampered: 0,
      idle: 0,
      perAddress: 0,
      // "huge", and "random" whose first 4 bytes announce far more than a handshake frame.
      oversized: 2,
      crowded: 0,
    });
    await good(9);
  });
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
