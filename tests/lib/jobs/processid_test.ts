/**
 * lib/jobs/processid.ts with real processes: a process is known by its PID and start time, and a
 * PID that names another process by now (reused: tests/lib/jobs/pidreuse.ts) gets no signal.
 */
import assert from "node:assert/strict";
import { readStat } from "../../../lib/base/procs.ts";
import { identifyProcess, isSameProcess, signalProcess } from "../../../lib/jobs/processid.ts";
import { startCatcher } from "./pidreuse.ts";

const ROOT = Deno.uid() === 0;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("processid: a live process is its PID and start time; none for no process or a zombie", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  try {
    const who = identifyProcess(child.pid);
    assert.deepEqual(who, { pid: child.pid, startTime: (await readStat(child.pid)).startTime });
    assert.ok(isSameProcess(who!));
    assert.equal(isSameProcess({ pid: child.pid, startTime: who!.startTime + 1 }), false);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  assert.equal(identifyProcess(0), undefined);
  assert.equal(identifyProcess(-1), undefined);
  // A zombie (ended, its parent has not reaped it) has ended.
  const parent = new Deno.Command("perl", {
    args: ["-e", '$| = 1; my $c = fork(); if (!$c) { exit 0 } print "$c\\n"; sleep 30'],
    stdout: "piped",
  }).spawn();
  try {
    const reader = parent.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    const zombie = Number(new TextDecoder().decode(value).trim());
    await pause(100);
    assert.match(await Deno.readTextFile(`/proc/${zombie}/stat`), /\) Z /);
    assert.equal(identifyProcess(zombie), undefined);
  } finally {
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel().catch(() => {});
  }
});

Deno.test({
  name: "processid: a PID another process took since gets no signal; the process itself does",
  ignore: !ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-processid-" });
    const victim = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const who = identifyProcess(victim.pid)!;
    victim.kill("SIGKILL");
    await victim.status;
    // Start times are in ticks of 10 ms: the next process at that PID starts in a later one.
    await pause(30);
    const catcher = await startCatcher(`${dir}/signals`, { pid: who.pid });
    try {
      assert.equal(catcher.who.pid, who.pid);
      assert.notEqual(catcher.who.startTime, who.startTime);
      assert.equal(isSameProcess(who), false);
      for (const signal of ["SIGTERM", "SIGINT", "SIGUSR1", "SIGKILL"] as const) {
        assert.equal(signalProcess(who, signal), false, signal);
        assert.equal(signalProcess(who, signal, { group: true }), false, `${signal} to the group`);
      }
      await pause(300);
      assert.deepEqual(await catcher.signals(), []);
      assert.ok(catcher.alive(), "the process that took the PID lives");
      // Known by its own start time, it gets them: the catcher hears.
      assert.equal(signalProcess(catcher.who, "SIGUSR1"), true);
      assert.equal(signalProcess(catcher.who, "SIGINT", { group: true }), true);
      const heard = async () => (await catcher.signals()).length === 2;
      for (let i = 0; i < 50 && !await heard(); i++) await pause(50);
      assert.deepEqual((await catcher.signals()).sort(), ["INT", "USR1"]);
    } finally {
      catcher.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
