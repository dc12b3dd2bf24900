/**
 * `job.place` (lib/balance/balancer.ts `place`): where the balancer would send a job of this node,
 * which is what `om migrate PID balance` does. Over fake figures (this node and the others as the
 * information exchange heard them, block flags included) and a real job process; then the command
 * itself, in-process, against a local socket serving the balancer's handlers and a fake
 * `job.migrate`.
 */
import assert from "node:assert/strict";
import { Balancer } from "../../../lib/balance/balancer.ts";
import type { InfoExchange } from "../../../lib/info/exchange.ts";
import type { Deputy } from "../../../lib/jobs/deputy.ts";
import type { Migration } from "../../../lib/migration/migration.ts";
import { type JobPolicy, JobTable } from "../../../lib/jobs/table.ts";
import type { NodeInfo } from "../../../lib/state/nodestate.ts";
import { type StatePaths, writeMap } from "../../../lib/state/tree.ts";
import { silentLogger } from "../../../lib/base/log.ts";
import { systemClock } from "../../../lib/base/clock.ts";
import { jsonBytes } from "../../../lib/base/json.ts";
import { builtinHandlers, type Handler, serveChannel } from "../../../lib/channel/server.ts";
import { guardLocal, localSocketPath } from "../../../lib/jobs/localauth.ts";
import { prepareUsersDir, usersDirPath } from "../../../lib/jobs/usertoken.ts";
import { run, spec } from "../../../commands/migrate.ts";
import { invoke, sandbox } from "../../tools/sandbox.ts";
import { measureJob } from "../../../lib/balance/jobmeasure.ts";
import { retryUntil } from "../../../lib/base/retry.ts";

const GiB = 2 ** 30;
/** A cpu job: it counts as one busy task (100 at speed 10000) from the start. */
const CPU: JobPolicy = { lock: false, kind: "cpu", decay: "slow" };

/** A node's figures: 1 CPU of speed 10000, 4 GiB of 8 available. */
const figures = (id: number, load: number): NodeInfo => ({
  id,
  status: "up",
  load,
  speed: 10000,
  cpus: 1,
  mem: 4 * GiB,
  rmem: 4 * GiB,
  tmem: 8 * GiB,
  util: 0,
});

/**
 * A balancer of node 1 seeing `nodes` (node 1 first), with one job, `id`, started here (its PID 1
 * `pid`, a real process) with `policy`. Its timers are not started.
 */
function balancer(options: {
  nodes: { info: NodeInfo; block?: boolean }[];
  id: number;
  pid: number;
  policy?: JobPolicy;
  paths: StatePaths;
}): Balancer {
  const [own, ...others] = options.nodes;
  const info = {
    own: own.info,
    ownBlock: own.block ?? false,
    ownCount: 1,
    interval: 1000,
    known: () => others.map((n) => ({ info: n.info, block: n.block ?? false, at: 1 })),
  } as unknown as InfoExchange;
  const jobs = new JobTable(systemClock);
  jobs.add({ id: options.id, home: 1, node: 1, command: ["job"], policy: options.policy ?? CPU });
  const deputy = {
    jobs,
    localPid: (id: number) => id === options.id ? options.pid : undefined,
  } as unknown as Deputy;
  const migration = { guests: () => [], arriving: () => 0 } as unknown as Migration;
  return new Balancer({
    nodeId: 1,
    paths: options.paths,
    info,
    deputy,
    migration,
    logger: silentLogger,
    keyed: true,
  });
}

/** A process to be the job's PID 1 (asleep: its load is what its policy says). */
function jobProcess(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"], stdout: "null", stderr: "null" }).spawn();
}

Deno.test("place: a node that blocks arrivals is not chosen, however idle", async () => {
  await using box = await sandbox("place");
  const job = jobProcess();
  try {
    const place = (block: boolean) =>
      balancer({
        nodes: [
          { info: figures(1, 300) },
          { info: figures(2, 0), block },
          { info: figures(3, 100) },
        ],
        id: 41,
        pid: job.pid,
        paths: box.paths,
      }).place(41);
    assert.deepEqual(await place(false), {
      from: 1,
      to: 2,
      reason: "load",
      here: 300,
      there: 100,
    });
    assert.deepEqual(await place(true), {
      from: 1,
      to: 3,
      reason: "load",
      here: 300,
      there: 200,
    });
  } finally {
    job.kill("SIGKILL");
    await job.status;
  }
});

