import assert from "node:assert/strict";
import {
  asJobUser,
  capabilityNames,
  checkArgs,
  CLOSE_FDS,
  type Criu,
  CriuError,
  DROP_NSFS,
  dump,
  dumpArgs,
  fdKey,
  findCriu,
  hasOwnMounts,
  hintFor,
  logTail,
  pageServerArgs,
  parseJobUser,
  parseVersion,
  type Preflight,
  preflight,
  restore,
  restoreArgs,
  type StartedJob,
  startJob,
  startJobArgs,
} from "../../../lib/criu/criu.ts";
import { linkPages, listenForPages, newPageToken } from "../../../lib/migration/pagelink.ts";
import { receiverArgs, reservePages } from "../../../lib/migration/pagereceiver.ts";
import { privateMemory } from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { feed, PAGE_RECORDER } from "../../tools/pagestream.ts";

// ---------------------------------------------------------------------------------------------
// argv builders and parsers: always run

Deno.test("criu: checkArgs is the whole check, or one feature", () => {
  assert.deepEqual(checkArgs(), ["check"]);
  assert.deepEqual(checkArgs("mem_dirty_track"), ["check", "--feature", "mem_dirty_track"]);
});

Deno.test("criu: dumpArgs for a plain stop-and-copy dump", () => {
  assert.deepEqual(dumpArgs({ pid: 42, imagesDir: "/img", logFile: "/img/dump.log" }), [
    "dump",
    "--tree",
    "42",
    "--images-dir",
    "/img",
    "--log-file",
    "/img/dump.log",
    "-v4",
  ]);
});

Deno.test("criu: dumpArgs with every option, and as a pre-dump", () => {
  assert.deepEqual(
    dumpArgs({
      pid: 7,
      imagesDir: "/img/2",
      logFile: "/img/2/dump.log",
      leaveRunning: true,
      trackMem: true,
      prevImagesDir: "../1",
      shellJob: true,
      extUnixSk: true,
      tcpEstablished: true,
      fileLocks: true,
      pageServer: { address: "10.0.0.2", port: 27 },
      verbosity: 2,
    }, "pre-dump"),
    [
      "pre-dump",
      "--tree",
      "7",
      "--images-dir",
      "/img/2",
      "--log-file",
      "/img/2/dump.log",
      "-v2",
      "--leave-running",
      "--track-mem",
      "--prev-images-dir",
      "../1",
      "--shell-job",
      "--ext-unix-sk",
      "--tcp-established",
      "--file-locks",
      "--page-server",
      "--address",
      "10.0.0.2",
      "--port",
      "27",
    ],
  );
  assert.deepEqual(
    dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/l", unprivileged: true, ownMounts: true })
      .slice(8),
    ["--unprivileged", "--external", "mnt[]"],
  );
  const stopped = dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/i/d.log", leaveStopped: true });
  assert.equal(stopped.at(-1), "--leave-stopped");
  assert.throws(
    () =>
      dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/l", leaveRunning: true, leaveStopped: true }),
    /both running and stopped/,
  );
});

Deno.test("criu: dumpArgs and pageServerArgs over a connected socket (--ps-socket)", () => {
  assert.deepEqual(
    dumpArgs({ pid: 9, imagesDir: "/o", logFile: "/o/dump.log", psSocket: 0 }),
    ["dump", "--tree", "9", "--images-dir", "/o", "--log-file", "/o/dump.log", "-v4"]
      .concat(["--page-server", "--ps-socket", "0"]),
  );
  assert.throws(
    () =>
      dumpArgs({
        pid: 9,
        imagesDir: "/o",
        logFile: "/l",
        psSocket: 0,
        pageServer: { address: "10.0.0.2", port: 27 },
      }),
    /an address or a socket, not both/,
  );
  assert.throws(
    () => dumpArgs({ pid: 9, imagesDir: "/o", logFile: "/l", psSocket: -1 }),
    RangeError,
  );
  assert.deepEqual(
    pageServerArgs({ imagesDir: "/i", logFile: "/i/page-server.log", psSocket: 0 }),
    ["page-server", "--images-dir", "/i", "--log-file", "/i/page-server.log", "-v4"]
      .concat(["--ps-socket", "0"]),
  );
  assert.throws(
    () => pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 1.5 }),
    RangeError,
  );
  assert.deepEqual(
    pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 0, prevImagesDir: "pre-1" }).slice(
      -2,
    ),
    ["--prev-images-dir", "pre-1"],
  );
  assert.throws(
    () => pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 0, prevImagesDir: "/abs" }),
    /must be relative to the images dir/,
  );
});

