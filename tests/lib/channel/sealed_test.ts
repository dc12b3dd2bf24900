/**
 * Sealed sessions end to end, through the channel's client and server (lib/channel/seal.ts,
 * PROTOCOL.md §8.7): a sealed round trip; a man in the middle (tests/tools/tamperproxy.ts) that
 * flips a bit of a frame after the handshake, replays it, drops it, swaps it with the next or
 * injects one, in either direction: the request fails with a clear error, the connection ends,
 * the server counts it, and nothing tampered with is run; a capture of the wire in which a
 * request body's known bytes are nowhere.
 */
import assert from "node:assert/strict";
import { connectChannel } from "../../../lib/channel/client.ts";
import { encodeFrame } from "../../../lib/channel/frame.ts";
import type { Handler } from "../../../lib/channel/server.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { type Tampering, tamperProxy } from "../../tools/tamperproxy.ts";
import { HOST, newKey, withServer } from "./channelkit.ts";

const encoder = new TextEncoder();

/** A server whose `count` command counts its runs, for the tests that nothing ran twice. */
function counting() {
  const runs: string[] = [];
  const handlers = new Map<string, Handler>([["count", (body) => {
    runs.push(new TextDecoder().decode(body));
    return Promise.resolve(body);
  }]]);
  return { runs, handlers };
}

Deno.test("sealed: a round trip with the key, large and small, both ways", async () => {
  const key = await newKey();
  await withServer({ key }, async (server) => {
    const proxy = tamperProxy(server.port);
    try {
      const client = await connectChannel({ hostname: HOST, port: proxy.port, nodeId: 3, key });
      try {
        const random = crypto.getRandomValues(new Uint8Array(65536));
        const big = new Uint8Array(4 << 20).map((_, i) => random[i % random.length] ^ (i >> 16));
        assert.deepEqual(await client.request("ping", big), big);
        const small = await Promise.all(
          [1, 2, 3, 4, 5].map((n) => client.request("ping", new Uint8Array([n]))),
        );
        assert.deepEqual(small, [1, 2, 3, 4, 5].map((n) => new Uint8Array([n])));
      } finally {
        await client.close();
      }
      // After the handshake, every frame on the wire both ways is SEALED (0x07).
      for (const direction of ["toServer", "toClient"] as const) {
        const types = frameTypes(proxy.captured(direction));
        const handshake = direction === "toServer" ? [0x01, 0x03] : [0x02];
        assert.deepEqual(types.slice(0, handshake.length), handshake, direction);
        assert.ok(types.length > handshake.length, direction);
        assert.ok(types.slice(handshake.length).every((t) => t === 0x07), direction);
      }
    } finally {
      await proxy.close();
    }
    assert.equal(server.stats.requests, 6);
    assert.equal(server.stats.tampered, 0);
  });
});

/** The type byte of each frame in a captured stream. */
function frameTypes(stream: Uint8Array): number[] {
  const types = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  for (let at = 0; at + 5 <= stream.length; at += 4 + view.getUint32(at)) {
    types.push(stream[at + 4]);
  }
  return types;
}

/**
 * What each tampering does to two requests sent together, "a" then "b": which of them get their
 * answer (the others fail), and which the server runs. Toward the server nothing tampered with
 * runs: a replayed "a" runs once; toward the client both ran, but the answers are not believed.
 */
const CASES: {
  direction: "toServer" | "toClient";
  action: Tampering;
  answered: string[];
  runs: string[];
}[] = [
  { direction: "toServer", action: "flip", answered: [], runs: [] },
  { direction: "toServer", action: "replay", answered: ["a"], runs: ["a"] },
  { direction: "toServer", action: "drop", answered: [], runs: [] },
  { direction: "toServer", action: "reorder", answered: [], runs: [] },
  { direction: "toServer", action: "inject", answered: [], runs: [] },
  { direction: "toClient", action: "flip", answered: [], runs: ["a", "b"] },
  { direction: "toClient", action: "replay", answered: ["a"], runs: ["a", "b"] },
  { direction: "toClient", action: "drop", answered: [], runs: ["a", "b"] },
  { direction: "toClient", action: "reorder", answered: [], runs: ["a", "b"] },
  { direction: "toClient", action: "inject", answered: [], runs: ["a", "b"] },
];

