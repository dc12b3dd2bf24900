/**
 * lib/migration.ts without nodes: the dump rounds (stop-and-copy, or pre-copy where the kernel
 * tracks dirty memory: this machine's does not, so pre-copy is tested here for its plan and argv
 * only), and the restore waiter's commit window, run for real with a stand-in for `criu restore`
 * (a shell that starts a process and writes its PID, as criu does).
 */
import assert from "node:assert/strict";
import { dumpRounds, RESTORE_WAITER, roundArgs } from "../../lib/migration.ts";
import { retryUntil } from "../../lib/retry.ts";

Deno.test("migration: stop-and-copy without dirty-memory tracking: one dump, left stopped", () => {
  const rounds = dumpRounds(false);
  assert.deepEqual(rounds, [{ action: "dump", dir: "" }]);
  assert.deepEqual(
    roundArgs(rounds[0], { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: false }),
    [
      "dump",
      "--tree",
      "42",
      "--images-dir",
      "/m/42-out",
      "--log-file",
      "/m/42-out/dump.log",
      "-v4",
      "--leave-stopped",
      "--page-server",
      "--ps-socket",
      "0",
    ],
  );
  // A user's job, gated: criu as its user, its own mounts external, the gate as action script.
  const options = { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: false };
  assert.deepEqual(
    roundArgs(rounds[0], { ...options, user: true, gate: "/m/dump-gate" }).slice(9),
    [
      "--unprivileged",
      "--external",
      "mnt[]",
      "--action-script",
      "/m/dump-gate",
      "--page-server",
      "--ps-socket",
      "0",
    ],
  );
});

Deno.test("migration: pre-copy with dirty-memory tracking: pre-dumps, then the rest", () => {
  assert.deepEqual(dumpRounds(true), [
    { action: "pre-dump", dir: "pre-1" },
    { action: "dump", dir: "", prev: "pre-1" },
  ]);
  const rounds = dumpRounds(true, 2);
  assert.deepEqual(rounds, [
    { action: "pre-dump", dir: "pre-1" },
    { action: "pre-dump", dir: "pre-2", prev: "../pre-1" },
    { action: "dump", dir: "", prev: "pre-2" },
  ]);
  const options = { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: true };
  assert.deepEqual(roundArgs(rounds[1], options), [
    "pre-dump",
    "--tree",
    "42",
    "--images-dir",
    "/m/42-out/pre-2",
    "--log-file",
    "/m/42-out/pre-2/pre-dump.log",
    "-v4",
    "--track-mem",
    "--prev-images-dir",
    "../pre-1",
    "--page-server",
    "--ps-socket",
    "0",
  ]);
  const last = roundArgs(rounds[2], options);
  assert.deepEqual(last.slice(0, 4), ["dump", "--tree", "42", "--images-dir"]);
  assert.ok(last.includes("--track-mem"));
  assert.deepEqual(
    last.slice(last.indexOf("--prev-images-dir"), last.indexOf("--prev-images-dir") + 2),
    [
      "--prev-images-dir",
      "pre-2",
    ],
  );
  assert.ok(last.includes("--leave-stopped"));
  assert.deepEqual(dumpRounds(true, 0), [{ action: "dump", dir: "" }]);
});

/** Whether `pid` runs (a zombie does not: here nobody reaps the stand-in's process). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
};

/** Starts the waiter with a stand-in restore; resolves once its marker is there. */
async function startWaiter(dir: string, windowSeconds: number) {
  const pidfile = `${dir}/restore.pid`;
  const waiter = new Deno.Command("perl", {
    args: [
      "-e",
      RESTORE_WAITER,
      `${dir}/restored`,
      pidfile,
      String(windowSeconds),
      "sh",
      "-c",
      `sleep 60 </dev/null >/dev/null 2>&1 & echo $! > ${pidfile}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await retryUntil(
    () => Deno.stat(`${dir}/restored`).then(() => true, () => false),
    5000,
    { what: "the waiter's marker", intervalMs: 10 },
  );
  return { waiter, pid: Number((await Deno.readTextFile(pidfile)).trim()) };
}

Deno.test("migration: the restore waiter kills a restored job nobody commits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "om-waiter-" });
  try {
    const { waiter, pid } = await startWaiter(dir, 1);
    assert.ok(alive(pid), "restored, not yet killed");
    await waiter.status;
    await retryUntil(() => !alive(pid), 2000, { what: "the uncommitted job to die" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("migration: the restore waiter keeps a committed job (SIGUSR1)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "om-waiter-" });
  let pid = 0;
  try {
    const started = await startWaiter(dir, 1);
    pid = started.pid;
    started.waiter.kill("SIGUSR1");
    await started.waiter.status;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(alive(pid), "the committed job lives on past the window");
  } finally {
    if (pid) Deno.kill(pid, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
