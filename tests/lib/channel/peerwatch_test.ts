/**
 * lib/channel/peerwatch.ts over real TCP: a channel server, reached through a proxy (tests/tools/proxy.ts)
 * that can go silent as a cut cable does.
 */
import assert from "node:assert/strict";
import { connectChannel } from "../../../lib/channel/client.ts";
import { type Handler, serveChannel } from "../../../lib/channel/server.ts";
import { silentLogger } from "../../../lib/base/log.ts";
import { PeerSilentError, watched } from "../../../lib/channel/peerwatch.ts";
import { proxy } from "../../tools/proxy.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A peer whose `slow` request answers after `ms` ms, behind a proxy; closed after `body`. */
async function withPeer(
  body: (peer: {
    request: (ms: number) => Promise<string>;
    watch: <T>(work: Promise<T>) => Promise<T>;
    via: ReturnType<typeof proxy>;
    connects: () => number;
    nudges: () => number;
  }) => Promise<void>,
) {
  const handlers = new Map<string, Handler>([
    ["slow", async (b) => {
      await sleep(Number(decoder.decode(b)));
      return encoder.encode("done");
    }],
  ]);
  const server = serveChannel({
    hostname: HOST,
    port: 0,
    nodeId: 2,
    logger: silentLogger,
    handlers,
  });
  const via = proxy(server.port);
  const connect = () =>
    connectChannel({ hostname: HOST, port: via.port, nodeId: 1, timeoutMs: 1000 });
  const client = await connect();
  let connects = 0;
  let nudges = 0;
  try {
    await body({
      via,
      connects: () => connects,
      nudges: () => nudges,
      request: async (ms) =>
        decoder.decode(await client.request("slow", encoder.encode(String(ms)), { timeoutMs: 0 })),
      watch: (work) =>
        watched(work, {
          connect: () => {
            connects++;
            return connect();
          },
          where: "node 2",
          nudge: () => nudges++,
          afterMs: 100,
          pingMs: 200,
          misses: 2,
        }),
    });
  } finally {
    await client.close().catch(() => {});
    await via.close();
    await server.close();
  }
}

Deno.test("peerwatch: a short wait makes no connection", async () => {
  await withPeer(async ({ request, watch, connects, nudges }) => {
    assert.equal(await watch(request(20)), "done");
    assert.equal(connects(), 0);
    assert.equal(nudges(), 0);
  });
});

Deno.test("peerwatch: a long wait goes on while the peer answers pings", async () => {
  await withPeer(async ({ request, watch, connects, nudges }) => {
    assert.equal(await watch(request(1500)), "done");
    assert.equal(connects(), 1, "one ping connection for the whole wait");
    // Pings from 100 ms on, every 200 ms: the watched connection is nudged at each.
    assert.ok(nudges() >= 4 && nudges() <= 8, `nudged ${nudges()} times`);
  });
});

Deno.test("peerwatch: a peer gone silent fails the wait after the misses", async () => {
  await withPeer(async ({ request, watch, via }) => {
    const waiting = request(60_000);
    const outcome = watch(waiting).then(() => "answered", (error) => error);
    await sleep(150);
    via.state.silent = true;
    const error = await outcome;
    assert.ok(error instanceof PeerSilentError, String(error));
    assert.match(error.message, /^node 2 stopped answering: 2 pings in a row got no answer/);
    // The request itself still waits (nobody answers it): its caller closes its connection.
    via.reset();
    await waiting.catch(() => {});
  });
});

Deno.test("peerwatch: the work's own failure is passed on", async () => {
  await withPeer(async ({ watch }) => {
    await assert.rejects(watch(Promise.reject(new Error("no such image"))), /no such image/);
  });
});
