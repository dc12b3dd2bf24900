/** For the verdict's and the report's tests: a run of om stress, built from a few jobs and moves. */
import type { JobResult, MoveResult, StressRun } from "../../../lib/stress/results.ts";

/** A job that passed, with `extra` over it. */
export function job(n: number, extra: Partial<JobResult> = {}): JobResult {
  return {
    n,
    test: "awk",
    pid: 4700 + n,
    command: ["awk", "-v", `om_stress=om-stress-x-${n}`, "BEGIN { print 1 }"],
    what: "awk loop: 10 x 1000 additions modulo 1000003",
    nodes: [1, 2],
    stressMoves: 1,
    balancerMoves: 0,
    expected: "44955",
    actual: "44955",
    status: "passed",
    exitCode: 0,
    startedMs: 1000,
    endedMs: 9000,
    ...extra,
  };
}

/** A move om stress made, done, with `extra` over it. */
export function move(n: number, extra: Partial<MoveResult> = {}): MoveResult {
  return {
    n,
    atMs: 3000 + n * 1000,
    job: 4701,
    test: "awk",
    from: 1,
    to: 2,
    by: "om stress",
    outcome: "done",
    frozenMs: 120,
    totalMs: 900,
    ...extra,
  };
}

/** A run of three nodes whose home is node 1. */
export function runOf(
  jobs: readonly JobResult[],
  moves: readonly MoveResult[],
  extra: Partial<StressRun> = {},
): StressRun {
  return {
    startedAt: Date.UTC(2025, 0, 31, 12, 0, 0),
    elapsedMs: 21_500,
    interrupted: false,
    software: { om: "0.1.0", kernel: "6.18.0", criu: "4.1.1 (/usr/sbin/criu)" },
    home: 1,
    nodes: [1, 2, 3].map((id) => ({
      id,
      address: `10.77.0.${id}`,
      up: id !== 3,
      measured: id !== 3,
      cpus: 2,
      speed: 12000,
      mem: 1024 ** 3,
      tmem: 2 * 1024 ** 3,
    })),
    settings: {
      durationMs: 20_000,
      intervalMs: 3000,
      jobs: 2,
      tests: ["awk", "stdin"],
      memoryMiB: 16,
      jobSeconds: 8,
      reportPath: "om-stress-2025-01-31T12-00-00Z.txt",
    },
    jobs,
    moves,
    ...extra,
  };
}
