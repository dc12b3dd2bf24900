/**
 * The channel's limits (lib/channel/server.ts and conn.ts, PROTOCOL.md §8.8): no frame longer
 * than a handshake frame is read before the handshake is done, on either side; a connection idle
 * after its handshake is closed with CLOSING (and the client connects again by itself, sending
 * again what the server had not read); 1000 idle connections from one address leave room for
 * another address.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { connectChannel } from "../../../lib/channel/client.ts";
import { FrameConn } from "../../../lib/channel/conn.ts";
import { encodeFrame } from "../../../lib/channel/frame.ts";
import type { Handler } from "../../../lib/channel/server.ts";
import { FakeClock } from "../../../lib/base/clock.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { helloFrame, HOST, newKey, raw, withServer } from "./channelkit.ts";

const encoder = new TextEncoder();
const u32 = (n: number) =>
  new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

Deno.test("limits: before the handshake, a long frame is refused at its length, unread", async () => {
  const key = await newKey();
  for (const options of [{}, { key }]) {
    await withServer(options, async (server) => {
      // Only the length of a 16 MiB frame is sent: the refusal comes at once, not after the
      // handshake's time limit while the server waits for (and allocates) the rest.
      const first = await raw(server.port);
      await first.write(u32(16 * 1024 * 1024 - 1));
      const started = Date.now();
      assert.deepEqual(await first.frames(), [{
        type: "refused",
        reason:
          "protocol error: Cannot read frame: length 16777215 before the handshake is done (at most 1024)",
      }]);
      assert.ok(Date.now() - started < 2000);
      if ("key" in options) {
        // Between WELCOME and AUTH too: the peer has not proved the key yet.
        const second = await raw(server.port);
        await second.write(encodeFrame(helloFrame({ key: true })));
        assert.equal((await second.link.next())?.type, "welcome");
        await second.write(u32(2000));
        assert.deepEqual(await second.frames(), [{
          type: "refused",
          reason:
            "protocol error: Cannot read frame: length 2000 before the handshake is done (at most 1024)",
        }]);
      }
      await retryUntil(() => server.stats.open === 0, 2000);
      assert.equal(server.stats.oversized, "key" in options ? 2 : 1);
      assert.equal(server.stats.garbage, server.stats.oversized);
    });
  }
  // Nor does a client read a long frame from a server that has not answered the handshake.
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const fake = (async () => {
    const conn = await listener.accept();
    await new FrameConn(conn).next();
    await conn.write(u32(16 * 1024 * 1024));
    await new Promise((resolve) => setTimeout(resolve, 200));
    conn.close();
  })();
  await assert.rejects(
    connectChannel({ hostname: HOST, port: listener.addr.port, timeoutMs: 5000 }),
    /length 16777216 before the handshake is done \(at most 1024\)/,
  );
  await fake;
  listener.close();
});

Deno.test("limits: a connection idle after its handshake gets CLOSING; the client connects again", async () => {
  const clock = new FakeClock();
  const runs: string[] = [];
  let release!: () => void;
  let waited = false;
  const gate = new Promise<void>((resolve) => release = resolve);
  const handlers = new Map<string, Handler>([
    ["count", (body) => {
      runs.push(new TextDecoder().decode(body));
      return Promise.resolve(body);
    }],
    ["wait", async () => {
      waited = true;
      await gate;
      return new Uint8Array([1]);
    }],
  ]);
  const key = await newKey();
  await withServer({ key, clock, handlers, idleTimeoutMs: 120_000 }, async (server) => {
    const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3, key });
    try {
      assert.deepEqual(await client.request("count", encoder.encode("1")), encoder.encode("1"));
      clock.advance(119_999);
      assert.equal(server.stats.idle, 0);
      // A request on its way when the server gives up: not run there, sent again, run once.
      clock.advance(1);
      assert.equal(server.stats.idle, 1);
      assert.deepEqual(await client.request("count", encoder.encode("2")), encoder.encode("2"));
      assert.deepEqual(runs, ["1", "2"]);
      assert.equal(server.stats.accepted, 2, "a second connection");
      // The new connection is idle-checked too; a request in progress is not idle.
      const waiting = client.request("wait", undefined, { timeoutMs: 0 });
      waiting.catch(() => {}); // awaited below; a failure before must not leave it unhandled
      await retryUntil(() => waited && server.stats.open === 1, 2000);
      clock.advance(300_000);
      assert.equal(server.stats.idle, 1);
      release();
      assert.deepEqual(await waiting, new Uint8Array([1]));
      assert.equal(server.stats.accepted, 2);
      assert.equal(server.stats.tampered, 0);
    } finally {
      await client.close();
    }
  });
  // A peer that is no client of ours, idle after the handshake: CLOSING, then closed.
  await withServer({ clock, idleTimeoutMs: 50_000 }, async (server) => {
    const peer = await raw(server.port);
    await peer.write(encodeFrame(helloFrame()));
    assert.equal((await peer.link.next())?.type, "welcome");
    peer.link.established();
    await retryUntil(() => server.stats.accepted === 1, 2000);
    clock.advance(50_000);
    assert.deepEqual(await peer.link.next(), { type: "closing", reason: "idle for 50000 ms" });
    // It lingers (a request sent now is dropped, not answered), then closes.
    await peer.write(
      encodeFrame({ type: "request", seq: 1, command: "ping", body: new Uint8Array() }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    clock.advance(1000);
    assert.deepEqual(await peer.frames(), []);
    assert.equal(server.stats.requests, 0);
    assert.equal(server.stats.idle, 1);
  });
});

/** `count` connections from `localAddress` that never say a word; `close` ends them. */
async function idleFrom(localAddress: string, port: number, count: number) {
  const sockets = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect({ host: HOST, port, localAddress });
        socket.on("error", () => {}); // refused ones are reset: expected
        socket.once("connect", () => resolve(socket));
        socket.once("error", reject);
      })),
  );
  return { close: () => sockets.forEach((socket) => socket.destroy()) };
}

