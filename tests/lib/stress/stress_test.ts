/**
 * The stress test's loop with stand-ins for the node (starting jobs, their records, moving them):
 * jobs found by their tag, moves to other nodes (home by "home"), the balancer's moves seen in the
 * records, failed moves with their step, refusals that are no failure, wrong and lost results,
 * jobs that do not end in time, Ctrl-C, skipped and miscomputing workloads.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../../lib/base/clock.ts";
import type { JobRecord } from "../../../lib/jobs/table.ts";
import { MigrationError, type MigrationReport } from "../../../lib/migration/errors.ts";
import { cksum } from "../../../lib/stress/cksum.ts";
import type { ClusterView } from "../../../lib/stress/cluster.ts";
import type { JobEnd, StartJob } from "../../../lib/stress/jobrun.ts";
import type { StressSettings } from "../../../lib/stress/options.ts";
import type { StressRun } from "../../../lib/stress/results.ts";
import { carriesTag, runStress, statusOf, type StressDeps } from "../../../lib/stress/stress.ts";
import { verdictOf } from "../../../lib/stress/verdict.ts";
import type { JobPlan, Produced } from "../../../lib/stress/workload.ts";
import { tempDir } from "../../tools/tempdir.ts";

const SETTINGS: StressSettings = {
  durationMs: 1000,
  intervalMs: 150,
  jobs: 2,
  tests: ["awk", "stdin"],
  memoryMiB: 1,
  jobSeconds: 1,
  reportPath: "report.txt",
};

const node = (id: number) => ({
  id,
  address: `10.0.0.${id}`,
  up: true,
  measured: true,
  cpus: 1,
  speed: 10000,
  mem: 1 << 30,
  tmem: 1 << 31,
});
const CLUSTER: ClusterView = { self: 1, nodes: [node(1), node(2), node(3)] };
const SOFTWARE = { om: "0.1.0", kernel: "6.18", criu: "4.1.1 (criu)" };

/** What a job prints when it is right. */
function rightOutput(plan: JobPlan): Produced {
  if (plan.expected.kind === "cksum") return { sum: plan.expected.sum, exitCode: 0 };
  const text = plan.expected.text;
  return { text, sum: cksum(new TextEncoder().encode(text)), exitCode: 0 };
}

/** A job's behaviour in the stand-in node. */
interface Behaviour {
  /** How long it runs, in milliseconds (Infinity: until a signal). */
  readonly runMs?: number;
  /** What it ends with; default its right output. */
  readonly output?: (plan: JobPlan) => Produced;
  /** When its record appears, in milliseconds (its om run and the daemon are slow). */
  readonly recordAfterMs?: number;
}

/**
 * The stand-in node: `om run` keeps a record per job (node 1, the home) until it ends; `migrate`
 * moves the record (or does what `onMigrate` says); `calls` lists every move asked for.
 */
function fakeNode(options: {
  behaviour?: (plan: JobPlan) => Behaviour;
  onMigrate?: (record: JobRecord, to: number, world: World) => MigrationReport;
} = {}) {
  const records = new Map<number, JobRecord>();
  const plans = new Map<number, JobPlan>();
  const ends = new Map<number, (end: JobEnd) => void>();
  const calls: { id: number; to: number | "home"; from: number }[] = [];
  let nextPid = 5000;
  const world = {
    records,
    calls,
    /** Ends job `pid` now with `end`. */
    end(pid: number, end: JobEnd) {
      records.delete(pid);
      ends.get(pid)?.(end);
      ends.delete(pid);
    },
    /** Ends job `pid` now, right. */
    finish(pid: number) {
      world.end(pid, { produced: rightOutput(plans.get(pid)!), stderr: "" });
    },
    /** The balancer moves job `pid` to `to`. */
    balance(pid: number, to: number) {
      const record = records.get(pid);
      if (record) records.set(pid, { ...record, node: to, migrations: record.migrations + 1 });
    },
  };
  const start: StartJob = (plan) => {
    const pid = nextPid++;
    const behaviour = options.behaviour?.(plan) ?? {};
    plans.set(pid, plan);
    const record: JobRecord = {
      pid,
      node: 1,
      home: 1,
      command: plan.argv,
      started: Date.now(),
      policy: { lock: false, decay: "slow" },
      migrations: 0,
      uid: 0,
    };
    if (behaviour.recordAfterMs) {
      setTimeout(() => ends.has(pid) && records.set(pid, record), behaviour.recordAfterMs);
    } else {
      records.set(pid, record);
    }
    const done = new Promise<JobEnd>((resolve) => ends.set(pid, resolve));
    const runMs = behaviour.runMs ?? 400;
    if (runMs !== Infinity) {
      setTimeout(() => {
        world.end(pid, { produced: (behaviour.output ?? rightOutput)(plan), stderr: "" });
      }, runMs);
    }
    return {
      done,
      kill(signal) {
        const code = signal === "SIGKILL" ? 137 : 130;
        setTimeout(
          () => world.end(pid, { produced: { ...rightOutput(plan), exitCode: code }, stderr: "" }),
          10,
        );
      },
    };
  };
  const migrate = (id: number, to: number | "home"): Promise<MigrationReport> => {
    const record = records.get(id);
    if (!record) {
      return Promise.reject(
        new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined),
      );
    }
    const target = to === "home" ? 1 : to;
    calls.push({ id, to, from: record.node });
    try {
      if (options.onMigrate) return Promise.resolve(options.onMigrate(record, target, world));
    } catch (error) {
      return new Promise((_, reject) => setTimeout(() => reject(error), 20));
    }
    records.set(id, { ...record, node: target, migrations: record.migrations + 1 });
    return new Promise((resolve) =>
      setTimeout(() =>
        resolve({
          id,
          from: record.node,
          to: target,
          frozenMs: 7,
          transferMs: 3,
          restoreMs: 2,
          totalMs: 15,
          bytes: 1000,
        }), 20)
    );
  };
  return { world, start, migrate };
}
type World = ReturnType<typeof fakeNode>["world"];

