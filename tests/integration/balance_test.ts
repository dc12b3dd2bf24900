/**
 * The cluster balances itself (lib/balance/policy.ts, lib/balance/balancer.ts), on a 4-node lab with real CRIU:
 * 8 CPU-bound jobs started on node 1 spread out, no job moves back and forth, the admin flags
 * (block, expel, bring, setspeed) act. Root and a working CRIU only.
 */
import assert from "node:assert/strict";
import { STAY_INTERVALS } from "../../lib/balance/policy.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { type JobRecord, readJobRecords } from "../../lib/jobs/table.ts";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { listNodeInfo } from "../../lib/state/nodestate.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { ROOT, runIn, startAll, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const ignore = !ROOT || !criu;

/** How long 8 jobs on one node of 4 may take to spread (documented in PROTOCOL.md §12). */
export const SPREAD_DEADLINE_MS = 30_000;
/** A CPU-bound job, niced so that the daemons sharing this machine's 2 CPUs stay responsive. */
const BUSY = ["nice", "-n", "10", "sh", "-c", "while :; do :; done"];
const NODES = 4;

/**
 * Starts `om run` (or a runner: `how`) in node `index` (its output is not read: the jobs print
 * nothing).
 */
function startJob(lab: Lab, index: number, ...how: string[]): Deno.ChildProcess {
  return execInNode(lab, index, omCommand([...(how.length ? how : ["run"]), "--", ...BUSY]), {
    stdin: "null",
    stdout: "null",
    stderr: "null",
  });
}

/** Stops the jobs (SIGTERM to om run reaches the job) and waits for every om run to end. */
async function stopJobs(jobs: Deno.ChildProcess[]): Promise<void> {
  for (const job of jobs) {
    try {
      job.kill("SIGTERM");
    } catch { /* gone */ }
  }
  await Promise.all(jobs.map((j) => j.status));
}

/** Node 1's records of its jobs (where each runs, how often it moved). */
const homeJobs = (lab: Lab) => readJobRecords(`${nodeRoot(lab, 1)}/jobs`);

/** Jobs per node, node 1 first. */
function counts(jobs: readonly JobRecord[]): number[] {
  return Array.from({ length: NODES }, (_, i) => jobs.filter((j) => j.node === i + 1).length);
}

/** Each job's path of nodes (node 1 first), with the time of each move. */
type Paths = Map<number, { node: number; at: number }[]>;

/** Adds where node 1's records say each job is now to `paths`; returns the records. */
async function record(lab: Lab, paths: Paths, since: number): Promise<JobRecord[]> {
  const jobs = await homeJobs(lab);
  for (const job of jobs) {
    const path = paths.get(job.pid) ?? [{ node: 1, at: since }];
    if (path[path.length - 1].node !== job.node) path.push({ node: job.node, at: Date.now() });
    paths.set(job.pid, path);
  }
  return jobs;
}

/** Watches node 1's records until `done` holds; returns when it held, and the jobs' paths. */
async function watch(
  lab: Lab,
  done: (jobs: JobRecord[]) => boolean,
  deadlineMs: number,
): Promise<{ ms: number; paths: Paths }> {
  const start = Date.now();
  const paths: Paths = new Map();
  for (;;) {
    const jobs = await record(lab, paths, start);
    if (jobs.length > 0 && done(jobs)) return { ms: Date.now() - start, paths };
    if (Date.now() - start > deadlineMs) {
      throw new Error(`not reached in ${deadlineMs} ms: jobs per node ${counts(jobs)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Keeps recording the jobs' paths for `ms` more milliseconds (at least once). */
async function observe(lab: Lab, paths: Paths, ms: number): Promise<Paths> {
  const end = Date.now() + ms;
  do {
    await record(lab, paths, 0);
    await new Promise((resolve) => setTimeout(resolve, 200));
  } while (Date.now() < end);
  return paths;
}

/**
 * No node runs more than one job above its fair share (`shares`: each node's, summing to the
 * number of jobs, `total`, 8 unless said).
 */
const spread = (shares: number[], total = 8) => (jobs: JobRecord[]) =>
  jobs.length === total && counts(jobs).every((n, i) => n <= Math.floor(shares[i]) + 1);

async function mosctl(lab: Lab, index: number, ...args: string[]) {
  const result = await runIn(lab, index, omCommand(["mosctl", ...args]));
  assert.equal(result.code, 0, `mosctl ${args.join(" ")} on node ${index}: ${result.err}`);
  return result;
}

/** Starts the daemons (with CRIU) and waits for their maps to agree and their figures. */
async function startCluster(lab: Lab, nodes = NODES): Promise<void> {
  await startAll(lab, [], { OM_CRIU: criu! });
  // Every node at the reference speed: a busy task is 100 load units whatever this machine's
  // clock, so the balancer's margins are the same on a faster machine (where a busy task would
  // weigh less than its margins).
  for (let index = 1; index <= nodes; index++) await mosctl(lab, index, "setspeed", "10000");
  await retryUntil(
    async () => {
      const seen = await listNodeInfo(`${nodeRoot(lab, 1)}/nodes`);
      return seen.filter((n) => n.status === "up" && n.speed === 10000).length === nodes;
    },
    10_000,
    { what: "every node's figures, at the reference speed, on node 1" },
  );
}

Deno.test({
  name: "balance: 8 busy jobs on one of 4 nodes spread out, and none goes back and forth",
  ignore,
  fn: () =>
    withLab("bal", planLab(NODES), async (lab) => {
      await startCluster(lab);
      const jobs = Array.from({ length: 8 }, () => startJob(lab, 1));
      try {
        // Fair shares: 2 on each node; none may run more than 3.
        const shares = [2, 2, 2, 2];
        const reached = await watch(lab, spread(shares), SPREAD_DEADLINE_MS);
        console.log(`balance: spread in ${reached.ms} ms: ${counts(await homeJobs(lab))}`);
        // Then watch for longer than a moved job must stay put.
        const stay = STAY_INTERVALS * 1000;
        const observed = await observe(lab, reached.paths, stay + 3000);
        const final = await homeJobs(lab);
        assert.ok(spread(shares)(final), `still spread: ${counts(final)}`);
        for (const [pid, path] of observed) {
          // A moved job stays put for STAY_INTERVALS intervals...
          for (let i = 2; i < path.length; i++) {
            assert.ok(
              path[i].at - path[i - 1].at >= stay - 1000,
              `job ${pid} moved twice within ${stay} ms: ${JSON.stringify(path)}`,
            );
          }
          // ...and none went back where it came from.
          const nodes = path.map((p) => p.node);
          for (let i = 2; i < nodes.length; i++) {
            assert.notEqual(nodes[i], nodes[i - 2], `job ${pid} went back: ${nodes}`);
          }
        }
        const moves = final.reduce((sum, j) => sum + j.migrations, 0);
        console.log(`balance: ${moves} moves (ideal: 6)`);
        assert.ok(moves <= 8, `${moves} moves for 8 jobs`);
      } finally {
        await stopJobs(jobs);
      }
    }),
});

Deno.test({
  name: "balance: locked jobs stay; expel empties a node of guests and blocks; bring; quiet",
  ignore,
  fn: () =>
    withLab("bex", planLab(NODES), async (lab) => {
      await startCluster(lab);
      // Two of the 8 busy jobs are locked (nomig, om run -h): nothing automatic moves them.
      const jobs = [
        startJob(lab, 1, "nomig"),
        startJob(lab, 1, "run", "-h"),
        ...Array.from({ length: 6 }, () => startJob(lab, 1)),
      ];
      try {
        const locked = await retryUntil(
          async () => {
            const all = await homeJobs(lab);
            const found = all.filter((j) => j.policy.lock).map((j) => j.pid);
            return found.length === 2 && all.length === 8 ? found : undefined;
          },
          10_000,
          { what: "the two locked jobs" },
        );
        const start = await watch(
          lab,
          (j) => counts(j)[1] >= 1 && counts(j)[2] >= 1,
          SPREAD_DEADLINE_MS,
        );
        // expel on node 2: it returns once node 2 has no guest (and blocks new ones).
        await mosctl(lab, 2, "expel");
        const afterExpel = await homeJobs(lab);
        assert.equal(counts(afterExpel)[1], 0, `node 2 still has guests: ${counts(afterExpel)}`);
        assert.equal((await readJobRecords(`${nodeRoot(lab, 2)}/jobs`)).length, 0);
        assert.equal(
          await mosctl(lab, 2, "status").then((r) => /expel pending/.test(r.out)),
          false,
        );
        // The expelled jobs run on at home.
        assert.equal(afterExpel.length, 8, "every job still runs");
        // bring on node 1: every job comes home, and stays (bring implies lstay).
        await mosctl(lab, 1, "bring");
        assert.deepEqual(counts(await homeJobs(lab)), [8, 0, 0, 0]);
        // Node 3 goes quiet: it stops publishing its load, so the others no longer choose it.
        await mosctl(lab, 3, "quiet");
        await retryUntil(
          async () =>
            (await listNodeInfo(`${nodeRoot(lab, 1)}/nodes`)).find((n) => n.id === 3)?.status ===
              "down",
          10_000,
          { what: "node 1 to see quiet node 3 down" },
        );
        await new Promise((resolve) => setTimeout(resolve, 2000));
        assert.deepEqual(counts(await homeJobs(lab)), [8, 0, 0, 0], "lstay keeps them home");
        // nolstay: they spread again, but only to node 4: node 2 still blocks, node 3 is quiet.
        await mosctl(lab, 1, "nolstay");
        await watch(lab, (j) => counts(j)[0] <= 5, SPREAD_DEADLINE_MS);
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const last = counts(await homeJobs(lab));
        assert.equal(last[1], 0, `node 2 blocks guests after expel: ${last}`);
        assert.equal(last[2], 0, `quiet node 3 got jobs: ${last}`);
        const paths = await observe(lab, start.paths, 0);
        for (const pid of locked) {
          assert.deepEqual(paths.get(pid)?.map((p) => p.node), [1], `locked job ${pid} moved`);
        }
      } finally {
        await stopJobs(jobs);
      }
    }),
});

Deno.test({
  name: "balance: a node made slow with setspeed ends with fewer jobs",
  ignore,
  fn: () =>
    withLab("bsp", planLab(NODES), async (lab) => {
      await startCluster(lab);
      const speed = Number((await mosctl(lab, 4, "getspeed")).out.trim());
      await mosctl(lab, 4, "setspeed", String(Math.max(1, Math.round(speed / 4))));
      const jobs = Array.from({ length: 8 }, () => startJob(lab, 1));
      try {
        // Fair shares by speed: 8 * 1/3.25 on the fast nodes, 8 * 0.25/3.25 on node 4.
        const shares = [1, 1, 1, 0.25].map((s) => 8 * s / 3.25);
        await watch(lab, spread(shares), SPREAD_DEADLINE_MS);
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const per = counts(await homeJobs(lab));
        console.log(`balance: with node 4 at a quarter speed: ${per}`);
        assert.ok(per[3] < Math.min(...per.slice(0, 3)), `node 4 has as many jobs: ${per}`);
      } finally {
        await stopJobs(jobs);
      }
    }),
});

Deno.test({
  name: "balance: a node short of memory ushers a job away, even when it is idle",
  ignore,
  fn: () =>
    withLab("bmem", planLab(2), async (lab) => {
      await startCluster(lab, 2);
      // Two idle jobs that grow to 425 MiB each, on nodes of 1000 MiB (with a daemon and two
      // om run): less than 10% of node 1 is left available, so one job goes; the other fits then.
      // The string grows a MiB at a time: perl's `x` alone would need twice its size at once.
      const hold = [
        "perl",
        "-e",
        'sleep 2; $m = "a" x 1048576; $x .= $m for 1..425; sleep 1 while 1',
      ];
      const jobs = [1, 2].map(() =>
        execInNode(lab, 1, omCommand(["run", "--", ...hold]), {
          stdin: "null",
          stdout: "null",
          stderr: "null",
        })
      );
      try {
        const moved = await watch(lab, (j) => j.length === 2 && counts(j)[1] === 1, 30_000);
        console.log(`balance: one job ushered to node 2 in ${moved.ms} ms`);
        await new Promise((resolve) => setTimeout(resolve, 3000));
        assert.deepEqual(counts(await homeJobs(lab)).slice(0, 2), [1, 1], "only one had to go");
        const log = await Deno.readTextFile(lab.record.nodes[0].dir + "/discover.log");
        assert.match(log, /balance: job \d+ goes to node 2 \(memory/);
      } finally {
        await stopJobs(jobs);
      }
    }, { memory: 1000 * 2 ** 20 }),
});