for (const { direction, action, answered, runs: expectedRuns } of CASES) {
  Deno.test(
    `sealed: a man in the middle who ${
      action === "inject" ? "injects a frame" : `${action}s a frame`
    } ${
      direction === "toServer" ? "to the server" : "to the client"
    }: the request fails, the connection ends`,
    async () => {
      const key = await newKey();
      const { runs, handlers } = counting();
      // Injected: a request in clear toward the server (one that would run), a reply in clear
      // toward the client (one that would answer "a").
      const inject = direction === "toServer"
        ? encodeFrame({ type: "request", seq: 1, command: "count", body: encoder.encode("evil") })
        : encodeFrame({ type: "reply", seq: 1, error: "", body: encoder.encode("a") });
      await withServer({ key, handlers }, async (server) => {
        const proxy = tamperProxy(server.port, { direction, at: 0, action, inject });
        try {
          const client = await connectChannel({ hostname: HOST, port: proxy.port, nodeId: 3, key });
          try {
            const results = await Promise.allSettled(
              ["a", "b"].map((body) => client.request("count", encoder.encode(body))),
            );
            await proxy.tampered;
            const got = results.flatMap((r, i) => r.status === "fulfilled" ? [["a", "b"][i]] : []);
            assert.deepEqual(got, answered);
            for (const result of results) {
              if (result.status === "fulfilled") continue;
              // A clear error: the seal's, or the connection it ended.
              assert.match(
                String(result.reason.message),
                new RegExp(
                  `^Cannot talk to ${HOST}:${proxy.port}: ` +
                    "(protocol error: )?(sealed frame \\d+ did not open: it was altered, " +
                    "replayed, reordered, dropped or injected on the way|a (REQUEST|REPLY) frame " +
                    "came unsealed after a keyed handshake|connection closed)",
                ),
              );
            }
            if (direction === "toClient") {
              // The client found it: its error names the seal.
              const first = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
              assert.match(first.reason.message, /did not open|came unsealed/);
            }
            // The connection is over: nothing more goes on it.
            await assert.rejects(client.request("ping"), /^\w*Error: Cannot talk to/);
          } finally {
            await client.close();
          }
          await retryUntil(() => server.stats.tampered === 1 && server.stats.open === 0, 3000, {
            what: "the server to count the tampering and close",
          });
          assert.deepEqual(runs, expectedRuns);
          assert.equal(server.stats.accepted, 1);
        } finally {
          await proxy.close();
        }
      });
    },
  );
}

Deno.test("sealed: a REFUSED in clear after the handshake fails the request, its reason told as unproven", async () => {
  // What a server whose handshake timer fired as the client finished sends; or a forger.
  const key = await newKey();
  const { runs, handlers } = counting();
  const inject = encodeFrame({ type: "refused", reason: "no handshake within 5000 ms" });
  await withServer({ key, handlers }, async (server) => {
    const proxy = tamperProxy(server.port, {
      direction: "toClient",
      at: 0,
      action: "inject",
      inject,
    });
    try {
      const client = await connectChannel({ hostname: HOST, port: proxy.port, nodeId: 3, key });
      try {
        await assert.rejects(
          client.request("count", encoder.encode("a")),
          (error: Error) => {
            assert.match(
              error.message,
              /a REFUSED frame came unsealed after a keyed handshake \(its unauthenticated reason: "no handshake within 5000 ms"\)/,
            );
            return true;
          },
        );
      } finally {
        await client.close();
      }
      assert.deepEqual(runs, ["a"], "the request itself reached the server, once");
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("sealed: a request body's bytes are nowhere on the wire (and are, without a key)", async () => {
  const pattern = encoder.encode("KNOWN-PLAINTEXT-om-0123456789");
  const body = new Uint8Array(pattern.length * 2000);
  for (let at = 0; at < body.length; at += pattern.length) body.set(pattern, at);
  const contains = (haystack: Uint8Array, needle: Uint8Array) => {
    outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
      for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  };
  const capture = async (key: Awaited<ReturnType<typeof newKey>> | undefined) => {
    let wire: Uint8Array[] = [];
    await withServer({ key }, async (server) => {
      const proxy = tamperProxy(server.port);
      try {
        const client = await connectChannel({ hostname: HOST, port: proxy.port, nodeId: 3, key });
        // Echoed: the pattern goes both ways.
        assert.deepEqual(await client.request("ping", body), body);
        await client.close();
        wire = [proxy.captured("toServer"), proxy.captured("toClient")];
      } finally {
        await proxy.close();
      }
    });
    return wire;
  };
  const [toServer, toClient] = await capture(await newKey());
  assert.ok(toServer.length > body.length && toClient.length > body.length, "all of it was seen");
  // Not the pattern, nor any 8 bytes of it.
  for (let at = 0; at + 8 <= pattern.length; at++) {
    const piece = pattern.subarray(at, at + 8);
    assert.equal(contains(toServer, piece), false, `to the server, at ${at}`);
    assert.equal(contains(toClient, piece), false, `to the client, at ${at}`);
  }
  // The same exchange without a key carries it in clear: the capture sees what it should.
  const [plainOut, plainBack] = await capture(undefined);
  assert.equal(contains(plainOut, pattern), true);
  assert.equal(contains(plainBack, pattern), true);
});
