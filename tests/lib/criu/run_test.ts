/**
 * lib/criu/run.ts with the real CRIU: jobs started as om starts them (startjob.ts) dumped and
 * restored, root's and a user's, with children, through om's page receiver, and a dump that
 * fails. Run when CRIU is usable; when OM_REQUIRE_CRIU=1 (scripts/test as root), unusable is a
 * failure.
 */
import assert from "node:assert/strict";
import { dumpArgs, pageServerArgs } from "../../../lib/criu/args.ts";
import { CriuError } from "../../../lib/criu/criuerror.ts";
import { parseJobUser } from "../../../lib/criu/jobuser.ts";
import { findCriu, type Preflight, preflight } from "../../../lib/criu/preflight.ts";
import { type Criu, dump, restore } from "../../../lib/criu/run.ts";
import { fdKey, hasOwnMounts, type StartedJob, startJob } from "../../../lib/criu/startjob.ts";
import { linkPages } from "../../../lib/migration/pagelink.ts";
import { listenForPages } from "../../../lib/migration/pagelistener.ts";
import { receiverArgs, reservePages } from "../../../lib/migration/pagereceiver.ts";
import { privateMemory } from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { feed, newLink, PAGE_RECORDER } from "../../tools/sealedpages.ts";
import { tempDir } from "../../tools/tempdir.ts";

const binary = findCriu((name) => Deno.env.get(name));
const criu: Criu = { binary: binary ?? "criu", now: () => performance.now() };
const required = Deno.env.get("OM_REQUIRE_CRIU") === "1";
let found: Preflight | Error;
try {
  found = binary ? await preflight(criu) : new Error("no criu on PATH and OM_CRIU not set");
} catch (error) {
  found = error as Error;
}
const usable = !(found instanceof Error);
const suffix = usable || required ? "" : " (SKIPPED: no usable CRIU)";

/** A real-CRIU test: skipped when CRIU is unusable, failed instead when it is required. */
function realTest(name: string, fn: (dir: string) => Promise<void>) {
  Deno.test({
    name: `criu: ${name}${suffix}`,
    ignore: !usable && !required,
    async fn() {
      if (found instanceof Error) {
        throw new Error(`CRIU is required (OM_REQUIRE_CRIU=1) but unusable: ${found.message}`);
      }
      await using tmp = await tempDir("criu");
      const dir = tmp.path;
      await fn(dir);
    },
  });
}

if (usable) {
  const info = found as Preflight;
  console.log(
    `criu: ${info.binary} ${info.version.text}, mem_dirty_track ${
      info.memDirtyTrack ? "on" : "off"
    }`,
  );
}

/** Collects a stream's text; `done` resolves at EOF. */
function collect(stream: ReadableStream<Uint8Array>) {
  const decoder = new TextDecoder();
  const sink = { text: "", done: Promise.resolve() };
  sink.done = (async () => {
    for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
  })();
  return sink;
}

const lines = (text: string) => text.split("\n").filter((line) => line !== "");

/** Waits until `sink` holds at least `count` whole lines. */
async function awaitLines(sink: { text: string }, count: number, what: string) {
  await retryUntil(() => lines(sink.text).length >= count, 5000, { what });
}

function kill(pid: number) {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Kills a job started here and waits for its unshare; killing PID 1 ends its whole namespace. */
async function stop(job: StartedJob) {
  kill(job.pid);
  kill(job.process.pid);
  await job.process.status;
}

async function processGone(pid: number) {
  await retryUntil(
    async () => {
      const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "State:\tX");
      return /^State:\s*[XZ]/m.test(status);
    },
    5000,
    { what: `process ${pid} to end` },
  );
}

const COUNTER = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.05; done";

/** 0, 1, 2, ... n-1: the counter's output must be exactly this, whatever moved it. */
function assertCounts(all: string[], prefix = "") {
  assert.deepEqual(all, all.map((_, i) => `${prefix}${i}`));
}

