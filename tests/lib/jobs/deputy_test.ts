/**
 * lib/jobs/deputy.ts through its seam: the deputy is built with the relays (`remote`) and the
 * placer it is given, as lib/node.ts gives it the migration's. A job that runs elsewhere gets its
 * stdin and signals through `remote`, in order, and none while a move holds them; a job started
 * for another node goes through `placer` (real jobs, started as root at their gate, then
 * discarded when the placer fails). Processes are who they were: a job's end is recorded when its
 * process ends, whatever output is unread, and a PID that names another process by now (taken on
 * purpose: tests/lib/jobs/pidreuse.ts) gets no signal and no kill from the deputy.
 */
import assert from "node:assert/strict";
import { FakeClock, systemClock } from "../../../lib/base/clock.ts";
import { createLogger } from "../../../lib/base/log.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { Deputy, type DeputyOptions } from "../../../lib/jobs/deputy.ts";
import { decodeOutput, type OutputReply } from "../../../lib/jobs/jobwire.ts";
import { serveLocal } from "../../../lib/jobs/localsocket.ts";
import { DEFAULT_HIGH_WATER, type Job } from "../../../lib/jobs/table.ts";
import { writeNodeInfo } from "../../../lib/state/nodestate.ts";
import { ask, connectAs } from "../../tools/localreq.ts";
import { type Catcher, startCatcher } from "./pidreuse.ts";

const logger = createLogger(() => {}, () => false);

/** What node 2's figures say in the deputy's nodes/: up. */
const NODE_2_UP = {
  id: 2,
  status: "up",
  cpus: 1,
  load: 0,
  speed: 10000,
  mem: 1,
  rmem: 1,
  tmem: 1,
  util: 0,
} as const;

interface Relayed {
  readonly id: number;
  readonly what: string;
}

async function withDeputy(
  options: Partial<DeputyOptions>,
  test: (deputy: Deputy, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "om-deputy-" });
  const deputy = new Deputy({
    nodeId: 1,
    jobsDir: `${dir}/jobs`,
    nodesDir: `${dir}/nodes`,
    logger,
    clock: new FakeClock(),
    ...options,
  });
  try {
    await test(deputy, dir);
  } finally {
    await deputy.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("deputy: a job that runs elsewhere gets its stdin and signals through the relays, in order", async () => {
  const relayed: Relayed[] = [];
  const text = new TextDecoder();
  const remote = {
    input: (job: Job, data: Uint8Array | undefined, eof: boolean) => {
      relayed.push({ id: job.id, what: eof ? "eof" : `data ${text.decode(data)}` });
      return Promise.resolve();
    },
    signal: (job: Job, signal: Deno.Signal) => {
      relayed.push({ id: job.id, what: signal });
      return Promise.resolve("SIGKILL" as Deno.Signal);
    },
  };
  await withDeputy({ remote }, async (deputy) => {
    deputy.jobs.add({ id: 40, home: 1, node: 2, command: ["cat"] });
    await deputy.input(40, new TextEncoder().encode("a"));
    // A move holds the job's stdin: what comes meanwhile waits, in order, until it is released.
    const release = await deputy.holdInput(40);
    const b = deputy.input(40, new TextEncoder().encode("b"));
    const end = deputy.closeInput(40);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(relayed.map((r) => r.what), ["data a"], "held while it moves");
    release();
    await Promise.all([b, end]);
    // The relay's answer is the signal sent (a job that does not catch SIGTERM is killed).
    assert.equal(await deputy.signal(40, "SIGTERM"), "SIGKILL");
    assert.deepEqual(relayed, [
      { id: 40, what: "data a" },
      { id: 40, what: "data b" },
      { id: 40, what: "eof" },
      { id: 40, what: "SIGTERM" },
    ]);
  });
});

Deno.test("deputy: without relays, a job recorded elsewhere is not written to or signalled", async () => {
  await withDeputy({}, async (deputy) => {
    deputy.jobs.add({ id: 41, home: 1, node: 2, command: ["cat"] });
    // No relay and no local copy: the input goes nowhere, and no process gets a signal.
    await deputy.input(41, new TextEncoder().encode("x"));
    await deputy.closeInput(41);
    assert.equal(deputy.localPid(41), undefined);
  });
});

Deno.test({
  name: "deputy: a job started for another node goes through the placer; without one it cannot",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const placed: [number, number][] = [];
    const placer = (id: number, node: number) => {
      placed.push([id, node]);
      return Promise.reject(
        new Error(`Cannot migrate job ${id} to node ${node}: no room; the job goes on at node 1`),
      );
    };
    const request = (cwd: string) => ({
      argv: ["sleep", "30"],
      cwd,
      env: {},
      place: { nodes: [2], fallback: false },
    });
    await withDeputy({ placer }, async (deputy, dir) => {
      await writeNodeInfo(`${dir}/nodes`, NODE_2_UP);
      await assert.rejects(deputy.start(request(dir), { uid: 0 }), (error: Error) => {
        assert.equal(error.message, 'Cannot start "sleep 30" on node 2: no room');
        return true;
      });
      assert.equal(placed.length, 1);
      assert.equal(placed[0][1], 2);
      // The job that waited at its gate is gone with nothing of it run.
      assert.equal(deputy.jobs.list().length, 0);
    });
    await withDeputy({}, async (deputy, dir) => {
      await writeNodeInfo(`${dir}/nodes`, NODE_2_UP);
      await assert.rejects(
        deputy.start(request(dir), { uid: 0 }),
        /Cannot start "sleep 30" on node 2: this node cannot migrate jobs/,
      );
    });
  },
});

