/**
 * omtest's eatmem: a sin+sqrt loop that logs its loop counter as it goes. Here each line is the
 * counter and whether the loop's sum came out as it did the first time ("ok", else "bad"): the
 * floating-point state must survive a move too. Every line must reach home once, in order; the
 * expected output is the counter's lines, written out here.
 */
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

/** sin+sqrt terms per logged line. */
export const TERMS = 2000;

/** The awk program that logs `lines` lines. */
export function eatmemProgram(lines: number): string {
  return `BEGIN { for (i = 0; i < ${lines}; i++) { x = 0; for (k = 1; k <= ${TERMS}; k++) ` +
    `x += sin(k) + sqrt(k); if (i == 0) x0 = x; print i, (x == x0 ? "ok" : "bad"); fflush() } }`;
}

/** What the program prints: "0 ok", "1 ok", ... one line per counter value. */
export function eatmemOutput(lines: number): string {
  let text = "";
  for (let i = 0; i < lines; i++) text += `${i} ok\n`;
  return text;
}

/** The eatmem workload. */
export const eatmem: Workload = {
  name: "eatmem",
  summary: "omtest's eatmem: a sin+sqrt loop logging its counter (every line once, in order)",
  needs: ["awk"],
  sizing: "work",
  smallest: 20,
  unit: "lines",
  plan(size: number, _params: PlanParams, tag: string): JobPlan {
    return {
      test: "eatmem",
      argv: ["awk", "-v", `om_stress=${tag}`, eatmemProgram(size)],
      expected: { kind: "text", text: eatmemOutput(size) },
      exitCode: 0,
      size,
      what: `eatmem: ${size} lines, each after ${TERMS} sin+sqrt terms`,
    };
  },
};
