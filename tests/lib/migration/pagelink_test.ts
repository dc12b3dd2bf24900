/**
 * The page link's two ends (lib/migration/pagelink.ts, the source's; pagelistener.ts, the
 * target's), for real on loopback (no CRIU needed here; with CRIU, below): the
 * token admits the connection, a connection without it is closed unread, the commands get their
 * end of the link on descriptor 0, and what crosses the network is sealed: the bytes are nowhere
 * on the wire, and a man in the middle who changes them (tests/tools/pageproxy.ts) fails the link
 * at both ends. With CRIU: a job's memory dumped over the link is nowhere in a capture of it, and
 * a flipped bit in its pages fails the store at a target, which restores nothing.
 */
import assert from "node:assert/strict";
import {
  connectorArgs,
  DUMP_GATE,
  isPageToken,
  linkPages,
  newPageToken,
  PAGE_CONNECTOR,
  PAGE_LINK_FAILED,
  PageLinkError,
} from "../../../lib/migration/pagelink.ts";
import {
  launcherArgs,
  listenForPages,
  PAGE_LAUNCHER,
} from "../../../lib/migration/pagelistener.ts";
import { newPageSecret } from "../../../lib/migration/pageseal.ts";
import { receiverArgs } from "../../../lib/migration/pagereceiver.ts";
import { dumpArgs } from "../../../lib/criu/args.ts";
import { findCriu, preflight } from "../../../lib/criu/preflight.ts";
import { startJob } from "../../../lib/criu/startjob.ts";
import { readProcesses } from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { pageProxy } from "../../tools/pageproxy.ts";
import { proxy } from "../../tools/proxy.ts";
import { newLink, sendOnLink } from "../../tools/sealedpages.ts";
import { exists } from "../../tools/labkit.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { begin, body, finalRoundPages, peer, targetNode } from "./targetnode.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether `haystack` holds the bytes of `needle`. */
function holds(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("pagelink: tokens are 64 fresh hex characters", () => {
  const a = newPageToken();
  assert.ok(isPageToken(a), a);
  assert.notEqual(a, newPageToken());
  assert.ok(!isPageToken(a.toUpperCase()));
  assert.ok(!isPageToken(a.slice(1)));
  assert.ok(!isPageToken(42));
});

Deno.test("pagelink: the argv of both ends, and what they refuse", async () => {
  assert.deepEqual(connectorArgs(["criu", "dump"], "/m/1-out/page-link/sock"), [
    "-e",
    PAGE_CONNECTOR,
    "/m/1-out/page-link/sock",
    "",
    "criu",
    "dump",
  ]);
  assert.deepEqual(connectorArgs(["criu"], "/s/sock", "/m/1-out/gate").slice(2), [
    "/s/sock",
    "/m/1-out/gate",
    "criu",
  ]);
  assert.throws(() => connectorArgs(["x"], "/s/sock", "gate"), RangeError);
  assert.throws(() => connectorArgs(["x"], "sock"), RangeError);
  assert.deepEqual(launcherArgs(["criu", "page-server"], "/i/page-link/sock"), [
    "-e",
    PAGE_LAUNCHER,
    "/i/page-link/sock",
    "criu",
    "page-server",
  ]);
  assert.throws(() => launcherArgs(["x"], "sock"), RangeError);
  const to = { hostname: "127.0.0.1", port: 1, ...newLink() };
  const options = { socketDir: "/nonexistent/page-link" };
  await assert.rejects(linkPages(["x"], { ...to, port: 0 }, options), RangeError);
  await assert.rejects(linkPages(["x"], { ...to, token: "xyz" }, options), TypeError);
  await assert.rejects(linkPages(["x"], { ...to, secret: "AB".repeat(32) }, options), TypeError);
  await assert.rejects(
    listenForPages(["x"], { token: newPageToken(), secret: "x", dir: "/nonexistent" }),
    TypeError,
  );
});

Deno.test("pagelink: only the connection with the token reaches the command; what crosses is sealed", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const link = newLink();
  // The target's command stores what arrives on its stdin (its end of the link).
  const listener = await listenForPages(["sh", "-c", `cat > ${dir}/got`], { ...link, dir });
  // A stranger first: a wrong token, then data; it gets nothing and is closed.
  const answer = await sendOnLink(
    listener.port,
    encoder.encode("0".repeat(64) + "forged pages"),
  );
  assert.equal(answer.length, 0, "the stranger's connection is closed, with nothing said");
  // The source's end, through a man in the middle who records: linked first, its command runs
  // (and writes to its end of the link) at the go.
  const middle = pageProxy(listener.port);
  const pages = "the pages, ".repeat(100);
  const linked = await linkPages(
    ["sh", "-c", `printf '${pages}' >&0; echo ran > ${dir}/ran`],
    { hostname: "127.0.0.1", port: middle.port, ...link },
    { socketDir: `${dir}/page-link-out` },
  );
  assert.equal(await Deno.stat(`${dir}/ran`).catch(() => null), null, "nothing ran before go");
  assert.equal((await linked.go()).code, 0);
  assert.deepEqual(await listener.done, { success: true, code: 0 });
  assert.equal(await Deno.readTextFile(`${dir}/got`), pages);
  const wire = middle.captured("toTarget");
  await middle.close();
  assert.equal(decoder.decode(wire.subarray(0, 64)), link.token, "the token, then records");
  assert.ok(wire.length > 64 + pages.length, "the pages went over the link");
  assert.ok(!holds(wire, encoder.encode("the pages")), "nothing of them in clear");
  assert.ok(!holds(wire, encoder.encode(link.secret)), "nor the secret");
  // The unix sockets' directories are gone once connected.
  const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  assert.deepEqual(left, ["got", "ran"]);
});

