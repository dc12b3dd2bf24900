/**
 * The browser the status page's tests drive (tests/tools/browser.ts), on pages of its own: real
 * headless Chromium sees a page change through Server-Sent Events without a reload; a hidden tab
 * really is hidden (`document.visibilityState`) and a page that closes its stream when hidden is
 * seen to do so by the server; a screenshot is a PNG of the viewport's size; a wait that fails
 * says what the page showed; and nothing of Chromium is left running (nor as a zombie) after a
 * test, whether it passed or failed. Last, Chromium in one lab node's network namespace opens a
 * page served on another node's address, which the host's namespace cannot reach.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { CHROMIUM, withBrowser } from "../tools/browser.ts";
import { exists, ROOT, startIn, withLab } from "../tools/labkit.ts";

// As root the test command installs chromium (scripts/test): without it these fail, not skip.
const ignore = !ROOT;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A page that shows the last event of its stream, and closes the stream while hidden. */
const PAGE = `<!doctype html>
<title>browser smoke test</title>
<p>value: <span id="value">none</span></p>
<p id="state" data-opened="0">starting</p>
<script>
  const state = document.getElementById("state");
  let source = null;
  function connect() {
    source = new EventSource("/events");
    source.onopen = () => {
      state.textContent = "streaming";
      state.dataset.opened = String(Number(state.dataset.opened) + 1);
    };
    source.onmessage = (event) => document.getElementById("value").textContent = event.data;
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      source.close();
      state.textContent = "paused";
    } else {
      connect();
    }
  });
  connect();
</script>`;

/** Serves PAGE on `hostname` and its event stream; `send` writes one event to every open stream. */
function servePage(hostname: string) {
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const server = Deno.serve({ hostname, port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/") {
      return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    if (path !== "/events") return new Response("not found", { status: 404 });
    let stream: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        stream = controller;
        streams.add(controller);
        controller.enqueue(encoder.encode(": open\n\n"));
      },
      cancel() {
        streams.delete(stream);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  });
  return {
    url: `http://${hostname}:${server.addr.port}/`,
    streams,
    send(data: string) {
      for (const stream of streams) stream.enqueue(encoder.encode(`data: ${data}\n\n`));
    },
    async close() {
      for (const stream of streams) {
        try {
          stream.close();
        } catch { /* cancelled meanwhile */ }
      }
      await server.shutdown();
    },
  };
}

/** The processes whose command line names `dir` (every process of one browser names its dir). */
async function processesNaming(dir: string): Promise<number[]> {
  const { stdout } = await new Deno.Command("pgrep", { args: ["-f", dir], stdout: "piped" })
    .output();
  return decoder.decode(stdout).split("\n").filter(Boolean).map(Number);
}

/** Asserts that no process names `dir` and that none of `pids` is left, not even as a zombie. */
async function assertAllGone(dir: string, pids: number[]): Promise<void> {
  assert.deepEqual(await processesNaming(dir), [], "processes of the browser left running");
  const left: number[] = [];
  for (const pid of pids) if (await exists(`/proc/${pid}`)) left.push(pid);
  assert.deepEqual(left, [], "processes of the browser left (zombies?)");
  assert.equal(await exists(dir), false, "the browser's directory was not removed");
}

Deno.test({
  name: "browser: a page follows its event stream, stops it when hidden, resumes when shown",
  ignore,
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    assert.ok(CHROMIUM, "no chromium: scripts/test installs Debian's chromium package");
    const served = servePage("127.0.0.1");
    const shot = await Deno.makeTempFile({ prefix: "om-browser-", suffix: ".png" });
    let dir = "";
    let pids: number[] = [];
    try {
      await withBrowser(async (browser) => {
        dir = browser.dir;
        const tab = await browser.open(served.url);
        await tab.waitFor(() => document.getElementById("state")?.textContent === "streaming", {
          what: "the stream to open",
        });
        await retryUntil(() => served.streams.size === 1, 5000, { what: "one stream open" });
        const loaded = await tab.evaluate(() => performance.timeOrigin);

        // Changes arrive in place: same document, no reload.
        for (const value of ["first", "second"]) {
          served.send(value);
          await tab.waitFor(
            (value: string) => document.getElementById("value")?.textContent === value,
            { what: `"${value}" shown`, args: [value] },
          );
          assert.equal(await tab.text("#value"), value);
        }
        assert.equal(await tab.evaluate(() => performance.timeOrigin), loaded, "page reloaded");

        // A screenshot is a PNG of the viewport's width.
        await tab.screenshot(shot);
        const png = await Deno.readFile(shot);
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        const size = new DataView(png.buffer, png.byteOffset + 16, 8);
        assert.deepEqual([size.getUint32(0), size.getUint32(4)], [1280, 800]);

        // Hidden: the page sees it, closes its stream, and the server sees the stream end.
        assert.equal(await tab.visibility(), "visible");
        await tab.hide();
        assert.equal(await tab.visibility(), "hidden");
        assert.equal(await tab.evaluate(() => document.hidden), true);
        await retryUntil(() => served.streams.size === 0, 5000, {
          what: "the hidden tab's stream to close on the server",
        });
        assert.equal(await tab.text("#state"), "paused");

        // Shown again: a new stream, and events arrive again.
        await tab.show();
        await retryUntil(() => served.streams.size === 1, 5000, { what: "the stream to reopen" });
        await tab.waitFor(() => document.getElementById("state")?.dataset.opened === "2", {
          what: "the second stream to open",
        });
        served.send("third");
        await tab.waitFor(() => document.getElementById("value")?.textContent === "third", {
          what: '"third" shown after the tab was shown again',
        });
        assert.equal(await tab.evaluate(() => performance.timeOrigin), loaded, "page reloaded");
        assert.deepEqual(tab.errors, []);

        pids = await processesNaming(browser.dir);
        assert.ok(pids.length >= 3, `too few browser processes: ${pids}`);
      });
      await assertAllGone(dir, pids);
    } finally {
      await served.close();
      await Deno.remove(shot).catch(() => {});
    }
  },
});

