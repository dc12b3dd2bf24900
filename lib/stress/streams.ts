/**
 * The workloads that test a moved job's standard streams: `stream` writes megabytes through its
 * standard output, checksummed at home as they arrive; `stdin` reads bytes that `om run` feeds it
 * (om stress writes them to `om run` over the job's life) and checksums them itself with `cksum`;
 * `pipeline` is three processes joined by pipes inside the job (an awk producer, an awk
 * transformer, `cksum`). Each expected value is computed here from the bytes the job must see.
 */
import { cksum, formatCksum } from "./cksum.ts";
import type { JobPlan, PlanParams, Workload } from "./workload.ts";

/** Blocks the stream writes; each is 1024 lines of 64 bytes (64 KiB), 8 MiB in all. */
export const STREAM_BLOCKS = 128;
const LINES_PER_BLOCK = 1024;
/** The 54 characters after each stream line's numbers. */
const TAIL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01";

/** The awk program of the stream: `work` steps of busy work before each block. */
export function streamProgram(work: number): string {
  return `BEGIN { for (b = 0; b < ${STREAM_BLOCKS}; b++) { for (k = 0; k < ${work}; k++) ` +
    `x += k % 7; for (l = 0; l < ${LINES_PER_BLOCK}; l++) printf "%03d %04d ${TAIL}\\n", b, l } }`;
}

/** The bytes the stream writes (whatever its work). */
export function streamBytes(): Uint8Array {
  const line = (b: number, l: number) =>
    `${String(b).padStart(3, "0")} ${String(l).padStart(4, "0")} ${TAIL}\n`;
  const parts: string[] = [];
  for (let b = 0; b < STREAM_BLOCKS; b++) {
    for (let l = 0; l < LINES_PER_BLOCK; l++) parts.push(line(b, l));
  }
  return new TextEncoder().encode(parts.join(""));
}

const STREAM_SUM = (() => {
  let sum: ReturnType<typeof cksum> | undefined;
  return () => sum ??= cksum(streamBytes());
})();

/** The stream workload. */
export const stream: Workload = {
  name: "stream",
  summary: "8 MiB through standard output, checksummed at home",
  needs: ["awk"],
  sizing: "work",
  smallest: 200,
  unit: "steps of work per 64 KiB",
  plan(size: number, _params: PlanParams, tag: string): JobPlan {
    return {
      test: "stream",
      argv: ["awk", "-v", `om_stress=${tag}`, streamProgram(size)],
      expected: { kind: "cksum", sum: STREAM_SUM() },
      exitCode: 0,
      size,
      what: `stream: ${
        STREAM_BLOCKS * 64
      } KiB to standard output, ${size} steps of work per 64 KiB`,
    };
  },
};

/** Bytes fed to the stdin workload: 32 KiB per unit of size, of a known pseudo-random pattern. */
export function stdinBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size * 32 * 1024);
  let x = 12345;
  for (let i = 0; i < bytes.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    bytes[i] = x >>> 16 & 0xff;
  }
  return bytes;
}

/** The stdin workload: paced, it lasts as long as om stress takes to feed it. */
export const stdin: Workload = {
  name: "stdin",
  summary: "cksum of bytes om run feeds to the job's standard input over its life",
  needs: ["cksum"],
  sizing: "paced",
  // A paced workload runs at its smallest size: 2 MiB.
  smallest: 64,
  unit: "32 KiB of input",
  plan(size: number, params: PlanParams, tag: string): JobPlan {
    const bytes = stdinBytes(size);
    return {
      test: "stdin",
      argv: ["sh", "-c", "cksum", tag],
      stdin: bytes,
      expected: { kind: "text", text: `${formatCksum(cksum(bytes))}\n` },
      exitCode: 0,
      size,
      what: `stdin: ${bytes.length / 1024} KiB fed over ${params.seconds} s, cksum in the job`,
    };
  },
};

/** Lines the pipeline's producer writes. */
export const PIPELINE_LINES = 2000;

/** The pipeline's sh script: `work` steps of busy work per line produced. */
export function pipelineScript(work: number): string {
  return `awk 'BEGIN { for (i = 0; i < ${PIPELINE_LINES}; i++) { for (k = 0; k < ${work}; k++) ` +
    `x += k % 7; print i } }' | awk '{ print ($1 * 7919) % 65536 }' | cksum`;
}

/** What the pipeline's cksum reads: the transformer's lines. */
export function pipelineBytes(): Uint8Array {
  let text = "";
  for (let i = 0; i < PIPELINE_LINES; i++) text += `${(i * 7919) % 65536}\n`;
  return new TextEncoder().encode(text);
}

/** The pipeline workload. */
export const pipeline: Workload = {
  name: "pipeline",
  summary: "three processes joined by pipes in one job: awk | awk | cksum",
  needs: ["awk", "cksum"],
  sizing: "work",
  smallest: 100,
  unit: "steps of work per line",
  plan(size: number, _params: PlanParams, tag: string): JobPlan {
    return {
      test: "pipeline",
      argv: ["sh", "-c", pipelineScript(size), tag],
      expected: { kind: "text", text: `${formatCksum(cksum(pipelineBytes()))}\n` },
      exitCode: 0,
      size,
      what: `pipeline: awk | awk | cksum, ${PIPELINE_LINES} lines of ${size} steps of work each`,
    };
  },
};