/** The deps of a run against `fake`: this process's clock, a fake interpreter that answers right. */
function depsOf(fake: ReturnType<typeof fakeNode>, extra: Partial<StressDeps> = {}): StressDeps {
  let draw = 0;
  return {
    clock: systemClock,
    // Deterministic, but walking over every choice.
    random: () => (draw++ * 0.377) % 1,
    start: fake.start,
    migrate: fake.migrate,
    runLocal: (plan) => Promise.resolve({ ...rightOutput(plan), stderr: "" }),
    readJobs: () => Promise.resolve([...fake.world.records.values()]),
    upNodes: () => Promise.resolve([1, 2, 3]),
    path: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    ...extra,
  };
}

const run = (deps: StressDeps, settings: Partial<StressSettings> = {}): Promise<StressRun> =>
  runStress({ settings: { ...SETTINGS, ...settings }, cluster: CLUSTER, software: SOFTWARE }, deps);

Deno.test("stress: jobs found by their tag, moved to other nodes (home as home), all right", async () => {
  const fake = fakeNode();
  const events: string[] = [];
  const result = await run(depsOf(fake, { onEvent: (line) => events.push(line) }), {
    durationMs: 2000,
  });
  const verdict = verdictOf(result);
  assert.equal(verdict.passed, true, JSON.stringify(verdict.reasons));
  // Two at once, and another each time one ended with enough time left, in turn.
  assert.ok(result.jobs.length >= 4, `${result.jobs.length}`);
  assert.deepEqual(
    result.jobs.map((j) => [j.n, j.test, j.status]),
    result.jobs.map((_, i) => [i + 1, i % 2 === 0 ? "awk" : "stdin", "passed"]),
  );
  assert.ok(result.jobs.every((j) => j.pid !== undefined && j.actual === j.expected));
  // Every move went to another node than the job's, home by "home", never by its number.
  assert.ok(fake.world.calls.length >= 3, JSON.stringify(fake.world.calls));
  for (const call of fake.world.calls) {
    assert.notEqual(call.to, 1);
    assert.notEqual(call.to === "home" ? 1 : call.to, call.from);
  }
  const done = result.moves.filter((m) => m.outcome === "done" && m.by === "om stress");
  assert.equal(done.length, fake.world.calls.length);
  assert.ok(done.every((m) => m.frozenMs === 7 && m.totalMs === 15));
  // Each job's nodes follow its moves.
  for (const job of result.jobs) {
    const mine = done.filter((m) => m.job === job.pid);
    assert.deepEqual(job.nodes, [1, ...mine.map((m) => m.to)]);
    assert.equal(job.stressMoves, mine.length);
  }
  assert.ok(
    events.some((line) => /^move 1: job 50\d\d \(\w+\) node 1 -> node [23]: done/.test(line)),
  );
  assert.deepEqual(result.moves.map((m) => m.n), result.moves.map((_, i) => i + 1));
});