realTest("a job's output continues on a new pipe after dump and restore", async (dir) => {
  const job = await startJob(["sh", "-c", COUNTER], { stdout: "piped", stderr: "null" });
  let restoredPid: number | undefined;
  try {
    const before = collect(job.process.stdout);
    await awaitLines(before, 5, "the job's first lines");
    const key = await fdKey(job.pid, 1);
    assert.match(key, /^pipe:\[\d+\]$/);

    const dumped = await dump(criu, { pid: job.pid, imagesDir: dir });
    assert.equal(dumped.step, "dump");
    // Stop-and-copy: the dump killed the job, unshare saw it go, the old pipe reaches EOF.
    await job.process.status;
    await before.done;
    assert.equal(await hasOwnMounts(dir), false, "root's job is in the host's mount namespace");

    const pages: string[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith("pages-")) pages.push(`${dir}/${entry.name}`);
    }
    const blocks = async () => {
      let sum = 0;
      for (const path of pages) sum += (await Deno.stat(path)).blocks ?? 0;
      return sum;
    };
    assert.ok(await blocks() > 0, "the dump wrote pages");

    const restored = await restore(criu, {
      imagesDir: dir,
      inheritFds: [{ fd: 1, key }],
      stdio: { stdout: "piped" },
      autoDedup: true,
    });
    restoredPid = restored.pid;
    assert.ok(restored.stdout);
    assert.equal(await blocks(), 0, "--auto-dedup freed the pages it restored");
    const after = collect(restored.stdout);
    await awaitLines(after, 5, "the restored job's lines");
    const status = await Deno.readTextFile(`/proc/${restored.pid}/status`);
    assert.match(status, /^NSpid:\s*\d+\s+1$/m, "the restored job is PID 1 of a new namespace");
    kill(restored.pid);
    await after.done;

    const old = lines(before.text);
    const fresh = lines(after.text);
    assert.equal(Number(fresh[0]), Number(old.at(-1)) + 1, "the next value, no gap, no duplicate");
    assertCounts([...old, ...fresh]);
    console.log(
      `criu: counter job dumped in ${dumped.ms.toFixed(0)} ms, restored in ${
        restored.ms.toFixed(0)
      } ms`,
    );
  } finally {
    await stop(job);
    if (restoredPid) kill(restoredPid);
  }
});

realTest(
  "a user's job in its own mount namespace is dumped as its user and restored",
  async (dir) => {
    // nobody's: no CAP_SYS_RESOURCE needed (CRIU's prlimit of the same uid), its own /proc for
    // the parasite, all its mounts the host's (external) but the nsfs ones, which it drops (one
    // made for the test: CRIU could not restore its mount); its stdio pipes only.
    const netns = `om-criu-test-${Deno.pid}`;
    const ip = (...args: string[]) => new Deno.Command("ip", { args, stderr: "null" }).output();
    assert.equal((await ip("netns", "add", netns)).code, 0, `ip netns add ${netns}`);
    const job = await startJob(
      ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", COUNTER],
      { stdin: "piped", stdout: "piped", stderr: "piped", ownMounts: true },
    );
    let restoredPid: number | undefined;
    try {
      const before = collect(job.process.stdout);
      await awaitLines(before, 4, "the user's job's first lines");
      const user = parseJobUser(
        await Deno.readTextFile(`/proc/${job.pid}/status`),
        await Deno.readTextFile("/proc/self/status"),
      );
      assert.equal(user?.uid, 65534);
      const key = await fdKey(job.pid, 1);
      await dump(criu, { pid: job.pid, imagesDir: dir, user });
      await job.process.status;
      await before.done;
      assert.ok(await hasOwnMounts(dir), "the images hold the job's mount namespace");

      const restored = await restore(criu, {
        imagesDir: dir,
        inheritFds: [{ fd: 1, key }],
        stdio: { stdout: "piped" },
        ownMounts: true,
      });
      restoredPid = restored.pid;
      const after = collect(restored.stdout!);
      await awaitLines(after, 4, "the restored user's job's lines");
      const status = await Deno.readTextFile(`/proc/${restored.pid}/status`);
      assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m, "still nobody's");
      // Its /proc is a proc of its own namespace again (another one than the host's), as the next
      // dump's parasite needs.
      const procDev = (mountinfo: string) =>
        mountinfo.split("\n").filter((line) => / \/proc rw.* - proc /.test(line)).at(-1)
          ?.split(" ")[2];
      const own = procDev(await Deno.readTextFile(`/proc/${restored.pid}/mountinfo`));
      assert.ok(own, "a /proc mounted in the job's namespace");
      assert.notEqual(own, procDev(await Deno.readTextFile("/proc/self/mountinfo")));
      const mounts = await Deno.readTextFile(`/proc/${restored.pid}/mountinfo`);
      assert.doesNotMatch(mounts, / - nsfs /);
      kill(restored.pid);
      await after.done;
      assertCounts([...lines(before.text), ...lines(after.text)]);
    } finally {
      await stop(job);
      if (restoredPid) kill(restoredPid);
      await ip("netns", "del", netns);
    }
  },
);