Deno.test({
  name: "browser: a wait that fails says what the page showed, and the browser still goes",
  ignore,
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    const served = servePage("127.0.0.1");
    let dir = "";
    let pids: number[] = [];
    try {
      await assert.rejects(
        withBrowser(async (browser) => {
          dir = browser.dir;
          const tab = await browser.open(served.url);
          await tab.waitFor(() => document.getElementById("state")?.textContent === "streaming");
          await tab.evaluate(() => {
            setTimeout(() => {
              throw new Error("boom in the page");
            });
          });
          pids = await processesNaming(browser.dir);
          await tab.waitFor(() => document.getElementById("value")?.textContent === "never", {
            what: "a value never sent",
            timeoutMs: 300,
          });
        }),
        (error: Error) => {
          assert.match(error.message, /^Cannot wait for a value never sent: not met after 0\.30 s/);
          assert.match(error.message, /\(http:\/\/127\.0\.0\.1:\d+\/, visible\) showed: /);
          assert.match(error.message, /"value: none\\n\\nstreaming"/);
          assert.match(error.message, /; its errors: page: (Uncaught )?Error: boom in the page$/);
          return true;
        },
      );
      await assert.rejects(
        withBrowser(async (browser) => {
          const tab = await browser.open(served.url);
          await assert.rejects(tab.goto(`${served.url}missing`), /HTTP 404 Not Found$/);
          await tab.goto(served.url);
          await tab.text("#nothing-like-this");
        }),
        /^Error: Cannot find "#nothing-like-this": no element matches; the page/,
      );
      await assert.rejects(
        withBrowser(() => Promise.resolve(), { namespace: "om-no-such-namespace" }),
        (error: Error) => {
          assert.match(error.message, /^Cannot start Chromium \(.* in om-no-such-namespace\): /);
          assert.match(error.message, /: it exited with status 1; its stderr ends: nsenter: /);
          return true;
        },
      );
      assert.ok(pids.length >= 3, `too few browser processes: ${pids}`);
      await assertAllGone(dir, pids);
    } finally {
      await served.close();
    }
  },
});

/** A page server run inside a lab node by `deno eval`, on the node's address. */
const NODE_SERVER = `
Deno.serve({ hostname: Deno.args[0], port: 8080, onListen() { console.log("ready"); } }, (r) =>
  new Response("<title>node</title><p id=from>served by " + Deno.args[0] + "</p>",
    { headers: { "content-type": "text/html" } }));
`;

Deno.test({
  name: "browser: in one lab node's namespace, Chromium opens a page served by another node",
  ignore,
  sanitizeResources: true,
  sanitizeOps: true,
  async fn() {
    await withLab("brw", planLab(2), async (lab) => {
      const [one, two] = lab.record.nodes;
      const address = one.nics[0].address;
      const server = startIn(lab, 1, [Deno.execPath(), "eval", NODE_SERVER, address]);
      try {
        await retryUntil(() => server.sink.out.includes("ready"), 10_000, {
          what: `the page server on ${address}`,
        });
        await withBrowser(async (browser) => {
          const tab = await browser.open(`http://${address}:8080/`);
          assert.equal(await tab.text("#from"), `served by ${address}`);
          // In the node's network namespace, not in its cgroups (its load stays the node's own).
          const nodeNetns = `net:[${(await Deno.stat(`/run/netns/${two.namespace}`)).ino}]`;
          const pids = await processesNaming(browser.dir);
          assert.ok(pids.length >= 3, `too few browser processes: ${pids}`);
          for (const pid of pids) {
            assert.equal(await Deno.readLink(`/proc/${pid}/ns/net`), nodeNetns, `pid ${pid}`);
          }
          for (const group of new Set(Object.values(two.cgroups))) {
            const procs = (await Deno.readTextFile(`${group}/cgroup.procs`)).split("\n");
            assert.deepEqual(pids.filter((pid) => procs.includes(String(pid))), [], group);
          }
        }, { namespace: two.namespace });
      } finally {
        server.child.kill("SIGTERM");
        await server.finish();
      }
    });
  },
});
