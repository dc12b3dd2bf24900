/**
 * lib/criu/restore.ts run for real (perl, FIFOs, signals) with stand-ins for `criu restore`: shell
 * scripts that read `inventory.img` to its end of file as criu does, then start a process and
 * write its PID to the pidfile. The waiter's commit window, the gate held until the go (criu
 * waiting in the FIFO, reaching it only after the go, or ending before it), a gated criu
 * stopped on SIGTERM or when the process that started the waiter is gone, a restore over its
 * time limit killed with everything under the waiter, and a copy killed on purpose (kill()).
 */
import assert from "node:assert/strict";
import { CriuError } from "../../../lib/criu/criuerror.ts";
import { readProcess } from "../../../lib/base/procs.ts";
import { HELD_INVENTORY, RESTORE_WAITER, WaitedRestore } from "../../../lib/criu/restore.ts";
import { retryUntil } from "../../../lib/base/retry.ts";

/** Whether `pid` runs (a zombie does not: here nobody reaps the stand-in's process). */
const alive = async (pid: number) => {
  const process = await readProcess("/proc", pid);
  return process !== undefined && !"ZX".includes(process.state);
};

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

/**
 * A stand-in for criu restore, run in the images directory: after `delay` seconds it writes its
 * PID to `started`, copies inventory.img to `got`, starts the "job" and writes its PID to
 * restore.pid; `fail` makes it write a criu-like log and exit 1 instead, `early` before it reads
 * the inventory.
 */
async function standIn(
  dir: string,
  options: { delay?: number; fail?: boolean; early?: boolean } = {},
) {
  const failure =
    'echo "(00.010000) Error (criu/cr-restore.c:1): Restoring FAILED." > restore.log; exit 1';
  const path = `${dir}/criu`;
  await Deno.writeTextFile(
    path,
    [
      "#!/bin/sh",
      `sleep ${options.delay ?? 0}`,
      "echo $$ > started",
      options.early ? failure : "",
      'data=$(cat inventory.img) || exit 3; printf "%s\\n" "$data" > got',
      options.fail ? failure : "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > restore.pid",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return path;
}

/** Runs `body` in a fresh images directory; kills what the stand-ins left. */
async function inDir(body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "om-restore-" });
  try {
    await body(dir);
  } finally {
    for (const file of ["restore.pid", "started"]) {
      const pid = Number((await Deno.readTextFile(`${dir}/${file}`).catch(() => "")).trim());
      if (pid > 1 && await alive(pid)) Deno.kill(pid, "SIGKILL");
    }
    await Deno.remove(dir, { recursive: true });
  }
}

const start = (dir: string, criu: string, gated: boolean) =>
  WaitedRestore.start({
    criu,
    dir,
    fds: [null, null, null],
    ownMounts: false,
    windowSeconds: 30,
    gated,
  });

/** Resolves with the stand-in's PID once it runs. */
const started = (dir: string) =>
  retryUntil(
    async () =>
      Number((await Deno.readTextFile(`${dir}/started`).catch(() => "")).trim()) || undefined,
    5000,
    { what: "the stand-in to start", intervalMs: 10 },
  );

/** Lets the waiter's job go (the commit) and ends both. */
async function finish(run: WaitedRestore, pid: number) {
  run.child.kill("SIGUSR1");
  Deno.kill(pid, "SIGKILL");
  await run.status;
  await Promise.all([run.child.stdout.cancel(), run.child.stderr.cancel()]).catch(() => {});
  await run.stdin.close().catch(() => {});
}

Deno.test("restore: a gated restore waits in the FIFO until the go, then reads the inventory", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir), true);
    assert.ok(run.gated);
    assert.ok((await Deno.lstat(`${dir}/inventory.img`)).isFifo);
    await started(dir);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await exists(`${dir}/got`), false, "held at the gate");
    assert.equal(await exists(`${dir}/restored`), false);
    await Deno.writeTextFile(`${dir}/${HELD_INVENTORY}`, "inventory of job 7\n");
    const go = performance.now();
    await run.open();
    assert.equal(run.gated, false);
    await assert.rejects(run.stop(), /not held at its gate/);
    const { pid, ms } = await run.restored("restore job 7");
    assert.ok(await alive(pid), "the restored job runs, under the waiter");
    // The restore's time counts from the go, not from the start: the 200 ms at the gate are out.
    const sinceGo = performance.now() - go;
    assert.ok(ms > 0 && ms <= sinceGo, `${ms} ms, ${sinceGo} ms since the go`);
    assert.equal(await Deno.readTextFile(`${dir}/got`), "inventory of job 7\n");
    const inventory = await Deno.lstat(`${dir}/inventory.img`);
    assert.ok(inventory.isFile, "the inventory took the FIFO's place");
    assert.equal(await exists(`${dir}/${HELD_INVENTORY}`), false);
    await finish(run, pid);
  });
});