Deno.test("pagelink: a man in the middle who changes the pages fails the link at both ends", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  // What reaches the target's command: nothing of a changed record nor of any after it (a
  // replayed record came once, as sent, before its copy).
  const cases = [
    { direction: "toTarget", action: "flip", target: /sealed record \d+ did not open/, got: "" },
    {
      direction: "toTarget",
      action: "replay",
      target: /sealed record \d+ did not open/,
      got: "the pages",
    },
    { direction: "toTarget", action: "drop", target: /sealed record \d+ did not open/, got: "" },
    { direction: "toTarget", action: "inject", target: /sealed record \d+ did not open/, got: "" },
    {
      direction: "toTarget",
      action: "cut",
      target: /ended before its end record: it was cut/,
      got: "",
    },
    { direction: "toTarget", action: "cutInside", target: /in the middle of record \d+/, got: "" },
    { direction: "toSource", action: "flip", source: /sealed record \d+ did not open/ },
  ] as const;
  for (const plan of cases) {
    const what = `${plan.direction} ${plan.action}`;
    const link = newLink();
    const listener = await listenForPages(
      ["sh", "-c", `printf 'answer' >&0; cat > ${dir}/got`],
      { ...link, dir, silenceMs: 3000 },
    );
    // The chosen record: the first that holds data (not a heartbeat, 17 bytes of length).
    const middle = pageProxy(listener.port, {
      direction: plan.direction,
      at: (record) => record.length > 4 + 17,
      action: plan.action,
    });
    const linked = await linkPages(
      ["sh", "-c", "printf 'the pages' >&0; sleep 0.3; printf 'more pages' >&0; sleep 0.3"],
      { hostname: "127.0.0.1", port: middle.port, ...link },
      { socketDir: `${dir}/page-link-out`, silenceMs: 3000 },
    );
    const sent = await linked.go().then(() => undefined, (error) => error);
    const end = await listener.done;
    await middle.tampered;
    await middle.close();
    assert.ok(sent instanceof PageLinkError, `${what}: the source's link failed: ${sent}`);
    assert.equal(sent.exitCode, PAGE_LINK_FAILED);
    assert.match(sent.message, /^Cannot send the pages to 127\.0\.0\.1:\d+: /, what);
    if ("source" in plan) assert.match(sent.message, plan.source, what);
    assert.equal(end.success, false, what);
    if ("target" in plan) assert.match(end.link ?? "", plan.target, what);
    const got = await Deno.readTextFile(`${dir}/got`).catch(() => "");
    if ("got" in plan) assert.equal(got, plan.got, `${what}: what got through`);
  }
});

