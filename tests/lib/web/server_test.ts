import assert from "node:assert/strict";
import { silentLogger } from "../../../lib/base/log.ts";
import type { Watch } from "../../../lib/web/collector.ts";
import type { ChangeEvent } from "../../../lib/web/diff.ts";
import { pagePolicy } from "../../../lib/web/page.ts";
import {
  hostAllowed,
  hostOf,
  serveWeb,
  sseEvent,
  type WebLimits,
} from "../../../lib/web/server.ts";
import { job, move, node, view } from "./fixtures.ts";

const HISTORY = { t: [1, 2], nodes: { "1": [5, 6] } };

/** A collector that serves a fixed view and lets the test send changes. */
function fakeCollector() {
  const watchers = new Set<(change: ChangeEvent) => void>();
  let gathered = 0;
  const current = view({ jobs: [job(1, 10)], moves: [move(1, 1)] });
  return {
    watchers,
    get gathered() {
      return gathered;
    },
    fresh: () => {
      gathered++;
      return Promise.resolve(current);
    },
    history: () => HISTORY,
    watch: (onChange: (change: ChangeEvent) => void): Promise<Watch> => {
      watchers.add(onChange);
      return Promise.resolve({
        view: current,
        history: HISTORY,
        stop: () => watchers.delete(onChange),
      });
    },
    send(change: ChangeEvent) {
      for (const w of watchers) w(change);
    },
  };
}

async function withServer(
  fn: (url: string, collector: ReturnType<typeof fakeCollector>, port: number) => Promise<void>,
  limits: Partial<WebLimits> = {},
): Promise<void> {
  const collector = fakeCollector();
  const server = await serveWeb({
    hostname: "127.0.0.1",
    port: 0,
    collector,
    logger: silentLogger,
    limits,
    hostNames: ["node7.example"],
  });
  try {
    await fn(`http://127.0.0.1:${server.port}`, collector, server.port);
  } finally {
    await server.close();
  }
}

/** Sends raw bytes on a new connection and returns all it gets back until it closes (or 3 s). */
async function raw(port: number, text: string, waitMs = 3000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(text));
  const chunks: string[] = [];
  const buf = new Uint8Array(65536);
  const timer = setTimeout(() => conn.close(), waitMs);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(new TextDecoder().decode(buf.subarray(0, n)));
    }
  } catch {
    /* closed by the timer */
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return chunks.join("");
}

/** Reads SSE events from a response until `count` have come. */
async function events(response: Response, count: number) {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const got: { event: string; id: string; data: unknown }[] = [];
  while (got.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    let end;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const fields = Object.fromEntries(
        block.split("\n").map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 2)]),
      );
      if (fields.event) {
        got.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data) });
      }
    }
  }
  return { got, close: () => reader.cancel() };
}

Deno.test("web: the API's resources, as JSON, not cached", async () => {
  await withServer(async (url) => {
    const nodes = await fetch(`${url}/api/nodes`);
    assert.equal(nodes.status, 200);
    assert.equal(nodes.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(nodes.headers.get("cache-control"), "no-store");
    assert.equal(nodes.headers.get("x-content-type-options"), "nosniff");
    assert.deepEqual(await nodes.json(), [node(1), node(2), node(3)]);
    assert.deepEqual(await (await fetch(`${url}/api/jobs`)).json(), [job(1, 10)]);
    assert.deepEqual(await (await fetch(`${url}/api/migrations?x=1`)).json(), [move(1, 1)]);
    assert.deepEqual(await (await fetch(`${url}/api/history`)).json(), HISTORY);
  });
});

Deno.test("web: the page, with a policy that allows its own inline script and style only", async () => {
  await withServer(async (url) => {
    for (const path of ["/", "/index.html"]) {
      const page = await fetch(`${url}${path}`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      const html = await page.text();
      assert.match(html, /<table id="om-nodes">/);
      assert.equal(
        page.headers.get("content-security-policy"),
        `${await pagePolicy("'self'")}; frame-ancestors 'none'`,
      );
      assert.equal(page.headers.get("x-frame-options"), "DENY");
    }
  });
});

Deno.test("web: unknown paths 404; other methods than GET and HEAD 405 with Allow", async () => {
  await withServer(async (url) => {
    for (const path of ["/nope", "/api", "/api/nodes/1", "/API/nodes", "/../etc/passwd"]) {
      const response = await fetch(`${url}${path}`);
      assert.equal(response.status, 404, path);
      assert.match((await response.json()).error, /Cannot find/);
    }
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const response = await fetch(`${url}/api/nodes`, {
        method,
        ...(method === "POST" || method === "PUT" ? { body: "x" } : {}),
      });
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "GET, HEAD");
      await response.body?.cancel();
    }
  });
});

Deno.test("web: HEAD answers the headers of GET without the body", async () => {
  await withServer(async (url) => {
    const get = await fetch(`${url}/api/jobs`);
    const body = await get.text();
    const head = await fetch(`${url}/api/jobs`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(new TextEncoder().encode(body).length));
    assert.equal(await head.text(), "");
    const stream = await fetch(`${url}/api/events`, { method: "HEAD" });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assert.equal(await stream.text(), "");
  });
});