Deno.test("stress: jobs start one after the other, each once the last one runs", async () => {
  const fake = fakeNode({ behaviour: () => ({ runMs: 1200, recordAfterMs: 500 }) });
  const result = await run(depsOf(fake), { intervalMs: 0, durationMs: 900, jobs: 2 });
  const [first, second] = result.jobs;
  assert.equal(result.jobs.length, 2);
  assert.ok(second.startedMs - first.startedMs >= 500, `${first.startedMs} ${second.startedMs}`);
  assert.ok(result.jobs.every((j) => j.status === "passed"));
});

Deno.test("stress: every workload gets its turn, even after the duration", async () => {
  const fake = fakeNode();
  const result = await run(depsOf(fake), { intervalMs: 0, durationMs: 300, jobs: 1 });
  assert.deepEqual(result.jobs.map((j) => [j.test, j.status]), [["awk", "passed"], [
    "stdin",
    "passed",
  ]]);
  assert.ok(result.jobs[1].startedMs - result.jobs[0].startedMs >= 400);
});

Deno.test("stress: the balancer's moves are seen in the records and counted apart", async () => {
  const fake = fakeNode({ behaviour: () => ({ runMs: 700 }) });
  setTimeout(() => fake.world.balance(5000, 3), 80);
  const result = await run(depsOf(fake), { intervalMs: 0, durationMs: 600 });
  const balanced = result.moves.filter((m) => m.by === "balancer");
  assert.deepEqual(balanced.map((m) => [m.job, m.from, m.to, m.outcome]), [[5000, 1, 3, "done"]]);
  assert.deepEqual(result.jobs[0].nodes, [1, 3]);
  assert.equal(result.jobs[0].balancerMoves, 1);
  assert.equal(result.jobs[0].stressMoves, 0);
  assert.equal(fake.world.calls.length, 0, "--interval 0: om stress moves nothing");
  assert.equal(verdictOf(result).passed, true);
});

Deno.test("stress: a move that fails at restore fails the run; its step and log are kept", async () => {
  const fake = fakeNode({
    onMigrate: () => {
      throw new MigrationError(
        "Cannot migrate job: restore failed on node 2; the job goes on at node 1",
        "restore",
        "/run/om/migrations/5000-in/restore.log",
      );
    },
  });
  const result = await run(depsOf(fake));
  const verdict = verdictOf(result);
  assert.equal(verdict.passed, false);
  assert.ok(verdict.failedMigrations >= 1);
  assert.equal(verdict.right, result.jobs.length, "the jobs went on, right");
  assert.deepEqual(verdict.reasons.filter((r) => !/restore/.test(r)), []);
  const failed = result.moves.filter((m) => m.outcome === "failed");
  assert.equal(failed.length, verdict.failedMigrations);
  assert.ok(failed.every((m) => m.step === "restore" && m.logPath?.endsWith("/restore.log")));
  assert.ok(result.jobs.every((j) => j.nodes.length === 1 && j.stressMoves === 0));
});

Deno.test("stress: refused because the balancer was moving it, or because the job ended: no failure", async () => {
  // The balancer has the job under way: the home refuses, then the record shows its move.
  const overtaking = fakeNode({
    behaviour: () => ({ runMs: 1500 }),
    onMigrate: (record, _to, world) => {
      setTimeout(() => world.balance(record.pid, record.node === 3 ? 2 : 3), 50);
      throw new MigrationError(
        `Cannot migrate job ${record.pid}: it is being moved already`,
        undefined,
      );
    },
  });
  const overtaken = await run(depsOf(overtaking), { intervalMs: 300, durationMs: 700 });
  const asked = overtaken.moves.filter((m) => m.by === "om stress");
  assert.ok(asked.length >= 1);
  assert.deepEqual(asked.filter((m) => m.outcome !== "overtaken"), []);
  assert.ok(overtaken.moves.some((m) => m.by === "balancer"));
  assert.equal(verdictOf(overtaken).failedMigrations, 0);

  // The job ends while it is dumped: the dump fails, and the job's end follows at once.
  const ending = fakeNode({
    onMigrate: (record, _to, world) => {
      setTimeout(() => world.finish(record.pid), 5);
      throw new MigrationError("criu dump failed", "dump", "/x/dump.log");
    },
  });
  const deps = depsOf(ending);
  const ended = await run(deps);
  const endedMoves = ended.moves.filter((m) => m.by === "om stress");
  assert.ok(endedMoves.length >= 1);
  assert.deepEqual(endedMoves.filter((m) => m.outcome !== "job ended"), []);
  assert.equal(verdictOf(ended).failedMigrations, 0);
});