Deno.test("pagelink: the connector exits with its command's status, or 124 when cancelled", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const link = newLink();
  const listener = await listenForPages(["cat"], { ...link, dir });
  const linked = await linkPages(
    ["sh", "-c", "exit 3"],
    { hostname: "127.0.0.1", port: listener.port, ...link },
    { socketDir: `${dir}/out` },
  );
  assert.equal((await linked.go()).code, 3);
  assert.deepEqual(await listener.done, { success: true, code: 0 }, "cat saw the link's end");

  const second = newLink();
  const other = await listenForPages(["cat"], { ...second, dir });
  const cancelled = await linkPages(
    ["sh", "-c", "exit 0"],
    { hostname: "127.0.0.1", port: other.port, ...second },
    { socketDir: `${dir}/out` },
  );
  assert.equal((await cancelled.cancel()).code, PAGE_LINK_FAILED);
  const end = await other.done;
  assert.equal(end.code, 0, "cat saw its socket end");
  assert.equal(end.success, false, "a link cut short stores nothing");
  assert.match(end.link ?? "", /ended before its end record: it was cut short/);
});

Deno.test("pagelink: a gated command starts at once, waits at its gate, and goes on at the go", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const link = newLink();
  const listener = await listenForPages(["sh", "-c", `cat > ${dir}/got`], { ...link, dir });
  const gate = `${dir}/gate`;
  const linked = await linkPages(
    [
      "sh",
      "-c",
      `echo "$OM_GATE" > ${dir}/started; read -r go < "$OM_GATE" && [ "$go" = go ] && ` +
      `printf 'the pages' >&0 && echo ran > ${dir}/ran`,
    ],
    { hostname: "127.0.0.1", port: listener.port, ...link },
    { socketDir: `${dir}/out`, gate },
  );
  // Linked: the command runs and holds the gate open, and waits there.
  assert.equal(await Deno.readTextFile(`${dir}/started`), `${gate}\n`);
  assert.ok((await Deno.stat(gate)).isFifo, "the gate is a FIFO");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(await Deno.stat(`${dir}/ran`).catch(() => null), null, "nothing ran before go");
  assert.equal((await linked.go()).code, 0);
  assert.equal((await listener.done).success, true);
  assert.equal(await Deno.readTextFile(`${dir}/got`), "the pages");
  assert.equal(await Deno.stat(gate).catch(() => null), null, "the gate is removed");

  // Cancelled: the gate says no, the command gives up, the connector exits 124.
  const second = newLink();
  const other = await listenForPages(["cat"], { ...second, dir });
  const cancelled = await linkPages(
    ["sh", "-c", `read -r go < "$OM_GATE"; echo "$go" > ${dir}/said; [ "$go" = go ]`],
    { hostname: "127.0.0.1", port: other.port, ...second },
    { socketDir: `${dir}/out`, gate },
  );
  assert.equal((await cancelled.cancel()).code, PAGE_LINK_FAILED);
  assert.equal(await Deno.readTextFile(`${dir}/said`), "no\n");
  assert.equal((await other.done).code, 0);
  assert.equal(await Deno.stat(gate).catch(() => null), null, "the gate is removed");

  // A command that ends before its gate: no link, and its status says why.
  const third = newLink();
  const last = await listenForPages(["cat"], { ...third, dir });
  const error = await linkPages(
    ["sh", "-c", "exit 7"],
    { hostname: "127.0.0.1", port: last.port, ...third },
    { socketDir: `${dir}/out`, gate },
  ).then(() => undefined, (e) => e);
  assert.ok(error instanceof PageLinkError, String(error));
  assert.equal(error.exitCode, 7);
  assert.match(error.message, /it ended first \(exit code 7\)/);
  await last.done;
});