Deno.test("criu: dumpArgs refuses a bad pid and an absolute previous images dir", () => {
  assert.throws(() => dumpArgs({ pid: 0, imagesDir: "/i", logFile: "/l" }), RangeError);
  assert.throws(() => dumpArgs({ pid: 1.5, imagesDir: "/i", logFile: "/l" }), RangeError);
  assert.throws(
    () => dumpArgs({ pid: 3, imagesDir: "/i", logFile: "/l", prevImagesDir: "/old" }),
    /must be relative to the images dir/,
  );
});

Deno.test("criu: restoreArgs is detached by default and maps inherited descriptors", () => {
  assert.deepEqual(
    restoreArgs({
      imagesDir: "/img",
      logFile: "/img/restore.log",
      pidfile: "/img/pid",
      inheritFds: [{ fd: 1, key: "pipe:[4711]" }, { fd: 2, key: "pipe:[4712]" }],
    }),
    [
      "restore",
      "--images-dir",
      "/img",
      "--log-file",
      "/img/restore.log",
      "-v4",
      "--pidfile",
      "/img/pid",
      "--restore-detached",
      "--inherit-fd",
      "fd[1]:pipe:[4711]",
      "--inherit-fd",
      "fd[2]:pipe:[4712]",
    ],
  );
  const attached = restoreArgs({
    imagesDir: "/i",
    logFile: "/l",
    pidfile: "/p",
    restoreDetached: false,
    restoreSibling: true,
    shellJob: true,
  });
  assert.ok(!attached.includes("--restore-detached"));
  assert.ok(!attached.includes("--leave-stopped"));
  assert.deepEqual(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", leaveStopped: true }).slice(-2),
    ["--restore-detached", "--leave-stopped"],
  );
  assert.ok(attached.includes("--restore-sibling") && attached.includes("--shell-job"));
  assert.deepEqual(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", ownMounts: true }).slice(-4),
    ["--root", "/", "--external", "mnt[]"],
  );
  assert.equal(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", autoDedup: true }).at(-1),
    "--auto-dedup",
  );
  assert.throws(
    () =>
      restoreArgs({
        imagesDir: "/i",
        logFile: "/l",
        pidfile: "/p",
        inheritFds: [{ fd: -1, key: "x" }],
      }),
    RangeError,
  );
});

Deno.test("criu: startJobArgs makes the command PID 1 of its own namespace and session", () => {
  assert.deepEqual(startJobArgs(["sh", "-c", "echo hi"]), [
    "perl",
    "-e",
    CLOSE_FDS,
    "--",
    "unshare",
    "--pid",
    "--fork",
    "--",
    "setsid",
    "--",
    "sh",
    "-c",
    "echo hi",
  ]);
  assert.deepEqual(startJobArgs(["id"], { ownMounts: true }).slice(4), [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    "--mount-proc",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    DROP_NSFS,
    "om-job",
    "setsid",
    "--",
    "id",
  ]);
  assert.throws(() => startJobArgs([]), RangeError);
});