Deno.test({
  name:
    "deputy: a job killed with 5 MiB unread ends at once; its PID, reused, gets no signal from its owner",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-deputy-" });
    const deputy = new Deputy({ nodeId: 1, jobsDir: `${dir}/jobs`, logger, clock: systemClock });
    const local = serveLocal({ root: dir, nodeId: 1, logger, clock: systemClock, deputy });
    let catcher: Catcher | undefined;
    const user = await connectAs(dir, 65534);
    try {
      const { id } = await ask(user, "job.run", {
        argv: ["sh", "-c", "head -c 5242880 /dev/zero; exec sleep 1000"],
        cwd: "/",
        env: {},
      }) as { id: number };
      const job = deputy.jobs.get(id);
      await retryUntil(() => job.output.buffered >= DEFAULT_HIGH_WATER, 10_000, {
        what: "4 MiB of the job's output unread",
      });
      // Killed from outside (the OOM killer, an administrator): its pipes hold more, unread.
      Deno.kill(id, "SIGKILL");
      // Its end is recorded at once, whatever is unread: nothing holds on to its PID.
      await retryUntil(() => job.ended !== undefined, 5000, { what: "the job's end recorded" });
      assert.equal(deputy.localPid(id), undefined);
      // Another process gets the PID (root's, as any may be).
      catcher = await startCatcher(`${dir}/signals`, { pid: id });
      for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGKILL"]) {
        await assert.rejects(
          ask(user, "job.signal", { id, signal }),
          new Error(`Cannot signal job ${id}: it has ended`),
          signal,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(await catcher.signals(), [], "no signal reached the process at the PID");
      assert.ok(catcher.alive(), "the process at the PID lives");
      // The output is still there for `om run`, every byte, then the end.
      let offset = 0;
      let exit: unknown;
      while (exit === undefined) {
        const read = decodeOutput(
          await ask(user, "job.output", { id, offset }) as OutputReply,
        );
        for (const chunk of read.chunks) {
          // Its stdout is head's zeros (its stderr may hold what unshare said of the kill).
          if (chunk.fd === 1) assert.ok(chunk.data.every((b) => b === 0));
          offset += chunk.data.length;
        }
        assert.equal(read.offset, offset);
        exit = read.exit;
      }
      assert.ok(offset > DEFAULT_HIGH_WATER, `${offset} bytes read`);
      assert.equal(deputy.jobs.find(id), undefined, "collected, the job is forgotten");
    } finally {
      catcher?.stop();
      await user.close();
      await local.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "deputy: a job whose PID 1 ended and whose PID names another process is not signalled or killed",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await withDeputy({}, async (deputy, dir) => {
      // A job that came home: its restored PID 1, under a waiter (the deputy's child).
      const pid1 = new Deno.Command("sleep", { args: ["30"] }).spawn();
      const waiter = (n: string) =>
        new Deno.Command("sleep", { args: [n], stdin: "piped", stdout: "piped", stderr: "piped" })
          .spawn();
      const home = waiter("30");
      const other = waiter("31");
      let catcher: Catcher | undefined;
      try {
        for (const [id, w] of [[60, home], [61, other]] as const) {
          deputy.jobs.add({ id, home: 1, node: 2, command: ["sleep", "30"] });
          deputy.adopt(id, w, pid1.pid, w.stdin.getWriter(), false);
        }
        await deputy.adopted(60);
        assert.equal(deputy.localPid(60), pid1.pid);
        // Its PID 1 ends (its waiter does not know yet), and another process takes the PID.
        pid1.kill("SIGKILL");
        await pid1.status;
        await new Promise((resolve) => setTimeout(resolve, 30));
        catcher = await startCatcher(`${dir}/signals`, { pid: pid1.pid });
        assert.equal(deputy.localPid(60), undefined);
        for (const signal of ["SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGKILL"] as const) {
          await assert.rejects(
            deputy.signal(60, signal),
            new Error(`Cannot signal job 60: it has ended`),
            signal,
          );
        }
        // Nor is it killed when the move home fails, or when the job moves on.
        deputy.dropAdoption(61);
        await deputy.moved(60, 2);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(await catcher.signals(), [], "no signal reached the process at the PID");
        assert.ok(catcher.alive(), "the process at the PID lives");
      } finally {
        catcher?.stop();
        for (const child of [pid1, home, other]) {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
          await child.status;
        }
      }
    });
  },
});
