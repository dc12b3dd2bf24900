/**
 * The verdict of a run: it passed only if every job it started finished with the right result,
 * none was lost, every move om stress asked for was done, something moved at all, and the run
 * was not interrupted. A move that failed safely (the job went on where it was) is still a
 * failure of the run. Each reason it failed is said in a sentence.
 */
import type { StressRun } from "./results.ts";

/** The counts of a run and its verdict. */
export interface Verdict {
  readonly passed: boolean;
  /** Jobs started. */
  readonly jobs: number;
  /** Jobs with the right result. */
  readonly right: number;
  /** Jobs that ended with a wrong result or exit status. */
  readonly wrongResults: number;
  readonly lost: number;
  readonly timedOut: number;
  readonly stopped: number;
  /** Workloads skipped (their program missing). */
  readonly skipped: number;
  /** Moves done, whoever asked. */
  readonly migrations: number;
  /** Moves om stress asked for that were done. */
  readonly stressMigrations: number;
  /** Moves the balancer made. */
  readonly balancerMigrations: number;
  /** Moves om stress asked for that failed. */
  readonly failedMigrations: number;
  /** Moves not made because the job ended first or the balancer moved it at the same moment. */
  readonly notNeeded: number;
  /** Why the run failed, one sentence each; empty when it passed. */
  readonly reasons: readonly string[];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Counts a run and judges it. */
export function verdictOf(run: StressRun): Verdict {
  const started = run.jobs.filter((j) => j.status !== "skipped");
  const count = (status: string) => run.jobs.filter((j) => j.status === status).length;
  const byStress = run.moves.filter((m) => m.by === "om stress");
  const stressMigrations = byStress.filter((m) => m.outcome === "done").length;
  const failed = byStress.filter((m) => m.outcome === "failed");
  // Balancer moves seen as node changes, or counted from the jobs' migration counters.
  const balancerMigrations = Math.max(
    run.moves.filter((m) => m.by === "balancer").length,
    run.jobs.reduce((sum, j) => sum + j.balancerMoves, 0),
  );
  const wrong = count("wrong");
  const lost = count("lost");
  const timedOut = count("timed out");
  const stopped = count("stopped");
  const reasons: string[] = [];
  if (run.interrupted) reasons.push("the run was interrupted before its end");
  if (started.length === 0) reasons.push("no job was started");
  if (wrong > 0) {
    const tests = [...new Set(run.jobs.filter((j) => j.status === "wrong").map((j) => j.test))];
    reasons.push(`${plural(wrong, "job")} ended with a wrong result (${tests.join(", ")})`);
  }
  if (lost > 0) reasons.push(`${plural(lost, "job was", "jobs were")} lost`);
  if (timedOut > 0) {
    reasons.push(
      `${plural(timedOut, "job")} did not end in time and ${
        timedOut === 1 ? "was" : "were"
      } stopped`,
    );
  }
  if (failed.length > 0) {
    const steps = [...new Set(failed.map((m) => m.step ?? "no step"))];
    reasons.push(
      `${plural(failed.length, "move")} that om stress asked for failed (${steps.join(", ")})`,
    );
  }
  // A stress test of moves in which nothing moved tests nothing (failed moves say so already).
  const ran = started.filter((j) => j.nodes.length > 0);
  const moved = stressMigrations + balancerMigrations > 0;
  if (ran.length > 0 && !moved && failed.length === 0 && !run.interrupted) {
    reasons.push("no job moved at all");
  }
  return {
    passed: reasons.length === 0,
    jobs: started.length,
    right: count("passed"),
    wrongResults: wrong,
    lost,
    timedOut,
    stopped,
    skipped: count("skipped"),
    migrations: stressMigrations + balancerMigrations,
    stressMigrations,
    balancerMigrations,
    failedMigrations: failed.length,
    notNeeded: byStress.filter((m) => m.outcome === "job ended" || m.outcome === "overtaken")
      .length,
    reasons,
  };
}

/** The summary line: "PASSED: ..." or "FAILED: ...". */
export function summaryLine(verdict: Verdict): string {
  const figures = `${plural(verdict.jobs, "job")} (${verdict.right} right, ` +
    `${verdict.wrongResults} wrong, ${verdict.lost} lost); ` +
    `${plural(verdict.migrations, "move")} done (${verdict.stressMigrations} by om stress, ` +
    `${verdict.balancerMigrations} by the balancer), ${verdict.failedMigrations} failed`;
  return verdict.passed
    ? `PASSED: ${figures}`
    : `FAILED: ${verdict.reasons.join("; ")}. ${figures}`;
}
