/**
 * The stress test itself (`om stress`, the HOWTO's chapter 14 reborn): it sizes the workloads to
 * this node (prepare.ts), starts `settings.jobs` jobs with `om run`, one after the other, and
 * keeps that many running for the run's duration (every workload gets its turn, if need be after
 * it), and every `settings.intervalMs` moves a running job chosen at random to
 * another node that is up, chosen at random (home included, and on from one guest node to
 * another), as omtest's moving.sh did. It watches the jobs' records on this node (their home) for
 * the moves the balancer makes of its own. When the time is up it stops moving, waits for the
 * jobs to end (those still running after a grace time are stopped: timed out), and judges each
 * one's result against what it had to produce. An abort (Ctrl-C) stops the jobs it started and
 * ends the run with what it found so far.
 *
 * Everything outside comes in through `deps` (the clock, randomness, starting a job, moving one,
 * reading the records and the nodes), so the loop runs in a test with stand-ins.
 */
import type { Clock } from "../base/clock.ts";
import type { JobRecord } from "../jobs/table.ts";
import { MigrationError, type MigrationStep } from "../migration/errors.ts";
import { type RunLocal, sizeFor } from "./calibrate.ts";
import { workloadOf } from "./catalogue.ts";
import type { ClusterView, Software } from "./cluster.ts";
import type { JobEnd, JobProcess, StartJob } from "./jobrun.ts";
import type { Migrate } from "./mover.ts";
import { prepareWorkloads } from "./prepare.ts";
import type { Progress } from "./progress.ts";
import type { StressSettings } from "./options.ts";
import type { JobResult, JobStatus, MoveOutcome, MoveResult, StressRun } from "./results.ts";
import {
  describeExpected,
  type JobPlan,
  judge,
  type PlanParams,
  type TestName,
} from "./workload.ts";

/** How often the jobs' records are read, in milliseconds. */
export const POLL_MS = 250;
/** The loop's step, in milliseconds. */
const STEP_MS = 100;
/** How long jobs may run on after the duration, at least (longer runs: the duration again). */
export const GRACE_MS = 60_000;
/** How long a stopped job's om run has to end before it is killed. */
export const STOP_MS = 10_000;
/** How long a job that has just started may take to show in the records before the next starts. */
export const START_WAIT_MS = 10_000;
/** The place of a job's tag in a workload's plan, made before the job is. */
const TAG = "om-stress-TAG";
/** How long a failed move waits for its job's end to reach home, to tell "job ended" apart. */
export const END_WAIT_MS = 2000;
/** The steps a job's own end can fail (before CRIU has frozen it, or while it freezes it). */
const ENDING_STEPS: readonly MigrationStep[] = ["preflight", "pre-dump", "dump"];
/** How long a refused move waits for a move of the balancer's to show in the job's record. */
export const OVERTAKE_WAIT_MS = 30_000;

/** The world as the run sees it. */
export interface StressDeps {
  /** Its `now` is milliseconds since the epoch. */
  readonly clock: Clock;
  /** A number in [0, 1). */
  readonly random: () => number;
  readonly start: StartJob;
  readonly migrate: Migrate;
  /** Runs a workload as a plain process (calibration). */
  readonly runLocal: RunLocal;
  /** The job records of this node's state tree. */
  readonly readJobs: () => Promise<readonly JobRecord[]>;
  /** The ids of the nodes up now. */
  readonly upNodes: () => Promise<readonly number[]>;
  /** PATH, where the workloads' programs are looked for. */
  readonly path: string;
  readonly signal?: AbortSignal;
  /** A line about something that happened (a job ended, a move). */
  readonly onEvent?: (line: string) => void;
  readonly onProgress?: (progress: Progress) => void;
  /** How long jobs may run on after the duration; default the duration, at least GRACE_MS. */
  readonly graceMs?: number;
}

/** What the run starts from. */
export interface StressInput {
  readonly settings: StressSettings;
  readonly cluster: ClusterView;
  readonly software: Software;
}

/** One job while the run goes on. */
interface Tracked {
  readonly n: number;
  readonly plan: JobPlan;
  readonly tag: string;
  readonly startedMs: number;
  readonly process: JobProcess;
  pid?: number;
  readonly nodes: number[];
  stressMoves: number;
  balancerSeen: number;
  /** Its record's migration count, last read. */
  migrations: number;
  /** A move om stress asked for, under way; `seen` once the record showed the job at `to`. */
  moving?: { readonly to: number; seen?: boolean };
  stopping?: "timed out" | "stopped";
  end?: JobEnd;
  endedMs?: number;
  status?: JobStatus;
  actual?: string;
}

