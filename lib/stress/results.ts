/**
 * What a run of `om stress` found, as data: each job (its workload, the nodes it ran on, its
 * moves, what it had to produce and what it did), each move (who asked, from, to, its figures or
 * its failure), and what the run was (the software, the nodes, the settings). The verdict
 * (verdict.ts), the text report and the JSON (report.ts) are all read from this.
 */
import type { MigrationStep } from "../migration/errors.ts";
import type { NodeFigures, Software } from "./cluster.ts";
import type { StressSettings } from "./options.ts";
import type { TestName } from "./workload.ts";

/**
 * How a job ended: `passed` (right result), `wrong` (it ended, with a wrong result or status),
 * `lost` (om run lost it, or it died of a signal om stress did not send), `timed out` (still
 * running when the run's time was up, stopped), `stopped` (the run was interrupted), `skipped`
 * (never started: the node lacks its program).
 */
export type JobStatus = "passed" | "wrong" | "lost" | "timed out" | "stopped" | "skipped";

/** One job (or one skipped workload). */
export interface JobResult {
  /** Its number in the run, from 1. */
  readonly n: number;
  readonly test: TestName;
  /** Its PID as om ps shows it; undefined when it was never seen running. */
  readonly pid?: number;
  /** Its command line. */
  readonly command: readonly string[];
  /** What it does, in one line. */
  readonly what: string;
  /** The nodes it ran on, in order (the first is home). */
  readonly nodes: readonly number[];
  /** Moves om stress made of it. */
  readonly stressMoves: number;
  /** Moves the balancer made of it. */
  readonly balancerMoves: number;
  readonly expected: string;
  readonly actual: string;
  readonly status: JobStatus;
  /** Its exit status (om run's), when it ended. */
  readonly exitCode?: number;
  /** Why it was skipped, or the end of om run's standard error for a job that failed. */
  readonly note?: string;
  /** Milliseconds from the run's start. */
  readonly startedMs: number;
  readonly endedMs?: number;
}

/** Who asked for a move. */
export type Mover = "om stress" | "balancer";

/**
 * How a move went: `done`; `failed` (the job went on where it was, or worse); `job ended` (the
 * job ended before it could move: nothing to move, not a failure); `overtaken` (the balancer
 * moved the job at the same moment, so this request was refused: not a failure); `under way`
 * (asked for, no answer yet: only while the run goes on).
 */
export type MoveOutcome = "done" | "failed" | "job ended" | "overtaken" | "under way";

/** One move. */
export interface MoveResult {
  /** Its number in the run, from 1. */
  readonly n: number;
  /** Milliseconds from the run's start when it was asked for (or seen, for the balancer's). */
  readonly atMs: number;
  /** The job's PID. */
  readonly job: number;
  readonly test: TestName;
  readonly from: number;
  readonly to: number;
  readonly by: Mover;
  readonly outcome: MoveOutcome;
  readonly frozenMs?: number;
  readonly totalMs?: number;
  /** The failed step, when the failure has one. */
  readonly step?: MigrationStep;
  /** CRIU's log of the failed step. */
  readonly logPath?: string;
  /** The failure's message. */
  readonly error?: string;
}

/** A whole run. */
export interface StressRun {
  /** When it started, milliseconds since the epoch. */
  readonly startedAt: number;
  readonly elapsedMs: number;
  /** Stopped before its end (Ctrl-C). */
  readonly interrupted: boolean;
  readonly software: Software;
  /** The node om stress ran on: every job's home. */
  readonly home: number;
  readonly nodes: readonly NodeFigures[];
  readonly settings: StressSettings;
  readonly jobs: readonly JobResult[];
  readonly moves: readonly MoveResult[];
}
