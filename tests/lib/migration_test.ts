/**
 * lib/migration.ts without nodes: the restore waiter's commit window, run for real with a
 * stand-in for `criu restore` (a shell that starts a process and writes its PID, as criu does).
 */
import assert from "node:assert/strict";
import { RESTORE_WAITER } from "../../lib/migration.ts";
import { retryUntil } from "../../lib/retry.ts";

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
