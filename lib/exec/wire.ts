/**
 * `om exec`'s requests and results (PROTOCOL.md §13): `exec.run` on the node-to-node channel (run
 * this here), `exec.ask` on the local socket (have node N run this), the result both answer with,
 * its readers (every field checked and bounded: a result comes from another node), and the exit
 * status rule.
 */
import { bodyOf } from "../channel/body.ts";
import { decodeBase64, encodeBase64 } from "../jobs/jobwire.ts";

/** What a node keeps of one command's output, stdout and stderr together; the rest is dropped. */
export const OUTPUT_LIMIT = 1024 * 1024;
/** The most words an asked command line may have. */
export const MAX_ARGS = 4096;
/** The most bytes an asked command line may have, its words' UTF-8 together. */
export const MAX_ARGV_BYTES = 128 * 1024;
/** The longest a command may run on a node: one day. */
export const MAX_TIMEOUT_MS = 86_400_000;
/** The longest reason a result carries (a refusal, why a node is down), in characters. */
export const MAX_REASON = 2000;

/** How a command ended on a node, or why it did not run there. */
export type ExecOutcome =
  /** It ran and exited with `code`. */
  | { readonly kind: "exited"; readonly code: number }
  /** A signal killed it: `signal` its name, `code` 128 + its number. */
  | { readonly kind: "signal"; readonly signal: string; readonly code: number }
  /** It ran past its time and its process group was killed (status 124, as timeout(1)). */
  | { readonly kind: "timeout"; readonly afterMs: number }
  /** It could not start: not found (127) or not executable (126), as a shell says. */
  | { readonly kind: "unstartable"; readonly code: 126 | 127; readonly reason: string }
  /** The node would not run it (exec_allow, no key, busy, not root, a bad request). */
  | { readonly kind: "refused"; readonly reason: string }
  /** The node is down (or not in the cluster map): it was not asked. */
  | { readonly kind: "down"; readonly reason: string }
  /** The node was asked but could not be reached, or did not answer in time. */
  | { readonly kind: "unreachable"; readonly reason: string };

/** What one node did with a command: the outcome, the output kept and the bytes dropped. */
export interface ExecResult {
  readonly node: number;
  readonly outcome: ExecOutcome;
  /** Standard output as kept (all of it, or its first part when output was dropped). */
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  /** Bytes of each stream dropped past OUTPUT_LIMIT. */
  readonly dropped: { readonly stdout: number; readonly stderr: number };
  /** How long it ran, in milliseconds (0 when it did not run). */
  readonly ms: number;
}

/** The status that stands for a node that could not run the command at all (as ssh's). */
export const NOT_RUN_STATUS = 255;
/** The status of a command that ran out of time (as timeout(1)'s). */
export const TIMEOUT_STATUS = 124;

/** The exit status one node's outcome counts for (PROTOCOL.md §13, "Exit status"). */
export function statusOf(outcome: ExecOutcome): number {
  switch (outcome.kind) {
    case "exited":
    case "signal":
    case "unstartable":
      return outcome.code;
    case "timeout":
      return TIMEOUT_STATUS;
    default:
      return NOT_RUN_STATUS;
  }
}

/** `om exec`'s exit status: the largest of the nodes' (0 for none). */
export function overallStatus(results: readonly ExecResult[]): number {
  return results.reduce((most, result) => Math.max(most, statusOf(result.outcome)), 0);
}

/** A result for a node that did not run the command: why, in `outcome`. */
export function notRun(
  node: number,
  outcome: { readonly kind: "refused" | "down" | "unreachable"; readonly reason: string },
): ExecResult {
  return {
    node,
    outcome: { kind: outcome.kind, reason: cutReason(outcome.reason) },
    stdout: new Uint8Array(0),
    stderr: new Uint8Array(0),
    dropped: { stdout: 0, stderr: 0 },
    ms: 0,
  };
}

/** A reason cut to MAX_REASON characters. */
export function cutReason(reason: string): string {
  return reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason;
}

/** The body of `exec.run` (channel): the command, its time, and who asked on the asking node. */
export interface RunRequest {
  readonly argv: readonly string[];
  readonly timeoutMs: number;
  /** The asking user's uid on the asking node (0: only root may ask). */
  readonly uid: number;
  /** Their name there, for the log. */
  readonly user: string;
}

/** The body of `exec.ask` (local socket): have `node` run the command. */
export interface AskRequest {
  readonly node: number;
  readonly argv: readonly string[];
  readonly timeoutMs: number;
}

const encoder = new TextEncoder();

/** Why `argv` is no command line om exec carries, or undefined. */
export function argvProblem(argv: unknown): string | undefined {
  if (!Array.isArray(argv) || argv.length === 0) return "no command given";
  if (argv.length > MAX_ARGS) return `more than ${MAX_ARGS} words`;
  if (!argv.every((word) => typeof word === "string")) return "a word that is not a string";
  if (argv.some((word: string) => word.includes("\0"))) return "a word holds a NUL byte";
  const bytes = argv.reduce((sum: number, word: string) => sum + encoder.encode(word).length, 0);
  if (bytes > MAX_ARGV_BYTES) return `more than ${MAX_ARGV_BYTES} bytes`;
  return undefined;
}

