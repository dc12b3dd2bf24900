/**
 * Running criu, one step at a time: each step writes its own log file, and a failure throws a
 * CriuError (criuerror.ts) with the step, criu's exit code, the log path, the log's last lines and
 * a hint. CRIU itself leaves the job running when a dump fails (it unfreezes the tree) and kills
 * what it created when a restore fails, so "resume where it was" needs nothing more from the
 * caller than not killing the source before the restore succeeded. {@linkcode dump} and
 * {@linkcode restore} run a whole step each (the benchmarks and tests move jobs so); a
 * migration builds its own argv (args.ts) and restores under a waiter (restore.ts).
 */
import { dumpArgs, type DumpArgsOptions, restoreArgs, type RestoreArgsOptions } from "./args.ts";
import { type CriuStep, notStarted, stepFailure } from "./criuerror.ts";
import { asJobUser, type JobUser } from "./jobuser.ts";

/** Which criu to run, and the clock that times the steps (milliseconds, monotonic). */
export interface Criu {
  readonly binary: string;
  readonly now: () => number;
}

const decoder = new TextDecoder();

/**
 * Runs criu with `args` to its end (as the job's `user`, {@linkcode asJobUser}, when given) and
 * returns its exit code and what it printed. Throws a CriuError of `step` when criu cannot be
 * started; `what` is what the caller was doing, for that message.
 */
export async function runCriu(
  criu: Criu,
  run: { step: CriuStep; what: string; args: string[]; user?: JobUser },
): Promise<{ code: number; output: string }> {
  const { step, what, args, user } = run;
  const [program, ...prefix] = [...(user ? asJobUser(user) : []), criu.binary];
  try {
    const result = await new Deno.Command(program, {
      args: [...prefix, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    return {
      code: result.code,
      output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
    };
  } catch (error) {
    throw notStarted(what, { step, binary: criu.binary, error });
  }
}

/** A step that ran: how long it took and where its log is. */
export interface StepResult {
  step: CriuStep;
  ms: number;
  logPath: string;
}

/**
 * Dumps the tree rooted at `pid` into `imagesDir` (which must exist), logging to
 * `<imagesDir>/<step>.log` unless `logFile` is given. Without `leaveRunning` the job is killed
 * once dumped (stop-and-copy); if the dump fails, CRIU resumes the job where it was.
 */
export async function dump(
  criu: Criu,
  options: Omit<DumpArgsOptions, "logFile" | "unprivileged" | "ownMounts"> & {
    logFile?: string;
    action?: "dump" | "pre-dump";
    /** A user's job (in its own mount namespace): criu runs as its user, {@linkcode asJobUser}. */
    user?: JobUser;
  },
): Promise<StepResult> {
  const step = options.action ?? "dump";
  const logPath = options.logFile ?? `${options.imagesDir}/${step}.log`;
  const { user, ...rest } = options;
  const args = dumpArgs(
    { ...rest, logFile: logPath, unprivileged: !!user, ownMounts: !!user },
    step,
  );
  const start = criu.now();
  const what = `dump process "${options.pid}"`;
  const result = await runCriu(criu, { step, what, args, user });
  const ms = criu.now() - start;
  if (result.code !== 0) {
    throw await stepFailure(what, { step, exitCode: result.code, logPath, output: result.output });
  }
  return { step, ms, logPath };
}

/** What criu's own stdin, stdout and stderr are during a restore (the restored job's new pipes). */
export interface RestoreStdio {
  stdin?: "piped" | "null";
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
}

/** A restored job: its host PID, the step's time and log, and the new pipes asked for. */
export interface Restored extends StepResult {
  pid: number;
  /** Write end of the pipe given as criu's fd 0 (the job's stdin when inherited as fd[0]). */
  stdin: WritableStream<Uint8Array> | undefined;
  /** Read end of the pipe given as criu's fd 1. */
  stdout: ReadableStream<Uint8Array> | undefined;
  /** Read end of the pipe given as criu's fd 2. */
  stderr: ReadableStream<Uint8Array> | undefined;
}

/**
 * Restores a job from `imagesDir`, detached (criu exits once the job runs; the job's parent is
 * then the host's init or nearest subreaper). The pipes of `stdio` are criu's own descriptors
 * 0-2 and become the job's when `inheritFds` names them, e.g.
 * `{fd: 1, key: "pipe:[4711]"}` with `stdio.stdout: "piped"`: the returned `stdout` then reads
 * what the job writes to the descriptors that were that old pipe. criu writes its messages to
 * the log file, not to these pipes. If the restore fails, CRIU kills whatever it created.
 */
export async function restore(
  criu: Criu,
  options:
    & Omit<RestoreArgsOptions, "logFile" | "pidfile" | "restoreDetached">
    & { logFile?: string; pidfile?: string; stdio?: RestoreStdio },
): Promise<Restored> {
  const logPath = options.logFile ?? `${options.imagesDir}/restore.log`;
  const pidfile = options.pidfile ?? `${options.imagesDir}/restore.pid`;
  await Deno.remove(pidfile).catch(() => {});
  const args = restoreArgs({ ...options, logFile: logPath, pidfile, restoreDetached: true });
  const what = `restore from "${options.imagesDir}"`;
  const stdio = options.stdio ?? {};
  const start = criu.now();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(criu.binary, {
      args,
      stdin: stdio.stdin ?? "null",
      stdout: stdio.stdout ?? "null",
      stderr: stdio.stderr ?? "null",
    }).spawn();
  } catch (error) {
    throw notStarted(what, { step: "restore", binary: criu.binary, error });
  }
  const status = await child.status;
  const ms = criu.now() - start;
  const streams = {
    stdin: stdio.stdin === "piped" ? child.stdin : undefined,
    stdout: stdio.stdout === "piped" ? child.stdout : undefined,
    stderr: stdio.stderr === "piped" ? child.stderr : undefined,
  };
  const pid = status.code === 0
    ? Number((await Deno.readTextFile(pidfile).catch(() => "")).trim())
    : Number.NaN;
  if (status.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    // criu's messages go to the log; whatever reached the pipes is drained for the error.
    const said = await Promise.all([streams.stdout, streams.stderr].map(async (stream) => {
      if (!stream) return "";
      return decoder.decode(await new Response(stream).arrayBuffer());
    }));
    await streams.stdin?.close().catch(() => {});
    throw await stepFailure(what, {
      step: "restore",
      exitCode: status.code,
      logPath,
      output: said.join(""),
    });
  }
  return { step: "restore", ms, logPath, pid, ...streams };
}