Deno.test("web: the stream: a snapshot, then the changes as they come, each an event", async () => {
  await withServer(async (url, collector) => {
    const response = await fetch(`${url}/api/events`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reading = events(response, 3);
    while (collector.watchers.size === 0) await new Promise((r) => setTimeout(r, 5));
    collector.send({ t: 1 });
    collector.send({ t: 2, nodes: { set: [{ id: 2, load: 7 }] } });
    const { got, close } = await reading;
    assert.deepEqual(got.map((e) => e.event), ["snapshot", "change", "change"]);
    assert.deepEqual(got[0].data, {
      view: view({ jobs: [job(1, 10)], moves: [move(1, 1)] }),
      history: HISTORY,
    });
    assert.deepEqual(got[2].data, { t: 2, nodes: { set: [{ id: 2, load: 7 }] } });
    assert.ok(Number(got[1].id) < Number(got[2].id));
    await close();
    // The reader went: the server stops its watch.
    const until = Date.now() + 3000;
    while (collector.watchers.size > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(collector.watchers.size, 0);
  });
});

Deno.test("web: streams are limited; past the limit 503, and room again when one closes", async () => {
  await withServer(async (url, collector) => {
    const open = [await fetch(`${url}/api/events`), await fetch(`${url}/api/events`)];
    const third = await fetch(`${url}/api/events`);
    assert.equal(third.status, 503);
    assert.equal(third.headers.get("retry-after"), "10");
    await third.body?.cancel();
    await open[0].body?.cancel();
    const until = Date.now() + 3000;
    while (collector.watchers.size > 1 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const again = await fetch(`${url}/api/events`);
    assert.equal(again.status, 200);
    await again.body?.cancel();
    await open[1].body?.cancel();
  }, { maxWatchers: 2 });
});

Deno.test("web: a stream whose reader does not read is closed once too much is unsent", async () => {
  await withServer(async (_url, collector, port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(
        new TextEncoder().encode("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
      );
      const until = Date.now() + 3000;
      while (collector.watchers.size === 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
      }
      // Never read: the socket's buffers fill, then the server's, then it gives up.
      const big = "x".repeat(100_000);
      for (let i = 0; i < 500 && collector.watchers.size > 0; i++) {
        collector.send({ t: i, meta: { unread: [], big } as never });
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(collector.watchers.size, 0, "the stream was closed");
    } finally {
      conn.close();
    }
  }, { maxBuffered: 256 * 1024 });
});

Deno.test("web: a request with a body, headers too large, a slow request", async () => {
  await withServer(async (_url, _collector, port) => {
    const withBody = await raw(
      port,
      "GET /api/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert.match(withBody, /^HTTP\/1.1 400 /);
    assert.match(withBody, /Cannot take a body with GET/);
    const big = await raw(
      port,
      `GET /api/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(10_000)}\r\n\r\n`,
    );
    assert.match(big, /^HTTP\/1.1 431 /);
    const started = Date.now();
    const slow = await raw(port, "GET /api/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n", 5000);
    assert.match(slow, /^HTTP\/1.1 408 /);
    assert.ok(Date.now() - started < 4000, "timed out by the server");
  }, { headersTimeoutMs: 1000, maxHeaderBytes: 4096 });
});

Deno.test("web: a Host of another site is refused (DNS rebinding); addresses and own names pass", async () => {
  await withServer(async (_url, _collector, port) => {
    const foreign = await raw(
      port,
      "GET /api/nodes HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert.match(foreign, /^HTTP\/1.1 421 /);
    for (const host of ["127.0.0.1:80", "[::1]:8080", "localhost", "NODE7.example:1"]) {
      const answer = await raw(
        port,
        `GET /api/nodes HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
      assert.match(answer, /^HTTP\/1.1 200 /, host);
    }
  });
  assert.equal(hostOf("[FE80::1]:99"), "[fe80::1]");
  assert.equal(hostOf("Example.com:80"), "example.com");
  assert.equal(hostOf(undefined), undefined);
  assert.equal(hostAllowed(undefined, []), true);
  assert.equal(hostAllowed("10.0.0.1.evil.example", []), false);
});

Deno.test("web: connections are limited: one past the limit is closed at once", async () => {
  await withServer(async (url, _collector, port) => {
    const idle = await Promise.all([1, 2].map(() => Deno.connect({ hostname: "127.0.0.1", port })));
    try {
      await new Promise((r) => setTimeout(r, 100));
      const refused = await raw(port, "GET /api/nodes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 2000);
      assert.equal(refused, "", "closed without an answer");
    } finally {
      for (const conn of idle) conn.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      (await fetch(`${url}/api/nodes`, { headers: { connection: "close" } })).status,
      200,
    );
  }, { maxConnections: 2 });
});

Deno.test("web: the port in use is an error that says so", async () => {
  await withServer(async (_url, collector, port) => {
    await assert.rejects(
      () => serveWeb({ hostname: "127.0.0.1", port, collector, logger: silentLogger }),
      /EADDRINUSE|in use/i,
    );
  });
});

Deno.test("web: an SSE event is one data line of JSON", () => {
  assert.equal(
    sseEvent("change", 4, { t: 1, note: "a\nb" }),
    'event: change\nid: 4\ndata: {"t":1,"note":"a\\nb"}\n\n',
  );
});