/** Whether a job's command line carries `tag` (as its last word, or as awk's om_stress=TAG). */
export function carriesTag(command: readonly string[], tag: string): boolean {
  return command.some((word) => word === tag || word === `om_stress=${tag}`);
}

/**
 * How a job ended, from its result and how om stress treated it: right is passed; a job om
 * stress stopped is timed out or stopped; om run's 125 (it could not follow the job) and a death
 * by a signal om stress did not send are lost; anything else is wrong.
 */
export function statusOf(
  ok: boolean,
  exitCode: number,
  stopping: "timed out" | "stopped" | undefined,
  seen: boolean,
): JobStatus {
  if (ok) return "passed";
  if (stopping) return stopping;
  if (exitCode === 125) return seen ? "lost" : "wrong";
  if (exitCode > 128) return "lost";
  return "wrong";
}

/** Runs the stress test; resolves to what it found (the verdict is verdict.ts's). */
export async function runStress(input: StressInput, deps: StressDeps): Promise<StressRun> {
  const { settings, cluster } = input;
  const { clock } = deps;
  const self = cluster.self;
  const startedAt = clock.now();
  const runId = startedAt.toString(36);
  const results: JobResult[] = [];
  const moves: MoveResult[] = [];
  const tracked: Tracked[] = [];
  const inFlight = new Set<Promise<void>>();
  const aborted = () => deps.signal?.aborted === true;
  const event = (line: string) => deps.onEvent?.(line);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(deps.random() * list.length)];
  let runStart = startedAt;
  /** Jobs to start, one at a time. */
  let waiting = 0;
  let phase: Progress["phase"] = "calibrating";

  const params: PlanParams = {
    cpus: Math.max(1, cluster.nodes.filter((n) => n.up).reduce((sum, n) => sum + n.cpus, 0)),
    memoryMiB: settings.memoryMiB,
    seconds: settings.jobSeconds,
  };

  // Which workloads can run, and their rates here.
  const prepared = await prepareWorkloads(settings.tests, params, {
    clock,
    runLocal: deps.runLocal,
    path: deps.path,
    aborted,
    onEvent: event,
    startedAt,
  });
  const rates = prepared.rates;
  results.push(...prepared.unrun);
  let serial = prepared.unrun.length;
  const rotation = settings.tests.filter((test) => rates.has(test));
  let next = 0;
  // One plan per workload, made before the jobs start: its expected value can take the twin a
  // while to compute (the portfolio's), and a busy node would hold the loop up meanwhile. Every
  // job of the workload is that plan with its own tag.
  const templates = new Map<TestName, JobPlan>();
  for (const test of rotation) {
    if (aborted()) break;
    const workload = workloadOf(test);
    const size = workload.sizing === "paced"
      ? workload.smallest
      : sizeFor(workload, rates.get(test)!, settings.jobSeconds);
    templates.set(test, workload.plan(size, params, TAG));
  }
  /** Whether a workload has not had its turn yet: it gets one, even after the duration. */
  const owed = () => next < rotation.length;
  const planJob = (tag: string): JobPlan => {
    const template = templates.get(rotation[next++ % rotation.length])!;
    return { ...template, argv: template.argv.map((word) => word.replaceAll(TAG, tag)) };
  };

  const progress = (): Progress => {
    const perNode = new Map<number, number>();
    for (const job of tracked) {
      if (job.end) continue;
      const node = job.nodes.at(-1)!;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
    }
    const ended = tracked.filter((j) => j.status !== undefined);
    const byStress = moves.filter((m) => m.by === "om stress");
    return {
      phase,
      elapsedMs: phase === "calibrating" ? 0 : clock.now() - runStart,
      durationMs: settings.durationMs,
      running: tracked.filter((j) => !j.end).length,
      done: ended.filter((j) => j.status === "passed").length,
      failed: ended.filter((j) => j.status !== "passed").length,
      movesDone: byStress.filter((m) => m.outcome === "done").length,
      movesFailed: byStress.filter((m) => m.outcome === "failed").length,
      balancerMoves: moves.filter((m) => m.by === "balancer").length,
      perNode: [...perNode].sort((a, b) => a[0] - b[0]),
    };
  };

  const finished = (job: Tracked, end: JobEnd) => {
    job.end = end;
    job.endedMs = clock.now() - startedAt;
    // Ctrl-C reaches the jobs' om run too (one process group): they may end before stopAll.
    if (aborted()) job.stopping ??= "stopped";
    const judged = judge(job.plan, end.produced);
    job.actual = judged.actual;
    job.status = statusOf(judged.ok, end.produced.exitCode, job.stopping, job.pid !== undefined);
    const who = job.pid === undefined ? `job #${job.n}` : `job ${job.pid}`;
    event(`${who} (${job.plan.test}) ended: ${job.status}${judged.ok ? "" : `: ${judged.actual}`}`);
    const remaining = settings.durationMs - (clock.now() - runStart);
    const timeLeft = phase === "running" && remaining >= Math.max(1000, settings.jobSeconds * 500);
    if (!aborted() && (timeLeft || owed())) waiting++;
  };

  const startJob = () => {
    const n = ++serial;
    const tag = `om-stress-${runId}-${n}`;
    const plan = planJob(tag);
    const job: Tracked = {
      n,
      plan,
      tag,
      startedMs: clock.now() - startedAt,
      process: deps.start(plan, settings.jobSeconds * 1000),
      nodes: [self],
      stressMoves: 0,
      balancerSeen: 0,
      migrations: 0,
    };
    tracked.push(job);
    event(`job #${n} (${plan.test}) started: ${plan.what}`);
    void job.process.done.then((end) => finished(job, end));
  };

  /** Reads the records: PIDs of new jobs, and node changes (the balancer's moves among them). */
  const poll = async () => {
    let records: readonly JobRecord[];
    try {
      records = await deps.readJobs();
    } catch {
      return;
    }
    for (const job of tracked) {
      if (job.end) continue;
      const record = job.pid === undefined
        ? records.find((r) => carriesTag(r.command, job.tag))
        : records.find((r) => r.pid === job.pid);
      if (!record) continue;
      job.pid = record.pid;
      job.migrations = record.migrations;
      const last = job.nodes.at(-1)!;
      if (record.node === last) continue;
      job.nodes.push(record.node);
      if (job.moving?.to === record.node) {
        // Taken for om stress's move; if that move turns out refused, it was the balancer's.
        job.moving.seen = true;
        continue;
      }
      balancerMoved(job, last, record.node);
    }
  };

  const balancerMoved = (job: Tracked, from: number, to: number) => {
    job.balancerSeen++;
    moves.push({
      n: moves.length + 1,
      atMs: clock.now() - startedAt,
      job: job.pid!,
      test: job.plan.test,
      from,
      to,
      by: "balancer",
      outcome: "done",
    });
    event(
      `job ${job.pid} (${job.plan.test}): the balancer moved it from node ${from} to node ${to}`,
    );
  };

  /**
   * After a failed move: was it no failure of om's? A refusal (no step) is not, when the job
   * ended (nothing to move) or the balancer was moving it at that moment (the home refuses a
   * second move of a job under way): a refusal waits for the balancer's move to show in the
   * job's record. A failure at a step before the job is frozen (preflight, dump) is not, when
   * the job ended meanwhile. Any other failure is one.
   */
  const classify = async (
    job: Tracked,
    from: number,
    before: number,
    step: MigrationStep | undefined,
  ): Promise<MoveOutcome> => {
    const refused = step === undefined;
    if (!refused && !ENDING_STEPS.includes(step)) return "failed";
    const start = clock.now();
    for (;;) {
      if (job.end) return "job ended";
      const waited = clock.now() - start;
      if (waited >= (refused ? OVERTAKE_WAIT_MS : END_WAIT_MS)) return "failed";
      if (refused) {
        const record = (await deps.readJobs().catch(() => [])).find((r) => r.pid === job.pid);
        if (record && (record.node !== from || record.migrations !== before)) return "overtaken";
      }
      await clock.sleep(STEP_MS * 2);
    }
  };

  const moveOne = async () => {
    await poll();
    const candidates = tracked.filter((j) =>
      !j.end && !j.stopping && !j.moving && j.pid !== undefined
    );
    if (candidates.length === 0) {
      event("no job to move now: none is running, or all are moving");
      return;
    }
    const job = pick(candidates);
    const from = job.nodes.at(-1)!;
    const up = await deps.upNodes().catch((error) => {
      event(`no move now: cannot read which nodes are up: ${(error as Error).message}`);
      return [] as number[];
    });
    const targets = up.filter((id) => id !== from);
    if (targets.length === 0 || job.end || job.moving) {
      if (up.length > 0) event(`no move now: no node other than ${from} is up`);
      return;
    }
    const to = pick(targets);
    const pid = job.pid!;
    const slot = moves.length;
    const base = {
      n: slot + 1,
      atMs: clock.now() - startedAt,
      job: pid,
      test: job.plan.test,
      from,
      to,
      by: "om stress" as const,
    };
    moves.push({ ...base, outcome: "under way" });
    const moving: NonNullable<Tracked["moving"]> = { to };
    job.moving = moving;
    const before = job.migrations;
    try {
      const report = await deps.migrate(pid, to === self ? "home" : to);
      job.stressMoves++;
      if (job.nodes.at(-1) !== report.to) job.nodes.push(report.to);
      moves[slot] = {
        ...base,
        from: report.from,
        to: report.to,
        outcome: "done",
        frozenMs: report.frozenMs,
        totalMs: report.totalMs,
      };
      event(
        `move ${
          slot + 1
        }: job ${pid} (${job.plan.test}) node ${report.from} -> node ${report.to}: ` +
          `done, frozen ${report.frozenMs} ms, total ${report.totalMs} ms`,
      );
    } catch (error) {
      const failure = MigrationError.from(error);
      const outcome = await classify(job, from, before, failure.step);
      if (outcome === "overtaken" && moving.seen) balancerMoved(job, from, to);
      moves[slot] = {
        ...base,
        outcome,
        ...(failure.step ? { step: failure.step } : {}),
        ...(failure.logPath ? { logPath: failure.logPath } : {}),
        error: failure.message,
      };
      event(
        `move ${slot + 1}: job ${pid} (${job.plan.test}) node ${from} -> node ${to}: ${outcome}` +
          (outcome === "failed"
            ? `${failure.step ? ` at ${failure.step}` : ""}: ${failure.message}`
            : ""),
      );
    } finally {
      job.moving = undefined;
    }
  };

  let stoppedAt: number | undefined;
  let killed = false;
  const stopAll = (why: "timed out" | "stopped") => {
    stoppedAt = clock.now();
    phase = "stopping";
    for (const job of tracked) {
      if (job.end || job.stopping) continue;
      job.stopping = why;
      job.process.kill("SIGINT");
    }
  };

  /**
   * Whether a job started lately is still starting (no record of it yet): jobs start one after
   * the other, so that a node's om discover is not asked to start them all at once.
   */
  const starting = () =>
    tracked.some((j) =>
      !j.end && j.pid === undefined && clock.now() - startedAt - j.startedMs < START_WAIT_MS
    );

  if (rotation.length > 0 && !aborted()) {
    phase = "running";
    runStart = clock.now();
    waiting = settings.jobs;
    const graceMs = deps.graceMs ?? Math.max(GRACE_MS, settings.durationMs);
    let nextPoll = runStart;
    let nextMove = runStart + settings.intervalMs;
    let nextProgress = runStart;
    for (;;) {
      const now = clock.now();
      const elapsed = now - runStart;
      if (phase === "running" && (elapsed >= settings.durationMs || aborted())) phase = "finishing";
      if (aborted() && stoppedAt === undefined) stopAll("stopped");
      if (elapsed >= settings.durationMs + graceMs && stoppedAt === undefined) stopAll("timed out");
      if (stoppedAt !== undefined && !killed && now - stoppedAt >= STOP_MS) {
        killed = true;
        for (const job of tracked) if (!job.end) job.process.kill("SIGKILL");
      }
      if (now >= nextPoll) {
        await poll();
        nextPoll = now + POLL_MS;
      }
      const mayStart = phase === "running" || (phase === "finishing" && owed());
      if (waiting > 0 && mayStart && !starting()) {
        waiting--;
        startJob();
        nextPoll = now;
      }
      if (phase === "running" && settings.intervalMs > 0 && now >= nextMove) {
        nextMove += settings.intervalMs;
        const move: Promise<void> = moveOne().finally(() => inFlight.delete(move));
        inFlight.add(move);
      }
      if (now >= nextProgress) {
        deps.onProgress?.(progress());
        nextProgress = now + 1000;
      }
      // All ended: the time is up, or too little of it is left for another job.
      if (tracked.every((j) => j.end) && (waiting === 0 || !mayStart)) break;
      await clock.sleep(STEP_MS);
    }
    await Promise.all([...inFlight]);
    deps.onProgress?.(progress());
  }

  for (const job of tracked) {
    const end = job.end!;
    results.push({
      n: job.n,
      test: job.plan.test,
      ...(job.pid !== undefined ? { pid: job.pid } : {}),
      command: job.plan.argv,
      what: job.plan.what,
      nodes: job.nodes,
      stressMoves: job.stressMoves,
      balancerMoves: Math.max(job.balancerSeen, job.migrations - job.stressMoves),
      expected: describeExpected(job.plan.expected),
      actual: job.actual!,
      status: job.status!,
      exitCode: end.produced.exitCode,
      ...(job.status !== "passed" && end.stderr.trim() ? { note: end.stderr.trim() } : {}),
      startedMs: job.startedMs,
      endedMs: job.endedMs!,
    });
  }
  return {
    startedAt,
    elapsedMs: clock.now() - startedAt,
    interrupted: aborted(),
    software: input.software,
    home: self,
    nodes: cluster.nodes,
    settings,
    jobs: results.sort((a, b) => a.n - b.n),
    moves,
  };
}