Deno.test("restore: the go waits for a criu that has not reached its gate yet", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir, { delay: 0.4 }), true);
    await Deno.writeTextFile(`${dir}/${HELD_INVENTORY}`, "late reader\n");
    const opened = run.open();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await exists(`${dir}/started`), false, "the go came before criu's open");
    await opened;
    const { pid } = await run.restored("restore job 8");
    assert.equal(await Deno.readTextFile(`${dir}/got`), "late reader\n");
    await finish(run, pid);
  });
});

Deno.test("restore: a criu that ends before its gate fails the restore, and the go returns", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir, { early: true }), true);
    await Deno.writeTextFile(`${dir}/${HELD_INVENTORY}`, "never read\n");
    await run.status;
    await run.open();
    const error = await run.restored("restore job 10").catch((e) => e);
    assert.ok(error instanceof CriuError, String(error));
    assert.match(error.message, /Restoring FAILED/);
    assert.equal(await exists(`${dir}/got`), false);
  });
});

Deno.test("restore: stop() kills a criu held at its gate; the inventory takes the FIFO's place", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir), true);
    const criu = await started(dir);
    await Deno.writeTextFile(`${dir}/${HELD_INVENTORY}`, "kept\n");
    await run.stop();
    assert.equal((await run.status).code, 125);
    assert.ok(!(await alive(criu)), "criu is gone");
    assert.equal(await exists(`${dir}/got`), false, "criu read nothing");
    assert.equal(await exists(`${dir}/restored`), false);
    assert.equal(await Deno.readTextFile(`${dir}/inventory.img`), "kept\n");
    await run.stop();
    assert.equal(run.gated, false);
  });
});

Deno.test("restore: stop() without an inventory removes the FIFO", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir), true);
    await started(dir);
    await run.stop();
    assert.equal(await exists(`${dir}/inventory.img`), false);
  });
});

Deno.test("restore: a criu held at its gate is killed when the waiter's parent is gone", async () => {
  await inDir(async (dir) => {
    const criu = await standIn(dir);
    await new Deno.Command("mkfifo", { args: [`${dir}/inventory.img`] }).output();
    // A shell stands in for the daemon: it starts the waiter and is gone 300 ms later.
    const parent = new Deno.Command("sh", {
      args: [
        "-c",
        'perl -e "$0" restored restore.pid 30 "$1" "$2" </dev/null >/dev/null 2>&1 & ' +
        "echo $! > waiter; sleep 0.3",
        RESTORE_WAITER,
        `${dir}/inventory.img`,
        criu,
      ],
      cwd: dir,
    }).spawn();
    const pid = await started(dir);
    assert.ok(await alive(pid));
    await parent.status;
    await retryUntil(async () => !(await alive(pid)), 2000, {
      what: "the gated criu to be killed",
    });
    const waiter = Number((await Deno.readTextFile(`${dir}/waiter`)).trim());
    await retryUntil(async () => !(await alive(waiter)), 2000, { what: "the waiter to end" });
    assert.equal(await exists(`${dir}/restored`), false, "nothing was restored");
  });
});

Deno.test("restore: a failed restore is a CriuError with criu's log", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await standIn(dir, { fail: true }), false);
    await Deno.writeTextFile(`${dir}/inventory.img`, "x\n");
    const error = await run.restored("restore job 9").catch((e) => e);
    assert.ok(error instanceof CriuError);
    assert.equal(error.step, "restore");
    assert.equal(error.exitCode, 125);
    assert.match(error.message, /Cannot restore job 9: .*Restoring FAILED/);
    assert.equal(error.logPath, `${dir}/restore.log`);
  });
});

