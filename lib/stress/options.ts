/**
 * The settings of one `om stress` run, and their defaults, sized to the cluster: as many jobs at
 * once as the jobs have CPUs (at least two), each sized to run for two fifths of the run, or for
 * less when the workloads take turns in rounds, on its share of a CPU; the memory workload's size
 * from the smallest memory a node has available; the report's file name from the time it starts.
 */
import { UsageError } from "../cli/parser.ts";
import { parseTests } from "./catalogue.ts";
import { TEST_NAMES, type TestName } from "./workload.ts";

/** The run's length when --duration is not given, in seconds. */
export const DEFAULT_DURATION_S = 60;
/** Seconds between two moves that om stress asks for, when --interval is not given. */
export const DEFAULT_INTERVAL_S = 5;
/** Jobs at once at least, by default: one to move while another runs. */
export const MIN_JOBS = 2;
/** The memory workload's size bounds in MiB (its default: an eighth of the smallest node's). */
export const MEMORY_MIB = { min: 16, max: 256 } as const;
/** A job's size bounds: the seconds of one CPU it is sized for. */
export const JOB_SECONDS = { min: 1, max: 300 } as const;
/** The longest run --duration takes (a day), in seconds. */
export const MAX_DURATION_S = 86_400;

/** What the command line said (each absent when not given). */
export interface StressFlags {
  readonly duration?: string;
  readonly interval?: string;
  readonly jobs?: number;
  readonly tests?: string;
  readonly memory?: number;
  readonly report?: string;
}

/** What the cluster is, for the defaults. */
export interface ClusterSize {
  /**
   * The CPUs the jobs really have: those of the nodes that are up, together, or fewer when the
   * nodes share a machine (a lab's nodes share the CPUs of the machine it runs on).
   */
  readonly cpus: number;
  /** The least memory available (bytes) among the nodes that are up; undefined when unknown. */
  readonly minMem?: number;
}

/** The settings of a run. */
export interface StressSettings {
  readonly durationMs: number;
  /** Between two moves om stress asks for; 0: it asks for none (the balancer's only). */
  readonly intervalMs: number;
  /** Jobs running at once. */
  readonly jobs: number;
  readonly tests: readonly TestName[];
  readonly memoryMiB: number;
  /** Seconds of one CPU each job is sized for. */
  readonly jobSeconds: number;
  /** Where the text report goes. */
  readonly reportPath: string;
}

/** Reads a number of seconds (decimals allowed) of at least `min`; throws UsageError. */
export function parseSeconds(flag: string, text: string, min: number, max: number): number {
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds < min || seconds > max) {
    throw new UsageError(
      `Cannot use "${text}" for ${flag}: not a number of seconds from ${min} to ${max}`,
    );
  }
  return seconds;
}

/** The default report's name: om-stress-YYYY-MM-DDTHH-MM-SSZ.txt, in UTC (no colon, no slash). */
export function defaultReportName(epochMs: number): string {
  const stamp = new Date(epochMs).toISOString().slice(0, 19).replaceAll(":", "-");
  return `om-stress-${stamp}Z.txt`;
}

/** The memory workload's default size for nodes whose least available memory is `minMem`. */
export function defaultMemoryMiB(minMem: number | undefined): number {
  if (minMem === undefined || minMem <= 0) return MEMORY_MIB.min;
  const eighth = Math.floor(minMem / 1048576 / 8);
  return Math.max(MEMORY_MIB.min, Math.min(MEMORY_MIB.max, eighth));
}

/**
 * The seconds of CPU a job is sized for, in a run of `durationMs` with `jobs` at once on `cpus`
 * CPUs and `tests` workloads: two fifths of the run, or less so that every workload gets its
 * turn when there are more workloads than jobs at once (the jobs run in rounds), and each job's
 * share of a CPU when there are more jobs than CPUs.
 */
export function jobSecondsFor(
  durationMs: number,
  options: { readonly jobs: number; readonly cpus: number; readonly tests: number },
): number {
  const jobs = Math.max(1, options.jobs);
  const rounds = Math.ceil(Math.max(1, options.tests) / jobs);
  const share = options.cpus > 0 ? Math.min(1, options.cpus / jobs) : 1;
  const wall = Math.min(durationMs * 0.4, durationMs / (rounds + 0.5));
  const seconds = Math.round(wall * share / 100) / 10;
  return Math.max(JOB_SECONDS.min, Math.min(JOB_SECONDS.max, seconds));
}

/** The flags, read and checked: what the person chose (each absent when not given). */
export interface StressChoices {
  readonly durationMs?: number;
  readonly intervalMs?: number;
  readonly jobs?: number;
  readonly tests?: readonly TestName[];
  readonly memoryMiB?: number;
  readonly reportPath?: string;
}

/** Reads and checks the flags, before anything else is done; throws UsageError. */
export function readFlags(flags: StressFlags): StressChoices {
  const choices: {
    -readonly [K in keyof StressChoices]: StressChoices[K];
  } = {};
  if (flags.duration !== undefined) {
    choices.durationMs = Math.round(
      parseSeconds("--duration", flags.duration, 1, MAX_DURATION_S) * 1000,
    );
  }
  if (flags.interval !== undefined) {
    const seconds = parseSeconds("--interval", flags.interval, 0, MAX_DURATION_S);
    if (seconds > 0 && seconds < 0.5) {
      throw new UsageError(
        `Cannot use "${flags.interval}" for --interval: at least 0.5 seconds (or 0: no moves)`,
      );
    }
    choices.intervalMs = Math.round(seconds * 1000);
  }
  if (flags.tests !== undefined) {
    try {
      choices.tests = parseTests(flags.tests);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  if (flags.report !== undefined) {
    if (flags.report === "") throw new UsageError("Cannot use an empty --report: give a file name");
    choices.reportPath = flags.report;
  }
  if (flags.jobs !== undefined) choices.jobs = flags.jobs;
  if (flags.memory !== undefined) choices.memoryMiB = flags.memory;
  return choices;
}

/**
 * The settings of a run from what was chosen and the cluster; `now` (milliseconds since the
 * epoch) names the default report.
 */
export function resolveSettings(
  choices: StressChoices,
  cluster: ClusterSize,
  now: number,
): StressSettings {
  const durationMs = choices.durationMs ?? DEFAULT_DURATION_S * 1000;
  const tests = choices.tests ?? [...TEST_NAMES];
  const jobs = choices.jobs ?? Math.max(MIN_JOBS, cluster.cpus);
  return {
    durationMs,
    intervalMs: choices.intervalMs ?? DEFAULT_INTERVAL_S * 1000,
    jobs,
    tests,
    memoryMiB: choices.memoryMiB ?? defaultMemoryMiB(cluster.minMem),
    jobSeconds: jobSecondsFor(durationMs, { jobs, cpus: cluster.cpus, tests: tests.length }),
    reportPath: choices.reportPath ?? defaultReportName(now),
  };
}