realTest("a job with a child process is dumped and restored whole", async (dir) => {
  // The job (PID 1) is a shell waiting for its child, a shell that counts.
  const script = `sh -c '${COUNTER.replaceAll("echo $i", "echo c$i")}' & wait`;
  const job = await startJob(["sh", "-c", script], { stdout: "piped", stderr: "null" });
  let restoredPid: number | undefined;
  try {
    const before = collect(job.process.stdout);
    await awaitLines(before, 4, "the child's first lines");
    const children = (pid: number) =>
      Deno.readTextFile(`/proc/${pid}/task/${pid}/children`).then((t) => t.trim().split(/\s+/));
    const [child] = await children(job.pid);
    const childNs = /^NSpid:.*\s(\d+)$/m.exec(await Deno.readTextFile(`/proc/${child}/status`))
      ?.[1];
    const key = await fdKey(job.pid, 1);

    await dump(criu, { pid: job.pid, imagesDir: dir });
    await job.process.status;
    await before.done;

    const restored = await restore(criu, {
      imagesDir: dir,
      inheritFds: [{ fd: 1, key }],
      stdio: { stdout: "piped" },
    });
    restoredPid = restored.pid;
    const after = collect(restored.stdout!);
    await awaitLines(after, 4, "the restored child's lines");
    const [newChild] = await children(restored.pid);
    assert.ok(newChild, "the restored job has its child again");
    const newChildStatus = await Deno.readTextFile(`/proc/${newChild}/status`);
    assert.equal(/^NSpid:.*\s(\d+)$/m.exec(newChildStatus)?.[1], childNs, "with its PID");
    kill(restored.pid); // PID 1 gone: the kernel kills the child too
    await after.done;
    await processGone(Number(newChild));
    assertCounts([...lines(before.text), ...lines(after.text)], "c");
  } finally {
    await stop(job);
    if (restoredPid) kill(restoredPid);
  }
});

/** A file's SHA-256, in hex: big images compared without a diff of their bytes. */
async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

realTest(
  "om's page receiver stores a dump as criu page-server does; the job restores from it",
  async (dir) => {
    // 6 MiB of distinct words, so that every page differs, and a counter.
    const job = await startJob([
      "perl",
      "-e",
      "my $x = ''; $x .= pack('N', $_) for 0 .. 1572863; $| = 1; " +
      'for (my $i = 0;; $i++) { print "$i\\n"; select(undef, undef, undef, 0.05) }',
    ], { stdout: "piped", stderr: "null" });
    let restoredPid: number | undefined;
    try {
      const before = collect(job.process.stdout);
      await awaitLines(before, 3, "the job's first lines");
      const key = await fdKey(job.pid, 1);
      // Its private memory, as a migration's source reads it for the target's reservation: by
      // its PID in its own namespace, 1, which names its images.
      const reserve = await privateMemory(job.pid);
      assert.ok(reserve[1] >= 6 * 1048576, `6 MiB and more: ${JSON.stringify(reserve)}`);
      // One dump through a (sealed) page link, recorded; then the same stream, over a sealed
      // page link each, into criu's page server and into om's receiver, room reserved for it as
      // a target does. Both stores must be the same files, byte for byte.
      await Deno.mkdir(`${dir}/out`);
      const link = newLink();
      const recorder = await listenForPages(["perl", "-e", PAGE_RECORDER, `${dir}/stream`], {
        ...link,
        dir,
      });
      const linked = await linkPages(
        [
          criu.binary,
          ...dumpArgs({
            pid: job.pid,
            imagesDir: `${dir}/out`,
            logFile: `${dir}/dump.log`,
            psSocket: 0,
          }),
        ],
        { hostname: "127.0.0.1", port: recorder.port, ...link },
        { socketDir: `${dir}/link` },
      );
      assert.equal((await linked.go()).code, 0, "the dump");
      assert.deepEqual(await recorder.done, { success: true, code: 0 }, "the recording");
      await job.process.status;
      await before.done;
      const stream = await Deno.readFile(`${dir}/stream`);
      const stores: Record<string, Map<string, Uint8Array<ArrayBuffer>>> = {};
      for (const way of ["criu", "om"]) {
        const store = { imagesDir: `${dir}/${way}`, logFile: `${dir}/${way}.log` };
        await Deno.mkdir(store.imagesDir);
        if (way === "om") await reservePages(store.imagesDir, reserve);
        const command = way === "om"
          ? receiverArgs(store)!
          : [criu.binary, ...pageServerArgs({ ...store, psSocket: 0 })];
        const { code, answers } = await feed(command, stream, store.imagesDir);
        assert.equal(code, 0, `${way}'s store`);
        assert.deepEqual(answers, [0, 0, 0, 0, 0], `${way}: no parent, then the close's 0`);
        stores[way] = new Map();
        for await (const entry of Deno.readDir(store.imagesDir)) {
          stores[way].set(entry.name, await Deno.readFile(`${store.imagesDir}/${entry.name}`));
        }
      }
      assert.deepEqual([...stores.om.keys()].sort(), [...stores.criu.keys()].sort());
      assert.ok(stores.om.get("pages-65537.img")!.length >= 6 * 1048576, "all 6 MiB of the job");
      for (const [name, bytes] of stores.criu) {
        assert.equal(await sha256(stores.om.get(name)!), await sha256(bytes), name);
      }
      // The job restores from om's store and counts on.
      for (const [name, bytes] of stores.om) await Deno.writeFile(`${dir}/out/${name}`, bytes);
      const restored = await restore(criu, {
        imagesDir: `${dir}/out`,
        inheritFds: [{ fd: 1, key }],
        stdio: { stdout: "piped" },
      });
      restoredPid = restored.pid;
      const after = collect(restored.stdout!);
      await awaitLines(after, 3, "the restored job's lines");
      kill(restored.pid);
      await after.done;
      assertCounts([...lines(before.text), ...lines(after.text)]);
    } finally {
      await stop(job);
      if (restoredPid) kill(restoredPid);
    }
  },
);

