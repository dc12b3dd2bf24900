/**
 * Before a run's jobs start: which of the chosen workloads this node can run (a missing program
 * skips one), and at what rate each runs here (calibrate.ts), which also checks that it computes
 * right without om. A workload that is skipped, or computes wrong here, becomes a result at once.
 */
import type { Clock } from "../base/clock.ts";
import { calibrate, type RunLocal } from "./calibrate.ts";
import { missingPrograms, workloadOf } from "./catalogue.ts";
import type { JobResult } from "./results.ts";
import { describeExpected, type PlanParams, type TestName } from "./workload.ts";

/** The workloads ready to run, and the results of those that will not. */
export interface Prepared {
  /** Size per second here of each workload that runs (0 for a paced one). */
  readonly rates: ReadonlyMap<TestName, number>;
  /** The skipped workloads, and those that compute wrong here; numbered from 1. */
  readonly unrun: readonly JobResult[];
}

/** What preparing needs. */
export interface PrepareDeps {
  readonly clock: Pick<Clock, "now">;
  readonly runLocal: RunLocal;
  /** PATH, where the workloads' programs are looked for. */
  readonly path: string;
  /** True once the run is to stop: the workloads not looked at yet are left out. */
  readonly aborted: () => boolean;
  readonly onEvent: (line: string) => void;
  /** When the run started (clock milliseconds), for the results' times. */
  readonly startedAt: number;
}

/** Looks at each of `tests` in turn: skipped, wrong here, or ready with its rate. */
export async function prepareWorkloads(
  tests: readonly TestName[],
  params: PlanParams,
  deps: PrepareDeps,
): Promise<Prepared> {
  const rates = new Map<TestName, number>();
  const unrun: JobResult[] = [];
  for (const test of tests) {
    if (deps.aborted()) break;
    const workload = workloadOf(test);
    const missing = missingPrograms(workload, deps.path);
    const base = {
      n: unrun.length + 1,
      test,
      nodes: [],
      stressMoves: 0,
      balancerMoves: 0,
      startedMs: deps.clock.now() - deps.startedAt,
    };
    if (missing.length > 0) {
      unrun.push({
        ...base,
        command: [],
        what: workload.summary,
        expected: "-",
        actual: "-",
        status: "skipped",
        note: `skipped: no ${missing.join(", ")} on PATH`,
      });
      deps.onEvent(`${test}: skipped (no ${missing.join(", ")} on PATH)`);
      continue;
    }
    if (workload.sizing === "paced") {
      rates.set(test, 0);
      continue;
    }
    const calibration = await calibrate(workload, params, {
      clock: deps.clock,
      run: deps.runLocal,
    });
    if (!calibration.ok) {
      const plan = calibration.expected;
      unrun.push({
        ...base,
        command: plan.argv,
        what: plan.what,
        expected: describeExpected(plan.expected),
        actual: calibration.actual,
        status: "wrong",
        note: "wrong when run here as a plain process, without om: this node's " +
          `${workload.needs.join(", ")} computes otherwise`,
      });
      deps.onEvent(`${test}: wrong even without om (${calibration.actual})`);
      continue;
    }
    rates.set(test, calibration.rate);
    deps.onEvent(`${test}: ${Math.round(calibration.rate)} ${workload.unit} per second here`);
  }
  return { rates, unrun };
}
