/**
 * Sizing the workloads to this node before any job starts: each "work" workload runs here, as a
 * plain process (not a job), at a small size, doubled until a run takes a fifth of a second; its
 * rate (size per second) then sizes its jobs to the seconds they should last. Each of these runs
 * is checked against the workload's expected output too, so a workload that computes wrong even
 * without om (an awk or a perl unlike the ones om knows) is told apart from a job that moves wrong.
 */
import type { Clock } from "../base/clock.ts";
import { Cksum } from "./cksum.ts";
import { type JobPlan, judge, type PlanParams, type Produced, type Workload } from "./workload.ts";

/** How long a calibration run should take at least, in milliseconds. */
export const CALIBRATION_MS = 200;
/** Doublings tried at most. */
const MAX_DOUBLINGS = 16;

/** Runs a plan as a plain process, its standard input fed at once; resolves to what it produced. */
export type RunLocal = (plan: JobPlan) => Promise<Produced & { readonly stderr: string }>;

/** A workload's calibration. */
export type Calibration =
  /** It ran right: `rate` is its size per second here. */
  | { readonly ok: true; readonly rate: number }
  /** It ran wrong here, without om: what it produced, and what it should have. */
  | { readonly ok: false; readonly expected: JobPlan; readonly actual: string };

const decoder = new TextDecoder();

/** Runs `plan` with Deno.Command: the real {@linkcode RunLocal}, with this process's PATH. */
export const runLocal: RunLocal = async (plan) => {
  const [program, ...args] = plan.argv;
  const child = new Deno.Command(program, {
    args,
    cwd: "/",
    stdin: plan.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (plan.stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(plan.stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const output = await child.output();
  return {
    ...(plan.expected.kind === "text" ? { text: decoder.decode(output.stdout) } : {}),
    sum: new Cksum().update(output.stdout).value(),
    exitCode: output.code,
    stderr: decoder.decode(output.stderr),
  };
};

/**
 * Calibrates `workload` (a "work" one): runs it at its smallest size, doubling, until a run takes
 * CALIBRATION_MS; a wrong result ends it at once.
 */
export async function calibrate(
  workload: Workload,
  params: PlanParams,
  deps: { readonly clock: Pick<Clock, "now">; readonly run: RunLocal },
): Promise<Calibration> {
  let size = Math.max(1, workload.smallest);
  for (let i = 0;; i++) {
    const plan = workload.plan(size, params, "om-stress-calibration");
    const start = deps.clock.now();
    const produced = await deps.run(plan);
    const elapsed = deps.clock.now() - start;
    const judged = judge(plan, produced);
    if (!judged.ok) {
      const said = produced.stderr.trim().split("\n").at(-1);
      return {
        ok: false,
        expected: plan,
        actual: said ? `${judged.actual} (${said})` : judged.actual,
      };
    }
    if (elapsed >= CALIBRATION_MS || i >= MAX_DOUBLINGS) {
      return { ok: true, rate: size / Math.max(1, elapsed) * 1000 };
    }
    size *= 2;
  }
}

/** The size of a job of a workload of `rate` that should last `seconds` on one CPU. */
export function sizeFor(workload: Workload, rate: number, seconds: number): number {
  return Math.max(workload.smallest, Math.round(rate * seconds));
}