/** True for a timeout om exec takes: whole milliseconds, 1 to MAX_TIMEOUT_MS. */
export function isTimeout(ms: unknown): ms is number {
  return Number.isInteger(ms) && (ms as number) >= 1 && (ms as number) <= MAX_TIMEOUT_MS;
}

/** True for a node id: 1 to 65535. */
export function isNodeId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 1 && (id as number) <= 0xffff;
}

/** The asking user's name as exec.run carries it: a user name, or a uid without one. */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/;

/** Reads `exec.run`'s body; throws TypeError naming what is wrong. */
export function readRunRequest(body: Uint8Array): RunRequest {
  const request = bodyOf<RunRequest>(
    "exec.run",
    body,
    (r) =>
      isTimeout(r.timeoutMs) && Number.isInteger(r.uid) && r.uid >= 0 &&
      typeof r.user === "string" && USER_NAME.test(r.user),
  );
  const problem = argvProblem(request.argv);
  if (problem) throw new TypeError(`Cannot read the body of exec.run: ${problem}`);
  return { argv: request.argv, timeoutMs: request.timeoutMs, uid: request.uid, user: request.user };
}

/** Reads `exec.ask`'s body; throws TypeError naming what is wrong. */
export function readAskRequest(body: Uint8Array): AskRequest {
  const request = bodyOf<AskRequest>(
    "exec.ask",
    body,
    (r) => isNodeId(r.node) && isTimeout(r.timeoutMs),
  );
  const problem = argvProblem(request.argv);
  if (problem) throw new TypeError(`Cannot read the body of exec.ask: ${problem}`);
  return { node: request.node, argv: request.argv, timeoutMs: request.timeoutMs };
}

/** A result as JSON (PROTOCOL.md §13): the output in base64. */
export function resultJson(result: ExecResult): Record<string, unknown> {
  return {
    node: result.node,
    outcome: result.outcome,
    stdout: encodeBase64(result.stdout),
    stderr: encodeBase64(result.stderr),
    dropped: result.dropped,
    ms: result.ms,
  };
}

const isCount = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
const isReason = (s: unknown) => typeof s === "string" && s.length <= MAX_REASON;

/** True when `value` is an outcome of one of the kinds, with its fields. */
function isOutcome(value: unknown): value is ExecOutcome {
  if (typeof value !== "object" || value === null) return false;
  const o = value as Record<string, unknown>;
  switch (o.kind) {
    case "exited":
      return Number.isInteger(o.code) && (o.code as number) >= 0 && (o.code as number) <= 255;
    case "signal":
      return typeof o.signal === "string" && /^SIG[A-Z0-9+-]{1,12}$/.test(o.signal) &&
        Number.isInteger(o.code) && (o.code as number) > 128 && (o.code as number) <= 255;
    case "timeout":
      return isTimeout(o.afterMs);
    case "unstartable":
      return (o.code === 126 || o.code === 127) && isReason(o.reason);
    case "refused":
    case "down":
    case "unreachable":
      return isReason(o.reason);
    default:
      return false;
  }
}

/**
 * Reads a result (the reply of `exec.run` or `exec.ask`), every field checked: the output decodes
 * to at most OUTPUT_LIMIT bytes in all. Throws TypeError.
 */
export function readResult(body: Uint8Array, command = "exec.run"): ExecResult {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new TypeError(`Cannot read the reply to ${command}: not JSON`);
  }
  const bad = (why: string) => new TypeError(`Cannot read the reply to ${command}: ${why}`);
  if (typeof value !== "object" || value === null) throw bad("not an object");
  const dropped = value.dropped as Record<string, unknown> | undefined;
  if (
    !isNodeId(value.node) || !isOutcome(value.outcome) || typeof value.stdout !== "string" ||
    typeof value.stderr !== "string" || typeof dropped !== "object" || dropped === null ||
    !isCount(dropped.stdout) || !isCount(dropped.stderr) || !isCount(value.ms)
  ) {
    throw bad("fields missing or of the wrong type");
  }
  // Base64 of OUTPUT_LIMIT bytes, with room for the padding of two strings.
  if (value.stdout.length + value.stderr.length > Math.ceil(OUTPUT_LIMIT / 3) * 4 + 8) {
    throw bad(`more than ${OUTPUT_LIMIT} bytes of output`);
  }
  let stdout: Uint8Array, stderr: Uint8Array;
  try {
    stdout = decodeBase64(value.stdout);
    stderr = decodeBase64(value.stderr);
  } catch {
    throw bad("output that is not base64");
  }
  if (stdout.length + stderr.length > OUTPUT_LIMIT) {
    throw bad(`more than ${OUTPUT_LIMIT} bytes of output`);
  }
  return {
    node: value.node,
    outcome: value.outcome,
    stdout,
    stderr,
    dropped: { stdout: dropped.stdout as number, stderr: dropped.stderr as number },
    ms: value.ms as number,
  };
}