Deno.test("stress: a wrong result, a job om run lost, a job killed: each said", async () => {
  let n = 0;
  const fake = fakeNode({
    behaviour: (plan) => {
      n++;
      if (n === 1) {
        return { output: () => ({ text: "1\n", sum: cksum(new Uint8Array()), exitCode: 0 }) };
      }
      if (n === 2) {
        return { output: () => ({ text: "", sum: cksum(new Uint8Array()), exitCode: 125 }) };
      }
      if (n === 3) return { output: () => ({ ...rightOutput(plan), exitCode: 137 }) };
      return {};
    },
  });
  const result = await run(depsOf(fake), { intervalMs: 0, durationMs: 2000 });
  const statuses = result.jobs.map((j) => j.status);
  assert.deepEqual(statuses.slice(0, 3), ["wrong", "lost", "lost"]);
  assert.ok(statuses.length >= 4 && statuses.slice(3).every((s) => s === "passed"), `${statuses}`);
  assert.match(result.jobs[0].actual, /^1: line 1 is "1", not "\d+"$/);
  assert.match(result.jobs[2].actual, /; exit 137, not 0$/);
  assert.deepEqual(verdictOf(result).reasons, [
    "1 job ended with a wrong result (awk)",
    "2 jobs were lost",
    "no job moved at all",
  ]);
});

Deno.test("stress: jobs still running after the grace time are stopped and timed out", async () => {
  const fake = fakeNode({ behaviour: (plan) => ({ runMs: plan.test === "awk" ? Infinity : 100 }) });
  const result = await run(depsOf(fake, { graceMs: 300 }), { durationMs: 400, intervalMs: 0 });
  assert.deepEqual(
    result.jobs.map((j) => [j.test, j.status]),
    [["awk", "timed out"], ["stdin", "passed"]],
  );
  assert.equal(result.jobs[0].exitCode, 130);
  assert.match(verdictOf(result).reasons.join("; "), /1 job did not end in time and was stopped/);
});

Deno.test("stress: an abort (Ctrl-C) stops the jobs it started and ends the run", async () => {
  const fake = fakeNode({ behaviour: () => ({ runMs: Infinity }) });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 300);
  const started = Date.now();
  const result = await run(depsOf(fake, { signal: controller.signal }), { durationMs: 60_000 });
  assert.ok(Date.now() - started < 5000);
  assert.equal(result.interrupted, true);
  assert.deepEqual(result.jobs.map((j) => j.status), ["stopped", "stopped"]);
  assert.equal(fake.world.records.size, 0);
  assert.equal(verdictOf(result).passed, false);
});

Deno.test("stress: a workload without its program is skipped; one computing wrong here is wrong", async () => {
  await using dir = await tempDir("stress-skip");
  await Deno.writeTextFile(`${dir.path}/awk`, "#!/bin/sh\n", { mode: 0o755 });
  const fake = fakeNode();
  const result = await run(
    depsOf(fake, {
      path: dir.path,
      runLocal: () =>
        Promise.resolve({ text: "0\n", sum: cksum(new Uint8Array()), exitCode: 0, stderr: "" }),
    }),
  );
  assert.deepEqual(result.jobs.map((j) => [j.test, j.status]), [["awk", "wrong"], [
    "stdin",
    "skipped",
  ]]);
  assert.match(result.jobs[0].note!, /^wrong when run here as a plain process, without om/);
  assert.equal(result.jobs[1].note, "skipped: no cksum on PATH");
  assert.equal(fake.world.records.size, 0);
  assert.deepEqual(verdictOf(result).reasons, ["1 job ended with a wrong result (awk)"]);
});

Deno.test("stress: the tag and the status rules", () => {
  assert.equal(carriesTag(["awk", "-v", "om_stress=om-stress-a-1", "P"], "om-stress-a-1"), true);
  assert.equal(carriesTag(["sh", "-c", "cksum", "om-stress-a-1"], "om-stress-a-1"), true);
  assert.equal(carriesTag(["sh", "-c", "cksum", "om-stress-a-11"], "om-stress-a-1"), false);
  assert.equal(statusOf(true, 0, undefined, true), "passed");
  assert.equal(statusOf(true, 0, "stopped", true), "passed");
  assert.equal(statusOf(false, 130, "stopped", true), "stopped");
  assert.equal(statusOf(false, 125, undefined, true), "lost");
  assert.equal(statusOf(false, 125, undefined, false), "wrong");
  assert.equal(statusOf(false, 139, undefined, true), "lost");
  assert.equal(statusOf(false, 1, undefined, true), "wrong");
});