Deno.test("pagelink: criu's dump gate waits at pre-dump only, and passes only a go", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/gate.sh`, DUMP_GATE, { mode: 0o700 });
  const gate = async (action: string, says: string) => {
    await Deno.writeTextFile(`${dir}/gate`, says);
    const env = { CRTOOLS_SCRIPT_ACTION: action, OM_GATE: `${dir}/gate` };
    return (await new Deno.Command(`${dir}/gate.sh`, { env }).output()).code;
  };
  assert.equal(await gate("pre-dump", "go\n"), 0);
  assert.equal(await gate("pre-dump", "no\n"), 1);
  assert.equal(await gate("pre-dump", ""), 1, "the end of the gate is no go");
  assert.equal(await gate("post-dump", ""), 0, "other steps pass at once");
});

Deno.test("pagelink: neither end waits for good on a silent peer", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  for (const silent of ["target", "source"] as const) {
    // The end that hears nothing from the `silent` one within 500 ms fails; the silent end waits
    // its default 10 s.
    const short = (end: string) => end === silent ? {} : { silenceMs: 500 };
    const link = newLink();
    const listener = await listenForPages(["cat"], { ...link, dir, ...short("target") });
    const cable = proxy(listener.port);
    const linked = await linkPages(
      ["sh", "-c", "sleep 1; printf 'late pages' >&0"],
      { hostname: "127.0.0.1", port: cable.port, ...link },
      { socketDir: `${dir}/out`, ...short("source") },
    );
    // The cable is cut, silently: neither end hears the other any more.
    cable.state.silent = true;
    const started = performance.now();
    if (silent === "target") {
      // The source hears nothing from the target.
      const sent = await linked.go().then(() => undefined, (error) => error);
      assert.ok(sent instanceof PageLinkError, String(sent));
      assert.match(sent.message, /nothing came from 127\.0\.0\.1:\d+ on the page link for 500 ms/);
      await listener.stop();
    } else {
      // The target hears nothing from the source.
      const end = await listener.done;
      assert.equal(end.success, false);
      assert.match(end.link ?? "", /nothing came from the source on the page link for 500 ms/);
      await linked.cancel();
    }
    assert.ok(performance.now() - started < 4000, `${silent} silent: within seconds`);
    await cable.close();
  }
});

Deno.test("pagelink: the listener gives up when nobody brings the token", async () => {
  await using tmp = await tempDir("pagelink");
  const logFile = `${tmp.path}/page-server.log`;
  const listener = await listenForPages(["sh", "-c", "cat > /dev/null; exit 1"], {
    ...newLink(),
    dir: tmp.path,
    seconds: 1,
    logFile,
  });
  assert.deepEqual(await listener.done, {
    success: false,
    code: 1,
    link: "no page link came within 1 s",
  });
  assert.equal(
    await Deno.readTextFile(logFile),
    "Error: om page link: no page link came within 1 s\n",
  );
});

Deno.test("pagelink: no link when nobody listens; a stopped listener stops its command", async () => {
  await using tmp = await tempDir("pagelink");
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  await assert.rejects(
    () =>
      linkPages(["true"], { hostname: "127.0.0.1", port, ...newLink() }, {
        socketDir: `${tmp.path}/out`,
      }),
    /Cannot make the page link to 127\.0\.0\.1:\d+: .*refused/i,
  );
  const listener = await listenForPages(["sleep", "60"], { ...newLink(), dir: tmp.path });
  const end = await listener.stop();
  assert.equal(end.success, false);
  assert.equal(end.code, 137, "killed");
  assert.ok(newPageSecret() !== newPageSecret());
});

const criu = findCriu((name) => Deno.env.get(name));
const criuRequired = Deno.env.get("OM_REQUIRE_CRIU") === "1";
const criuFound = criu
  ? await preflight({ binary: criu, now: () => performance.now() }).then(() => "", (e) => e.message)
  : "no criu on PATH and OM_CRIU not set";

/** A test with the real CRIU: skipped without a usable one, failed instead when it is required. */
function criuTest(name: string, fn: (dir: string) => Promise<void>) {
  Deno.test({
    name: `pagelink: ${name}${criuFound && !criuRequired ? " (SKIPPED: no usable CRIU)" : ""}`,
    ignore: criuFound !== "" && !criuRequired,
    async fn() {
      if (criuFound) {
        throw new Error(`CRIU is required (OM_REQUIRE_CRIU=1) but unusable: ${criuFound}`);
      }
      await using tmp = await tempDir("pagelink");
      await fn(tmp.path);
    },
  });
}

/** A job (started as om starts jobs) holding `mb` MiB of `pattern`, printing a line every 50 ms. */
async function patternJob(pattern: string, mb: number) {
  const job = await startJob([
    "perl",
    "-e",
    "my $x = $ARGV[0] x ($ARGV[1] * 1048576 / length $ARGV[0]); $| = 1; " +
    'for (my $i = 0;; $i++) { print "$i\\n"; select(undef, undef, undef, 0.05) }',
    pattern,
    String(mb),
  ], { stdout: "piped", stderr: "null" });
  let out = "";
  const reading = (async () => {
    for await (const chunk of job.process.stdout) out += decoder.decode(chunk);
  })();
  const lines = () => out.split("\n").filter((line) => line !== "").length;
  await retryUntil(() => lines() >= 3, 10_000, { what: "the job's first lines" });
  return {
    ...job,
    lines,
    async stop() {
      try {
        Deno.kill(job.pid, "SIGKILL");
      } catch { /* gone */ }
      await job.process.status;
      await reading;
    },
  };
}

criuTest("a job's memory dumped over the link is nowhere in a capture of it", async (dir) => {
  // A pattern no other process holds: 16 random bytes, in hex.
  const pattern = `om-page-link-${toHexString(crypto.getRandomValues(new Uint8Array(16)))}`;
  const job = await patternJob(pattern, 8);
  try {
    const link = newLink();
    const images = `${dir}/in`;
    await Deno.mkdir(images);
    await Deno.mkdir(`${dir}/out`);
    const receiver = receiverArgs({ imagesDir: images, logFile: `${images}/page-server.log` });
    assert.ok(receiver, "this machine's splice(2) number is known");
    const listener = await listenForPages(receiver, { ...link, dir: images });
    const middle = pageProxy(listener.port);
    const linked = await linkPages(
      [
        criu!,
        ...dumpArgs({
          pid: job.pid,
          imagesDir: `${dir}/out`,
          logFile: `${dir}/dump.log`,
          psSocket: 0,
        }),
      ],
      { hostname: "127.0.0.1", port: middle.port, ...link },
      { socketDir: `${dir}/link` },
    );
    assert.equal((await linked.go()).code, 0, "the dump");
    assert.deepEqual(await listener.done, { success: true, code: 0 }, "the store");
    const wire = [middle.captured("toTarget"), middle.captured("toSource")];
    await middle.close();
    // The pattern crossed: it is in the pages stored at the other end, thousands of times.
    let stored = new Uint8Array(0);
    for await (const entry of Deno.readDir(images)) {
      if (/^pages-\d+\.img$/.test(entry.name)) {
        stored = await Deno.readFile(`${images}/${entry.name}`);
      }
    }
    const needle = encoder.encode(pattern);
    assert.ok(holds(stored, needle), "the job's memory reached the target");
    assert.ok(wire[0].length > 8 << 20, `the link carried the pages (${wire[0].length} bytes)`);
    // And none of it is on the wire, nor any 16 bytes of it.
    for (const bytes of wire) {
      assert.ok(!holds(bytes, needle), "the pattern is not on the wire");
      assert.ok(!holds(bytes, needle.subarray(13, 29)), "nor a part of it");
    }
  } finally {
    await job.stop();
  }
});

criuTest(
  "a flipped bit in a dump's pages fails the store; nothing is restored, the job goes on",
  async (dir) => {
    const job = await patternJob("om-page-link-flip-", 8);
    const root = `${dir}/node2`;
    try {
      const { handlers } = targetNode(root, { criu: criu! });
      const link = newLink();
      const port = await finalRoundPages(handlers, link);
      // A man in the middle flips a bit of the pages: the first record of a whole 64 KiB or more.
      const middle = pageProxy(port, {
        direction: "toTarget",
        at: (record) => record.length >= 65536,
        action: "flip",
      });
      await Deno.mkdir(`${dir}/out`);
      const linked = await linkPages(
        [
          criu!,
          ...dumpArgs({
            pid: job.pid,
            imagesDir: `${dir}/out`,
            logFile: `${dir}/dump.log`,
            psSocket: 0,
            leaveStopped: true,
          }),
        ],
        { hostname: "127.0.0.1", port: middle.port, ...link },
        { socketDir: `${dir}/link` },
      );
      const sent = await linked.go().then((status) => status, (error) => error);
      await middle.tampered;
      await middle.close();
      assert.ok(
        sent instanceof PageLinkError,
        `the dump failed with its link: ${JSON.stringify(sent)}`,
      );
      // The target stores nothing and restores nothing.
      await assert.rejects(
        handlers.get("mig.begin")!(body(begin), peer),
        /Cannot store the pages of job 77: the page link failed: sealed record \d+ did not open/,
      );
      assert.equal(await exists(`${root}/migrations/77-in`), false, "its images went");
      await assert.rejects(
        handlers.get("mig.restore")!(body({ id: 77 }), peer),
        /no migration of job 77 under way here/,
      );
      await retryUntil(
        async () =>
          (await readProcesses("/proc")).every((p) => !p.argv.some((arg) => arg.startsWith(root))),
        5000,
        { what: "the restore held for those pages to stop" },
      );
      // The job goes on where it was.
      const seen = job.lines();
      await retryUntil(() => job.lines() >= seen + 4, 5000, { what: "the job to go on" });
    } finally {
      await job.stop();
    }
  },
);

/** Lowercase hex of `bytes`. */
function toHexString(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