Deno.test("limits: 1000 idle connections from one address do not lock another out", async () => {
  /** What 127.0.0.1 gets while 127.0.0.2 holds 1000 connections, and the server's counters. */
  const flooded = async (options: { maxPerAddress?: number; maxHandshaking?: number }) => {
    let outcome = "";
    let stats: Record<string, number> = {};
    await withServer(options, async (server) => {
      const flood = await idleFrom("127.0.0.2", server.port, 1000);
      try {
        await retryUntil(() => server.stats.connections === 1000, 10_000, {
          what: "the 1000 connections taken",
        });
        try {
          const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
          outcome = new TextDecoder().decode(await client.request("ping", encoder.encode("ok")));
          await client.close();
        } catch (error) {
          outcome = (error as Error).message;
        }
        stats = { ...server.stats };
      } finally {
        flood.close();
      }
    });
    return { outcome, stats };
  };
  // The per-address limit alone (no place freed by closing silent handshakes).
  const limited = await flooded({ maxHandshaking: Infinity });
  assert.equal(limited.outcome, "ok");
  assert.equal(limited.stats.perAddress, 1000 - 128);
  assert.ok(limited.stats.open <= 128 + 1, `${limited.stats.open} open`);
  // The same flood with no limit per address takes every place: the limit is what helps.
  const unlimited = await flooded({ maxPerAddress: Infinity, maxHandshaking: Infinity });
  assert.match(unlimited.outcome, /too many connections \(1000 open\)/);
});

Deno.test("limits: connections that never say HELLO, from many addresses, do not lock a client out", async () => {
  /** What 127.0.0.1 gets while 8 addresses hold 125 silent connections each. */
  const flooded = async (options: { maxHandshaking?: number }) => {
    let outcome = "";
    let crowded = 0;
    await withServer(options, async (server) => {
      const floods = [];
      for (let i = 2; i <= 9; i++) floods.push(await idleFrom(`127.0.0.${i}`, server.port, 125));
      try {
        await retryUntil(() => server.stats.connections === 1000, 10_000, {
          what: "the 1000 connections taken",
        });
        try {
          const client = await connectChannel({ hostname: HOST, port: server.port, nodeId: 3 });
          outcome = new TextDecoder().decode(await client.request("ping", encoder.encode("ok")));
          await client.close();
        } catch (error) {
          outcome = (error as Error).message;
        }
        crowded = server.stats.crowded;
      } finally {
        for (const flood of floods) flood.close();
      }
    });
    return { outcome, crowded };
  };
  // Under the per-address limit each, together they would take every place; the oldest silent
  // ones are closed as more come, so the client gets in.
  const limited = await flooded({});
  assert.equal(limited.outcome, "ok");
  assert.ok(limited.crowded >= 1000 - 64, `${limited.crowded} closed in their handshake`);
  const unlimited = await flooded({ maxHandshaking: Infinity });
  assert.match(unlimited.outcome, /too many connections \(1000 open\)/);
});
