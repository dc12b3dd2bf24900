/**
 * What a workload of `om stress` is: a program that runs as a job (its argv, perhaps bytes for
 * its standard input), sized by one number, and the output it must produce, computed here
 * independently of the run (each workload file holds its TypeScript twin). The judging of a
 * job's output against that expectation is here too, so every workload is checked the same way.
 */
import { cksum, type CksumValue, formatCksum } from "./cksum.ts";

/** The workloads, by the names `--tests` takes, in the order jobs are started. */
export const TEST_NAMES = [
  "awk",
  "portfolio",
  "eatmem",
  "forkit",
  "memory",
  "stream",
  "stdin",
  "pipeline",
] as const;

/** One workload's name. */
export type TestName = (typeof TEST_NAMES)[number];

/** What a job must write on its standard output. */
export type Expected =
  /** Exactly this text. */
  | { readonly kind: "text"; readonly text: string }
  /** Bytes whose `cksum` is this (too many to keep: they are checksummed as they come). */
  | { readonly kind: "cksum"; readonly sum: CksumValue };

/** What a workload needs to know besides its size. */
export interface PlanParams {
  /** CPUs of the nodes that are up, together (forkit forks three children per CPU). */
  readonly cpus: number;
  /** MiB the memory workload holds. */
  readonly memoryMiB: number;
  /** Seconds a paced workload (stdin) should last. */
  readonly seconds: number;
}

/** One job of a workload, ready to start. */
export interface JobPlan {
  readonly test: TestName;
  /** The command line; it carries `tag`, by which om stress finds the job among the node's. */
  readonly argv: readonly string[];
  /** Bytes fed to the job's standard input, spread over `params.seconds`; none: end of file. */
  readonly stdin?: Uint8Array;
  readonly expected: Expected;
  /** The exit status the job must end with. */
  readonly exitCode: number;
  /** The size it was planned with (what its `size` counts: see the workload's `unit`). */
  readonly size: number;
  /** One line saying what it does ("awk loop: 3000 x 1000 additions"). */
  readonly what: string;
}

/** A workload: the programs it needs, how it is sized, and how to plan one job of it. */
export interface Workload {
  readonly name: TestName;
  /** One line for --help. */
  readonly summary: string;
  /** Programs it runs, looked for on PATH; a missing one skips the workload. */
  readonly needs: readonly string[];
  /**
   * "work": its running time grows with its size, measured on this node before the jobs start
   * (calibrate.ts); "paced": it lasts `params.seconds` whatever its size (it waits for input).
   */
  readonly sizing: "work" | "paced";
  /**
   * The size calibration starts from (a fraction of a second's work), at least 1; a paced
   * workload's jobs all have this size.
   */
  readonly smallest: number;
  /** What its size counts ("outer loops", "rounds"). */
  readonly unit: string;
  /** One job of `size`, carrying `tag`. */
  plan(size: number, params: PlanParams, tag: string): JobPlan;
}

/** A job's output and end, as it reached home. */
export interface Produced {
  /** Its standard output, when the expectation is a text (else undefined). */
  readonly text?: string;
  /** The `cksum` of its standard output. */
  readonly sum: CksumValue;
  readonly exitCode: number;
}

/** The verdict on one job's result. */
export interface Judged {
  readonly ok: boolean;
  /** What it produced, said as the expectation is (`describeExpected`). */
  readonly actual: string;
}

const MAX_SHOWN = 72;

/** A text's lines, without the empty one after a final newline. */
function linesOf(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** Quotes a line for a report, cut to a readable length. */
function shown(line: string): string {
  const cut = line.length > MAX_SHOWN ? `${line.slice(0, MAX_SHOWN)}...` : line;
  return JSON.stringify(cut);
}

/** The summary of a text: itself when it is one short line, else its lines and checksum. */
function describeText(text: string): string {
  const lines = linesOf(text);
  if (lines.length === 1 && text.endsWith("\n") && lines[0].length <= MAX_SHOWN) return lines[0];
  const sum = cksum(new TextEncoder().encode(text));
  return `${lines.length} lines, cksum ${formatCksum(sum)}`;
}

/** What the report says a job should produce. */
export function describeExpected(expected: Expected): string {
  return expected.kind === "text"
    ? describeText(expected.text)
    : `${expected.sum.length} bytes, cksum ${formatCksum(expected.sum)}`;
}

/** Where two texts first differ, by line: "line 58 is "57 ok", not "58 ok"". */
export function firstDifference(expected: string, actual: string): string {
  const want = linesOf(expected);
  const got = linesOf(actual);
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (want[i] === got[i]) continue;
    if (got[i] === undefined) return `it ends after line ${i}, before ${shown(want[i])}`;
    if (want[i] === undefined) return `line ${i + 1} is ${shown(got[i])}, after the last one due`;
    return `line ${i + 1} is ${shown(got[i])}, not ${shown(want[i])}`;
  }
  return expected.endsWith("\n") && !actual.endsWith("\n")
    ? "its last line has no newline"
    : "it differs in its line ends";
}

/**
 * Judges a job's output and exit status against what it must produce. A right result is said
 * as the expectation is; a wrong one says how it differs (and the exit status when wrong).
 */
export function judge(plan: Pick<JobPlan, "expected" | "exitCode">, produced: Produced): Judged {
  const exitWrong = produced.exitCode !== plan.exitCode;
  const exitNote = exitWrong ? `exit ${produced.exitCode}, not ${plan.exitCode}` : "";
  const expected = plan.expected;
  let outputOk: boolean;
  let said: string;
  if (expected.kind === "text") {
    const text = produced.text ?? "";
    outputOk = text === expected.text;
    said = outputOk
      ? describeText(text)
      : `${describeText(text)}: ${firstDifference(expected.text, text)}`;
  } else {
    outputOk = produced.sum.crc === expected.sum.crc &&
      produced.sum.length === expected.sum.length;
    said = `${produced.sum.length} bytes, cksum ${formatCksum(produced.sum)}`;
  }
  return {
    ok: outputOk && !exitWrong,
    actual: exitWrong ? `${said}; ${exitNote}` : said,
  };
}