Deno.test("criu: a job starts with descriptors 0, 1 and 2 only, whatever its starter held", async () => {
  // sh opens 7 and 9 and execs the rest, which lists the descriptors of the shell at its end.
  const fds = async (...prefix: string[]) => {
    const argv = ["-c", 'exec 7</dev/null 9>/dev/null; exec "$@"', "sh", ...prefix];
    argv.push("sh", "-c", "ls /proc/$$/fd");
    const out = await new Deno.Command("sh", { args: argv, stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l).sort();
  };
  const held = await fds();
  assert.ok(held.includes("7") && held.includes("9"), `without it: ${held}`);
  assert.deepEqual(await fds("perl", "-e", CLOSE_FDS, "--"), ["0", "1", "2"]);
});

Deno.test("criu: a user's job is dumped as its user, with the daemon's capabilities", () => {
  // This machine's root: everything but sys_resource (24); root elsewhere: all 41.
  const caps = capabilityNames("000001fffeffffff");
  assert.equal(caps.length, 40);
  assert.ok(!caps.includes("sys_resource"));
  assert.deepEqual([caps[0], caps[23], caps[24], caps.at(-1)], [
    "chown",
    "sys_nice",
    "sys_time",
    "checkpoint_restore",
  ]);
  assert.deepEqual(capabilityNames("0"), []);
  assert.throws(() => capabilityNames("fffz"), RangeError);
  assert.deepEqual(asJobUser({ uid: 1000, gid: 100, caps: ["sys_ptrace", "checkpoint_restore"] }), [
    "setpriv",
    "--reuid=1000",
    "--regid=100",
    "--clear-groups",
    "--inh-caps=-all,+sys_ptrace,+checkpoint_restore",
    "--ambient-caps=-all,+sys_ptrace,+checkpoint_restore",
    "--",
  ]);
  assert.throws(() => asJobUser({ uid: 0, gid: 0, caps: [] }), RangeError);
  const self = "Name:\tdeno\nCapInh:\t0000000000000000\nCapEff:\t0000010000080000\n";
  const status = (uid: string, gid: string) => `Name:\tsh\nUid:\t${uid}\nGid:\t${gid}\n`;
  assert.deepEqual(parseJobUser(status("1000\t1000\t1000\t1000", "100\t100\t100\t100"), self), {
    uid: 1000,
    gid: 100,
    caps: ["sys_ptrace", "checkpoint_restore"],
  });
  assert.equal(parseJobUser(status("0\t0\t0\t0", "0\t0\t0\t0"), self), undefined);
  assert.throws(
    () => parseJobUser(status("1000\t0\t0\t0", "100\t100\t100\t100"), self),
    /set-user-ID or set-group-ID \(uids 1000 0 0, gids 100 100 100\)/,
  );
  assert.throws(
    () => parseJobUser(status("1000\t1000\t1000\t1000", "100\t5\t100\t100"), self),
    /set-group-ID/,
  );
  assert.throws(() => parseJobUser("Name:\tsh\n", self), /no Uid and Gid lines/);
  assert.throws(
    () => parseJobUser(status("1000\t1000\t1000\t1000", "100\t100\t100\t100"), "Name:\tx\n"),
    /capabilities/,
  );
});

Deno.test("criu: parseVersion reads criu --version", () => {
  assert.deepEqual(parseVersion("Version: 4.1.1\n"), {
    major: 4,
    minor: 1,
    patch: 1,
    text: "4.1.1",
  });
  assert.deepEqual(parseVersion("Version: 3.17\nGitID: v3.17\n"), {
    major: 3,
    minor: 17,
    patch: 0,
    text: "3.17",
  });
  assert.equal(parseVersion("criu: command not found"), undefined);
});

Deno.test("criu: hintFor recognises the failures met on these machines", () => {
  const log = [
    "(00.02) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    "(00.03) Error (criu/cr-restore.c:1480): Can't fork for PID 4711: File exists",
  ].join("\n");
  assert.match(hintFor(log) ?? "", /own PID namespace/);
  assert.match(hintFor("Error (x): Unexpected rt vDSO area bounds") ?? "", /too old/);
  assert.match(
    hintFor("Error (mount.c): Can't lookup mount=42 for fd=0 path=/dev/null") ?? "",
    /opened outside its own mount namespace/,
  );
  assert.match(
    hintFor(
      "Error (criu/mount-v2.c:319): mnt-v2: Failed to open_tree /run/netns/x/: Not a directory\n" +
        "Error (criu/files.c:10): inherit fd fd[1]",
    ) ?? "",
    /each of its mounts here too/,
  );
  assert.match(hintFor("Error (parasite): Can't get /proc fd") ?? "", /\/proc of its own/);
  // The harmless rlimit warning alone is not taken for "needs root".
  assert.equal(hintFor(log.split("\n")[0]), undefined);
  assert.deepEqual(logTail(log + "\n\nlast\n", 2), [log.split("\n")[1], "last"]);
});

Deno.test("criu: a missing binary is a CriuError with a hint", async () => {
  const criu: Criu = { binary: "/nonexistent/criu", now: () => performance.now() };
  const error = await preflight(criu).then(() => undefined, (e) => e);
  assert.ok(error instanceof CriuError);
  assert.equal(error.step, "check");
  assert.equal(error.exitCode, undefined);
  assert.match(error.hint ?? "", /OM_CRIU/);
});

// ---------------------------------------------------------------------------------------------
// real CRIU: run when usable; when OM_REQUIRE_CRIU=1 (scripts/test as root), unusable = failure

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
      const dir = await Deno.makeTempDir({ prefix: "om-criu-" });
      try {
        await fn(dir);
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
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
      // One dump through a page link, recorded; then the same stream into criu's page server and
      // into om's receiver, room reserved for it as a target does. Both stores must be the same
      // files, byte for byte.
      await Deno.mkdir(`${dir}/out`);
      const token = newPageToken();
      const recorder = await listenForPages(["perl", "-e", PAGE_RECORDER, `${dir}/stream`], {
        token,
      });
      const link = await linkPages([
        criu.binary,
        ...dumpArgs({
          pid: job.pid,
          imagesDir: `${dir}/out`,
          logFile: `${dir}/dump.log`,
          psSocket: 0,
        }),
      ], { hostname: "127.0.0.1", port: recorder.port, token });
      assert.equal((await link.go()).code, 0, "the dump");
      assert.equal((await recorder.child.status).code, 0, "the recording");
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