realTest("a failed dump leaves the job running and says which step failed", async (dir) => {
  const job = await startJob(["sh", "-c", COUNTER], { stdout: "piped", stderr: "null" });
  try {
    const out = collect(job.process.stdout);
    await awaitLines(out, 3, "the job's first lines");
    // A page server on a closed port: criu freezes the tree, cannot connect, and unfreezes it.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    const error = await dump(criu, {
      pid: job.pid,
      imagesDir: dir,
      pageServer: { address: "127.0.0.1", port },
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof CriuError, `expected a CriuError, got ${error}`);
    assert.equal(error.step, "dump");
    assert.equal(error.exitCode, 1);
    assert.equal(error.logPath, `${dir}/dump.log`);
    assert.ok((await Deno.stat(error.logPath!)).isFile);
    assert.ok(error.logTail.length > 0);
    assert.match(error.message, /^Cannot dump process "\d+": criu dump exited with code 1 \(log: /);
    // Still alive, still counting, nothing lost or repeated.
    const seen = lines(out.text).length;
    await awaitLines(out, seen + 4, "the job to go on counting");
    assert.match(await Deno.readTextFile(`/proc/${job.pid}/status`), /^State:\s*[RS]/m);
    const missingDir = await dump(criu, { pid: job.pid, imagesDir: `${dir}/missing` }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(missingDir instanceof CriuError && missingDir.step === "dump");
    assert.equal(missingDir.logPath, undefined, "no log could be written there");
    assert.match(missingDir.hint ?? "", /images directory/);
    await awaitLines(out, seen + 8, "the job to go on counting after the second failure");
    kill(job.pid);
    await out.done;
    assertCounts(lines(out.text));
  } finally {
    await stop(job);
  }
});

realTest("timings: a job moved three times (dump, restore, dump again...)", async (dir) => {
  const job = await startJob(["sh", "-c", COUNTER], { stdout: "piped", stderr: "null" });
  const outputs = [collect(job.process.stdout)];
  let pid = job.pid;
  const times: string[] = [];
  try {
    for (let round = 1; round <= 3; round++) {
      await awaitLines(outputs.at(-1)!, 3, `lines before dump ${round}`);
      const key = await fdKey(pid, 1);
      const images = `${dir}/${round}`;
      await Deno.mkdir(images);
      const dumped = await dump(criu, { pid, imagesDir: images });
      await processGone(pid);
      const restored = await restore(criu, {
        imagesDir: images,
        inheritFds: [{ fd: 1, key }],
        stdio: { stdout: "piped" },
      });
      pid = restored.pid;
      outputs.push(collect(restored.stdout!));
      times.push(`dump ${dumped.ms.toFixed(0)} ms, restore ${restored.ms.toFixed(0)} ms`);
    }
    await awaitLines(outputs.at(-1)!, 3, "lines after the last restore");
    kill(pid);
    await job.process.status;
    for (const output of outputs) await output.done;
    assertCounts(outputs.flatMap((output) => lines(output.text)));
    console.log(`criu: ${times.join("; ")}`);
  } finally {
    await stop(job);
    kill(pid);
  }
});