/** A stand-in for a criu restore that hangs: it forks a "job" with a child, then waits for good. */
async function hanging(dir: string) {
  const path = `${dir}/criu`;
  await Deno.writeTextFile(
    path,
    "#!/bin/sh\necho $$ > started\n" +
      "sh -c 'sleep 600 & echo $! > grandchild; wait' </dev/null >/dev/null 2>&1 &\n" +
      "echo $! > child\nsleep 600\n",
    { mode: 0o755 },
  );
  return path;
}

Deno.test("restore: a restore over its limit is killed, with what it restored, and fails", async () => {
  for (const gated of [false, true]) {
    await inDir(async (dir) => {
      const run = await WaitedRestore.start({
        criu: await hanging(dir),
        dir,
        fds: [null, null, null],
        ownMounts: false,
        windowSeconds: 30,
        gated,
        ...(gated ? {} : { limitMs: 300 }),
      });
      if (gated) {
        await Deno.writeTextFile(`${dir}/${HELD_INVENTORY}`, "never read\n");
        // This criu never opens its gate: the go waits, until the limit (from the go) ends it.
        await run.open(300);
      }
      const read = (file: string) =>
        retryUntil(
          async () =>
            Number((await Deno.readTextFile(`${dir}/${file}`).catch(() => "")).trim()) ||
            undefined,
          5000,
          { what: `the stand-in's ${file}`, intervalMs: 10 },
        );
      const pids = await Promise.all(["started", "child", "grandchild"].map(read));
      const error = await run.restored("restore job 11").catch((e) => e);
      assert.ok(error instanceof CriuError, String(error));
      assert.equal(error.step, "restore");
      assert.match(error.message, /Cannot restore job 11: criu restore did not end within 300 ms/);
      assert.equal(error.logPath, `${dir}/restore.log`);
      assert.equal((await run.status).code, 125, "the waiter ends, criu having failed");
      for (const pid of pids) {
        await retryUntil(async () => !(await alive(pid)), 2000, { what: `${pid} to be killed` });
      }
    });
  }
});

Deno.test("restore: kill() ends every process below the waiter, then the waiter", async () => {
  await inDir(async (dir) => {
    const run = await start(dir, await hanging(dir), false);
    const read = (file: string) =>
      retryUntil(
        async () =>
          Number((await Deno.readTextFile(`${dir}/${file}`).catch(() => "")).trim()) || undefined,
        5000,
        { what: `the stand-in's ${file}`, intervalMs: 10 },
      );
    const pids = await Promise.all(["started", "child", "grandchild"].map(read));
    for (const pid of pids) assert.ok(await alive(pid), `${pid} runs`);
    await run.kill();
    // The waiter ends too: killed, or first, seeing its criu killed, with 125.
    const status = await run.status;
    assert.ok(status.signal === "SIGKILL" || status.code === 125, JSON.stringify(status));
    for (const pid of pids) {
      await retryUntil(async () => !(await alive(pid)), 2000, { what: `${pid} to be killed` });
    }
  });
});

/** Starts the waiter with a stand-in restore, without a gate; resolves once its marker is there. */
async function startWaiter(dir: string, windowSeconds: number) {
  const pidfile = `${dir}/restore.pid`;
  const waiter = new Deno.Command("perl", {
    args: [
      "-e",
      RESTORE_WAITER,
      `${dir}/restored`,
      pidfile,
      String(windowSeconds),
      "",
      "sh",
      "-c",
      `sleep 60 </dev/null >/dev/null 2>&1 & echo $! > ${pidfile}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await retryUntil(() => exists(`${dir}/restored`), 5000, {
    what: "the waiter's marker",
    intervalMs: 10,
  });
  return { waiter, pid: Number((await Deno.readTextFile(pidfile)).trim()) };
}

Deno.test("restore: the waiter kills a restored job nobody commits", async () => {
  await inDir(async (dir) => {
    const { waiter, pid } = await startWaiter(dir, 1);
    assert.ok(await alive(pid), "restored, not yet killed");
    await waiter.status;
    await retryUntil(async () => !(await alive(pid)), 2000, { what: "the uncommitted job to die" });
  });
});

Deno.test("restore: the waiter keeps a committed job (SIGUSR1)", async () => {
  await inDir(async (dir) => {
    const { waiter, pid } = await startWaiter(dir, 1);
    waiter.kill("SIGUSR1");
    await waiter.status;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.ok(await alive(pid), "the committed job lives on past the window");
  });
});
