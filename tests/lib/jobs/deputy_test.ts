/**
 * lib/jobs/deputy.ts through its seam: the deputy is built with the relays (`remote`) and the
 * placer it is given, as lib/node.ts gives it the migration's. A job that runs elsewhere gets its
 * stdin and signals through `remote`, in order, and none while a move holds them; a job started
 * for another node goes through `placer` (real jobs, started as root at their gate, then
 * discarded when the placer fails).
 */
import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import { createLogger } from "../../../lib/base/log.ts";
import { Deputy, type DeputyOptions } from "../../../lib/jobs/deputy.ts";
import type { Job } from "../../../lib/jobs/table.ts";
import { writeNodeInfo } from "../../../lib/state/nodestate.ts";

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
    logger: createLogger(() => {}, () => false),
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
