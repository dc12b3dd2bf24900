/**
 * lib/migration/homelink.ts over real TCP: a channel server, and between it and the HomeLink a proxy that
 * can go silent (it keeps the connections open and forwards nothing, as a cut cable does) or
 * reset every connection.
 */
import assert from "node:assert/strict";
import { connectChannel, RemoteError } from "../../../lib/channel/client.ts";
import { type Handler, serveChannel } from "../../../lib/channel/server.ts";
import {
  disownedText,
  HomeLink,
  HomeUnreachableError,
  isDisowned,
  isUnknownJob,
} from "../../../lib/migration/homelink.ts";
import { silentLogger } from "../../../lib/base/log.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { proxy } from "../../tools/proxy.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A home (a channel server with `handlers`) behind a proxy; always closed after `body`. */
async function withHome(
  handlers: [string, Handler][],
  body: (
    home: {
      link: (o?: { pingMs?: number; giveUpMs?: number }) => HomeLink;
      via: ReturnType<typeof proxy>;
      retries: string[];
    },
  ) => Promise<void>,
) {
  const server = serveChannel({
    hostname: HOST,
    port: 0,
    nodeId: 1,
    logger: silentLogger,
    handlers: new Map(handlers),
  });
  const via = proxy(server.port);
  const links: HomeLink[] = [];
  const retries: string[] = [];
  try {
    await body({
      via,
      retries,
      link: (o = {}) => {
        const link = new HomeLink({
          connect: () =>
            connectChannel({ hostname: HOST, port: via.port, nodeId: 2, timeoutMs: 1000 }),
          where: "node 1",
          pingMs: o.pingMs ?? 300,
          giveUpMs: o.giveUpMs,
          onRetry: (command, error) => retries.push(`${command}: ${(error as Error).message}`),
        });
        links.push(link);
        return link;
      },
    });
  } finally {
    for (const link of links) await link.close();
    await via.close();
    await server.close();
  }
}