Deno.test("place: a target must beat the job's node by the margin, with the job", async () => {
  await using box = await sandbox("place");
  const job = jobProcess();
  try {
    const place = (other: number) =>
      balancer({
        nodes: [{ info: figures(1, 200) }, { info: figures(2, other) }],
        id: 41,
        pid: job.pid,
        paths: box.paths,
      }).place(41);
    // Node 2 at 60: less than node 1 would have without the job (100), but with it, 160, plus
    // half the job (50), is not less than 200.
    assert.deepEqual(await place(60), { from: 1, here: 200 });
    assert.deepEqual(await place(49), { from: 1, to: 2, reason: "load", here: 200, there: 149 });
  } finally {
    job.kill("SIGKILL");
    await job.status;
  }
});

Deno.test("place: a job of no such id, and one measured now", async () => {
  await using box = await sandbox("place");
  const job = jobProcess();
  try {
    const nodes = [{ info: figures(1, 200) }, { info: figures(2, 0) }];
    const plain: JobPolicy = { lock: false, decay: "slow" };
    const b = balancer({ nodes, id: 41, pid: job.pid, policy: plain, paths: box.paths });
    await assert.rejects(() => b.place(42), { message: "no job 42 on this node" });
    // No history yet: measured now, asleep: no load of its own; node 2 is better by the margin.
    await retryUntil(() => measureJob(job.pid).runnable === 0, 5000, { what: "sleep to sleep" });
    assert.deepEqual(await b.place(41), { from: 1, to: 2, reason: "load", here: 200, there: 0 });
  } finally {
    job.kill("SIGKILL");
    await job.status;
  }
});

Deno.test("om migrate PID balance: skips a blocked node, keeps the margin, says why", async () => {
  await using box = await sandbox("place");
  const job = jobProcess();
  const id = job.pid;
  const root = box.env.OM_ROOT;
  await Deno.mkdir(`${root}/jobs`, { recursive: true });
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "10.9.0.1", count: 3 }],
  });
  await Deno.writeTextFile(
    `${root}/jobs/${id}`,
    JSON.stringify({ pid: id, node: 1, home: 1, command: ["job"], started: 0, policy: CPU }),
  );
  let current: Balancer | undefined;
  const asked: unknown[] = [];
  const handlers = new Map<string, Handler>([
    ...builtinHandlers(1),
    ["job.place", (body, peer) => current!.localHandlers().get("job.place")!(body, peer)],
    ["job.migrate", (body) => {
      const { to } = JSON.parse(new TextDecoder().decode(body));
      asked.push(to);
      return Promise.resolve(jsonBytes({
        id,
        from: 1,
        to,
        frozenMs: 1,
        transferMs: 2,
        restoreMs: 3,
        totalMs: 6,
        bytes: 2 ** 20,
      }));
    }],
  ]);
  const usersDir = usersDirPath(root);
  prepareUsersDir(usersDir);
  const server = serveChannel({
    path: localSocketPath(root),
    mode: 0o666,
    nodeId: 1,
    logger: silentLogger,
    handlers: guardLocal(handlers, { usersDir, clock: systemClock, ownerOf: () => 0 }),
  });
  try {
    const balance = (nodes: { info: NodeInfo; block?: boolean }[]) => {
      current = balancer({ nodes, id, pid: id, paths: box.paths });
      return invoke({ spec, run }, [String(id), "balance"], box.env);
    };
    // Node 2, idle, blocks guests: node 3 it is.
    const blocked = await balance([
      { info: figures(1, 300) },
      { info: figures(2, 0), block: true },
      { info: figures(3, 100) },
    ]);
    assert.deepEqual(blocked, {
      code: 0,
      out: "balance: node 3 (load 2.00 per CPU against 3.00 here, each with the job)\n" +
        `job ${id}: node 1 -> node 3: frozen 1 ms, transfer 2 ms, restore 3 ms, total 6 ms ` +
        "(1.0 MiB)\n",
      err: "",
    });
    assert.deepEqual(asked, [3]);
    // Node 2 is less loaded than node 1 would be without the job, but not by the margin: it stays.
    const close = await balance([{ info: figures(1, 200) }, { info: figures(2, 60) }]);
    assert.deepEqual(close, {
      code: 0,
      out: `balance: no node is better than node 1 (load 2.00 per CPU there) for job ${id}; ` +
        "it stays\n",
      err: "",
    });
    assert.deepEqual(asked, [3], "no move asked");
    // Only the blocked node would do: it stays.
    const only = await balance([{ info: figures(1, 300) }, { info: figures(2, 0), block: true }]);
    assert.equal(
      only.out,
      `balance: no node is better than node 1 (load 3.00 per CPU there) for job ${id}; it stays\n`,
    );
    assert.deepEqual(asked, [3], "no move asked");
  } finally {
    await server.close();
    job.kill("SIGKILL");
    await job.status;
  }
});
