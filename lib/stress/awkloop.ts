/**
 * The HOWTO's first stress test (14.1), `awk 'BEGIN {for(i=0;i<10000;i++)for(j=0;j<10000;j++);}'`
 * launched over and over, made to have a result: the loop sums i*j modulo a prime, so the job
 * must print the one number the sum gives. The value is computed here in closed form, by another
 * road than the loop's: the sum of all i*j is (sum of i) x (sum of j).
 */
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

/** The modulus of the sums (a prime; every partial sum stays far below 2^31 in awk). */
export const MODULUS = 1_000_003;
/** The inner loop's length. */
export const INNER = 1000;

/** sum over i < outer, j < INNER of i*j, modulo MODULUS: what the awk loop prints. */
export function awkLoopSum(outer: number): number {
  const n = BigInt(outer);
  const m = BigInt(INNER);
  const sumI = (n * (n - 1n) / 2n) % BigInt(MODULUS);
  const sumJ = (m * (m - 1n) / 2n) % BigInt(MODULUS);
  return Number((sumI * sumJ) % BigInt(MODULUS));
}

/** The awk program for `outer` outer loops. */
export function awkLoopProgram(outer: number): string {
  return `BEGIN { s = 0; for (i = 0; i < ${outer}; i++) for (j = 0; j < ${INNER}; j++) ` +
    `s = (s + i * j) % ${MODULUS}; print s }`;
}

/** The awk loop workload. */
export const awkLoop: Workload = {
  name: "awk",
  summary: "the HOWTO's awk loop (14.1), summing i*j so that it has a result",
  needs: ["awk"],
  sizing: "work",
  smallest: 50,
  unit: "outer loops",
  plan(size: number, _params: PlanParams, tag: string): JobPlan {
    return {
      test: "awk",
      argv: ["awk", "-v", `om_stress=${tag}`, awkLoopProgram(size)],
      expected: { kind: "text", text: `${awkLoopSum(size)}\n` },
      exitCode: 0,
      size,
      what: `awk loop: ${size} x ${INNER} additions modulo ${MODULUS}`,
    };
  },
};
