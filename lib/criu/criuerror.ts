/**
 * How a CRIU run fails: a {@linkcode CriuError} that names the step, criu's exit code, the step's
 * log file, the log's last lines and, when the log says something known, a hint of what to do
 * (the failures met in practice, most specific first). Callers branch on the error's `step`;
 * the person reads its message, which quotes the log's first error line.
 */

/** A CRIU step, as named in errors and log files. */
export type CriuStep = "check" | "version" | "dump" | "pre-dump" | "restore";

/** A CRIU run that failed or a CRIU that is unusable; callers branch on `step`. */
export class CriuError extends Error {
  override name = "CriuError";
  /** The step that failed. */
  readonly step: CriuStep;
  /** criu's exit code; `undefined` when criu could not be started at all. */
  readonly exitCode: number | undefined;
  /** The step's log file, when there is one. */
  readonly logPath: string | undefined;
  /** What to do about it, when the log says something known. */
  readonly hint: string | undefined;
  /** The last lines of the log (or of criu's output), for the person and for bug reports. */
  readonly logTail: readonly string[];
  constructor(
    message: string,
    details: {
      step: CriuStep;
      exitCode?: number;
      logPath?: string;
      hint?: string;
      logTail?: readonly string[];
      cause?: unknown;
    },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.step = details.step;
    this.exitCode = details.exitCode;
    this.logPath = details.logPath;
    this.hint = details.hint;
    this.logTail = details.logTail ?? [];
  }

  /** What travels with this error's text in a channel reply (PROTOCOL.md §8.3): its log. */
  get details(): { logPath?: string } {
    return this.logPath ? { logPath: this.logPath } : {};
  }
}

/** Known failures, most specific first: the first pattern found anywhere in the log wins. */
const HINTS: readonly (readonly [RegExp, string])[] = [
  [
    /Can't connect to (page )?server/,
    "the page server did not answer: is `criu page-server` running on the target?",
  ],
  [
    /Can't fork for PID|clone\(\) failed.*File exists|set_next_pid.*File exists/,
    "the job's PID is taken on this node: jobs must run in their own PID namespace (om run does this)",
  ],
  [
    /Unexpected rt vDSO area bounds/,
    "this criu is too old for the kernel: use criu 4 or later (scripts/install-criu)",
  ],
  [
    /Can't lookup mount/,
    "the job holds a file opened outside its own mount namespace: give a user's job pipes only",
  ],
  [
    /Can't get \/proc fd|unpriviliged task whose \/proc/,
    "the job's PID 1 is not root's and has no /proc of its own: start a user's job with om run",
  ],
  [
    /open_tree|Can't bind-mount at|Unable to mount/,
    "a mount the job sees could not be made on this node: a user's job needs each of its mounts here too, at the same path",
  ],
  [
    /has bad size|File .* has been changed|size mismatch/i,
    "a regular file the job holds open changed since the dump: give jobs pipes, sockets or /dev/null",
  ],
  [
    /outside of the tree|session leader.*outside|is not a session leader/i,
    "the job shares a session with processes outside it: start it in its own session (setsid) or use --shell-job",
  ],
  [
    /external.*unix|Can't dump half of stream unix|unix.*peer.*outside/i,
    "the job has a unix socket connected outside it: allow it with extUnixSk",
  ],
  [/Connected TCP socket|tcp.*established/i, "the job has TCP connections: use tcpEstablished"],
  [
    /inherit.*fd|Unable to reopen the pipe|No such (inherit|fd)/i,
    "an --inherit-fd key or descriptor does not match the dumped file (pipe:[INODE] of the old pipe, criu's own fd)",
  ],
  [
    /Can't open (images )?dir|Can't open image dir|images-dir.*No such file/i,
    "the images directory is missing or unreadable",
  ],
  [
    /No such process|Can't seize|Unable to seize|Can't attach/i,
    "the process is gone or is being traced by someone else",
  ],
  [/Dirty tracking is OFF/, "this kernel has no soft-dirty memory tracking: use stop-and-copy"],
  [/must be run by root|Operation not permitted|EPERM/, "criu needs root"],
];

/** What to tell the person about a CRIU log: the hint of the first known error in it. */
export function hintFor(log: string): string | undefined {
  const meaningful = log.split("\n").filter((line) => !/RLIMIT_NOFILE/.test(line)).join("\n");
  return HINTS.find(([pattern]) => pattern.test(meaningful))?.[1];
}

/** The last `count` meaningful lines of a log (the harmless RLIMIT_NOFILE warning left out). */
export function logTail(log: string, count = 12): string[] {
  return log.split("\n").filter((line) => line.trim() !== "" && !/RLIMIT_NOFILE/.test(line))
    .slice(-count);
}

/**
 * A failed criu run as a CriuError: its step, exit code and log, and the log's first error line.
 * `ended` says how it ended, when not by exiting on its own (default `exited with code CODE`).
 */
export async function criuFailure(
  what: string,
  run: { step: "pre-dump" | "dump" | "restore"; code: number; logPath: string; ended?: string },
): Promise<CriuError> {
  const { step, code, logPath } = run;
  const log = await Deno.readTextFile(logPath).catch(() => "");
  const tail = logTail(log);
  const hint = hintFor(log);
  const cause = tail.find((line) => /Error|Can't|Unable|failed/i.test(line)) ?? tail.at(-1) ??
    "no output";
  return new CriuError(
    `Cannot ${what}: criu ${step} ${run.ended ?? `exited with code ${code}`} (log: ${logPath}): ${
      cause.replace(/^\([\d.]+\)\s*/, "").trim()
    }` + (hint ? `; hint: ${hint}` : ""),
    { step, exitCode: code, logPath, hint, logTail: tail },
  );
}

/** The line that most likely says why: the first error, else the last line. */
function firstError(log: string): string {
  const lines = logTail(log, Infinity);
  const cause = lines.find((line) =>
    /Error|Can't|Unable|failed/i.test(line) && !/(Dumping|Restoring) FAILED/.test(line)
  );
  return (cause ?? lines.at(-1) ?? "no output").replace(/^\([\d.]+\)\s*/, "").trim();
}

/**
 * A criu run that exited with `exitCode` as a CriuError: the step's log (when criu could write
 * it; a log it could not create is not pointed at) and criu's own `output` give the first error
 * line, the tail and the hint.
 */
export async function stepFailure(
  what: string,
  run: { step: CriuStep; exitCode: number; logPath: string | undefined; output: string },
): Promise<CriuError> {
  const { step, exitCode, output } = run;
  let { logPath } = run;
  const logText = logPath ? await Deno.readTextFile(logPath).catch(() => "") : "";
  if (logPath && !logText) logPath = undefined;
  const log = logText + "\n" + output;
  const tail = logTail(log);
  const hint = hintFor(log);
  const where = logPath ? ` (log: ${logPath})` : "";
  return new CriuError(
    `Cannot ${what}: criu ${step} exited with code ${exitCode}${where}: ${firstError(log)}` +
      (hint ? `; hint: ${hint}` : ""),
    { step, exitCode, logPath, hint, logTail: tail },
  );
}

/** A criu that could not be started at all (`error`, from the spawn) as a CriuError with a hint. */
export function notStarted(
  what: string,
  run: { step: CriuStep; binary: string; error: unknown },
): CriuError {
  const { step, binary, error } = run;
  const why = error instanceof Error ? error.message : String(error);
  return new CriuError(`Cannot ${what}: cannot run criu "${binary}": ${why}`, {
    step,
    hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu does both)",
    cause: error,
  });
}
