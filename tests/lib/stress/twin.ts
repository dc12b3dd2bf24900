/**
 * For the workloads' tests: runs a workload's job here as a plain process (the real interpreter)
 * and judges it against the value its TypeScript twin computed, so that a twin that drifts from
 * its program fails a test. Workloads whose program is missing here are not run.
 */
import { runLocal } from "../../../lib/stress/calibrate.ts";
import { missingPrograms } from "../../../lib/stress/catalogue.ts";
import {
  judge,
  type Judged,
  type PlanParams,
  type Workload,
} from "../../../lib/stress/workload.ts";

/** Parameters small enough for a unit test. */
export const PARAMS: PlanParams = { cpus: 2, memoryMiB: 2, seconds: 1 };

/** Whether this machine has the workload's programs. */
export function canRun(workload: Workload): boolean {
  return missingPrograms(workload, Deno.env.get("PATH") ?? "").length === 0;
}

/** Runs one job of `workload` of `size` here and judges it. */
export async function runHere(
  workload: Workload,
  size: number,
  params: PlanParams = PARAMS,
): Promise<Judged> {
  const plan = workload.plan(size, params, "om-stress-test-1");
  return judge(plan, await runLocal(plan));
}