Deno.test("homelink: a request whose connection is reset is sent again over a new one", async () => {
  const got: string[] = [];
  let first = true;
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  await withHome([["job.push", async (body) => {
    got.push(decoder.decode(body));
    if (first) {
      first = false;
      await held; // its answer never leaves: the connection is reset meanwhile
    }
    return encoder.encode("ok");
  }]], async ({ link, via, retries }) => {
    const home = link();
    const sent = home.send("job.push", encoder.encode("chunk 1"));
    while (got.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    via.reset();
    assert.equal(decoder.decode(await sent), "ok");
    release();
    assert.deepEqual(got, ["chunk 1", "chunk 1"], "sent twice: the home sees it twice");
    assert.equal(retries.length, 1, retries.join("\n"));
    assert.match(retries[0], /^job.push: /);
  });
});

Deno.test("homelink: a connection gone silent is dropped once a ping gets no answer", async () => {
  const got: string[] = [];
  await withHome([["job.push", async (body) => {
    got.push(decoder.decode(body));
    await new Promise((resolve) => setTimeout(resolve, 100));
    return encoder.encode("ok");
  }]], async ({ link, via, retries }) => {
    const home = link({ pingMs: 300 });
    assert.equal(decoder.decode(await home.send("job.push", encoder.encode("a"))), "ok");
    // The cable is cut: the request is forwarded nowhere, and its connection stays open.
    via.state.silent = true;
    const sent = home.send("job.push", encoder.encode("b"));
    await retryUntil(() => retries.length >= 1, 10_000, { what: "the silent connection dropped" });
    assert.deepEqual(got, ["a"], "nothing got through while silent");
    via.state.silent = false;
    via.reset(); // the connections accepted while silent are dead
    assert.equal(decoder.decode(await sent), "ok");
    assert.deepEqual(got, ["a", "b"]);
  });
});

Deno.test("homelink: a request waiting long for its answer is not sent again while pings answer", async () => {
  const got: string[] = [];
  await withHome([["job.push", async (body) => {
    got.push(decoder.decode(body));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // e.g. waiting for room
    return encoder.encode("ok");
  }]], async ({ link, retries }) => {
    const home = link({ pingMs: 200 });
    assert.equal(decoder.decode(await home.send("job.push", encoder.encode("slow"))), "ok");
    assert.deepEqual(got, ["slow"]);
    assert.deepEqual(retries, []);
  });
});

Deno.test("homelink: a long wait answered by pings is not taken for silence when it then fails", async () => {
  let calls = 0;
  await withHome([["job.push", async () => {
    if (++calls === 1) await new Promise((resolve) => setTimeout(resolve, 3000));
    return encoder.encode("ok");
  }]], async ({ link, via, retries }) => {
    // Waiting longer than giveUpMs, with the home answering every ping meanwhile...
    const home = link({ pingMs: 200, giveUpMs: 1000 });
    const sent = home.send("job.push", encoder.encode("x"));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // ...then its connection (and the ping's) is reset: sent again, not given up.
    via.reset();
    assert.equal(decoder.decode(await sent), "ok");
    assert.equal(calls, 2);
    assert.equal(retries.length, 1, retries.join("\n"));
  });
});

Deno.test("homelink: an error answer is final; the home's refusal of this copy is told apart", async () => {
  await withHome([
    ["job.push", () => Promise.reject(new Error(disownedText(42, 2)))],
    ["job.exited", () => Promise.reject(new Error("no job 42 on this node"))],
  ], async ({ link, retries }) => {
    const home = link();
    const refused = await home.send("job.push", encoder.encode("x")).catch((e) => e);
    assert.ok(refused instanceof RemoteError);
    assert.ok(isDisowned(refused), refused.message);
    assert.ok(!isUnknownJob(refused), refused.message);
    const other = await home.send("job.exited", encoder.encode("x")).catch((e) => e);
    assert.ok(other instanceof RemoteError);
    assert.ok(!isDisowned(other), other.message);
    assert.ok(isUnknownJob(other), "a home that has no such job is told apart too");
    assert.deepEqual(retries, []);
  });
  assert.ok(!isDisowned(new Error(disownedText(42, 2))), "only an answer from the home counts");
  assert.ok(!isUnknownJob(new Error("no job 42 on this node")), "only an answer from the home");
});

Deno.test("homelink: with no answer from the home for giveUpMs, send gives up", async () => {
  await withHome(
    [["job.push", () => Promise.resolve(encoder.encode("ok"))]],
    async ({ link, via }) => {
      via.state.silent = true;
      const home = link({ pingMs: 200, giveUpMs: 1200 });
      const started = Date.now();
      const error = await home.send("job.push", encoder.encode("x")).catch((e) => e);
      assert.ok(error instanceof HomeUnreachableError, String(error));
      assert.match(error.message, /node 1 did not answer for 1200 ms/);
      assert.ok(Date.now() - started >= 1200);
      assert.ok(via.state.accepted >= 2, "it tried new connections");
    },
  );
});

Deno.test("homelink: close while a request waits rejects it and leaves no connection", async () => {
  await withHome([["job.push", () => new Promise<Uint8Array>(() => {})]], async (home) => {
    const { via, retries } = home;
    const link = home.link();
    const sent = link.send("job.push", encoder.encode("x")).catch((error) => error);
    await retryUntil(() => via.state.accepted >= 1, 5000);
    await link.close();
    assert.match(String(await sent), /the link is closed/);
    assert.deepEqual(retries, [], "a request ended by close is not said to be sent again");
    const accepted = via.state.accepted;
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(via.state.accepted, accepted, "no connection made after close");
  });
});

Deno.test("homelink: send after close rejects at once", async () => {
  await withHome([], async ({ link }) => {
    const home = link();
    await home.close();
    await assert.rejects(home.send("job.push", encoder.encode("x")), /the link is closed/);
  });
});
