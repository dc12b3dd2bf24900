/**
 * lib/channel/handshake.ts over loopback: the proofs, a client of another version (version 1 gets
 * the upgrade message; a client refused by a version-1 node says so plainly), a WELCOME from
 * another node than the one dialled, a key on both sides, on one side only or two different keys,
 * a wrong client proof, a peer without the key that makes up its own seal, a replayed
 * conversation, and the access rule without a key.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { makeAcl } from "../../../lib/channel/access.ts";
import { connectChannel } from "../../../lib/channel/client.ts";
import { FrameConn } from "../../../lib/channel/conn.ts";
import { encodeFrame, type Frame, PROTOCOL_VERSION } from "../../../lib/channel/frame.ts";
import { deriveSeal } from "../../../lib/channel/seal.ts";
import {
  channelProof,
  type ChannelRefusedError,
  DEFAULT_CHANNEL_PORT,
} from "../../../lib/channel/handshake.ts";
import type { Handler } from "../../../lib/channel/server.ts";
import { importKey } from "../../../lib/base/key.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { helloFrame, HOST, newKey, raw, withServer } from "./channelkit.ts";

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

Deno.test("channel: a client of another protocol version is refused with both versions", async () => {
  await withServer({}, async (server) => {
    const peer = await raw(server.port);
    await peer.write(encodeFrame(helloFrame({ version: 1 })));
    assert.deepEqual(await peer.frames(), [
      {
        type: "refused",
        reason: "unsupported protocol version 1: upgrade om on that node (this node speaks 2)",
      },
    ]);
    assert.equal(server.stats.refused, 1);
    assert.equal(server.stats.accepted, 0);
  });
});

/** A server that reads one HELLO and answers `answer` (a version-1 node, a stranger). */
function oneAnswer(answer: (link: FrameConn) => Promise<void>) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const done = (async () => {
    const link = new FrameConn(await listener.accept());
    await link.next();
    await answer(link);
    await link.next().catch(() => null);
    link.close();
    listener.close();
  })();
  return { port: listener.addr.port, done };
}

Deno.test("channel: a client refused by a version-1 node says which versions and whom to upgrade", async () => {
  // A version-1 node's refusal, word for word as version 1 wrote it.
  const old = oneAnswer((link) =>
    link.refuse("unsupported protocol version 2 (this node speaks 1)")
  );
  await assert.rejects(
    connectChannel({ hostname: HOST, port: old.port, nodeId: 3 }),
    (error) => {
      assert.equal((error as Error).name, "ChannelRefusedError");
      assert.equal(
        (error as Error).message,
        `Cannot talk to ${HOST}:${old.port}: it speaks protocol version 1 and this node 2: ` +
          "upgrade om on that node",
      );
      return true;
    },
  );
  await old.done;
  // A newer node's: this one is to upgrade.
  const newer = oneAnswer((link) =>
    link.refuse("unsupported protocol version 2: upgrade om on that node (this node speaks 3)")
  );
  await assert.rejects(
    connectChannel({ hostname: HOST, port: newer.port, nodeId: 3 }),
    refusal("it speaks protocol version 3 and this node 2: upgrade om on this node"),
  );
  await newer.done;
});

Deno.test("channel: a WELCOME from another node than the one dialled is refused", async () => {
  const key = await newKey();
  for (const options of [{}, { key }]) {
    await withServer(options, async (server) => {
      await assert.rejects(
        connectChannel({
          hostname: HOST,
          port: server.port,
          nodeId: 3,
          expectNodeId: 5,
          ...options,
        }),
        (error) => {
          assert.equal((error as Error).name, "ChannelRefusedError");
          assert.equal(
            (error as Error).message,
            `Cannot talk to node 5: it answered as node 7 (at ${HOST}:${server.port})`,
          );
          return true;
        },
      );
      // The right node is let in.
      const client = await connectChannel({
        hostname: HOST,
        port: server.port,
        nodeId: 3,
        expectNodeId: 7,
        ...options,
      });
      assert.deepEqual(await client.request("ping", new Uint8Array([1])), new Uint8Array([1]));
      await client.close();
      assert.equal(server.stats.requests, 1, "the wrong node was asked nothing");
    });
  }
});

Deno.test("channel: a peer without the key gets no frame in, sealed or not", async () => {
  const key = await newKey();
  const ran: string[] = [];
  const handlers = new Map<string, Handler>([["run", (body) => {
    ran.push(new TextDecoder().decode(body));
    return Promise.resolve(body);
  }]]);
  await withServer({ key, handlers }, async (server) => {
    // It claims the key, answers with a proof of its own key, and seals a request with it.
    const own = await newKey();
    const peer = await raw(server.port);
    const hello = helloFrame({ key: true }) as Frame & { type: "hello" };
    await peer.write(encodeFrame(hello));
    const welcome = (await peer.link.next()) as Frame & { type: "welcome" };
    const nonces = { client: hello.nonce, server: welcome.nonce };
    await peer.write(
      encodeFrame({ type: "auth", proof: await channelProof(own, "client", nonces) }),
    );
    const seal = await deriveSeal(own, "client", {
      version: PROTOCOL_VERSION,
      nonces,
      clientNode: hello.nodeId,
      serverNode: welcome.nodeId,
    });
    const request = encodeFrame({
      type: "request",
      seq: 1,
      command: "run",
      body: new TextEncoder().encode("x"),
    }).subarray(4);
    const header = new Uint8Array([0, 0, 0, request.length + 17, 0x07]);
    await peer.write(
      encodeFrame({ type: "sealed", sealed: await seal.seal(request, header) }),
    );
    assert.deepEqual(await peer.frames(), [{ type: "refused", reason: "authentication failed" }]);
    // Without the key flag: refused at HELLO; a request in place of HELLO: refused.
    await assert.rejects(
      connectChannel({ hostname: HOST, port: server.port, nodeId: 3 }),
      refusal("authentication failed: this node requires the cluster key"),
    );
    const early = await raw(server.port);
    await early.write(
      encodeFrame({ type: "request", seq: 1, command: "run", body: new Uint8Array() }),
    );
    assert.deepEqual(await early.frames(), [
      { type: "refused", reason: "protocol error: Cannot start: expected HELLO, got REQUEST" },
    ]);
    assert.deepEqual(ran, []);
    assert.equal(server.stats.requests, 0);
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
