/**
 * Runs one command for `om exec` on this node (PROTOCOL.md §13, "Running"): without a shell, from
 * argv, as the daemon's user (root), in `/`, with stdin on /dev/null and a fixed environment; the
 * command runs in a cgroup of its own (lib/exec/cgroup.ts) and leads a process group of its own
 * (`setsid`, which execs it in place), so that at its time limit everything it started is killed
 * (SIGKILL), what left its group too, not only the process asked for. A bare name is
 * looked up in the fixed PATH, never in anything the asker sent; a name that is not found is
 * status 127 and a file that cannot be executed 126, without starting anything, as a shell says.
 * The output is kept up to a limit (lib/exec/capture.ts) while the pipes are drained to the end, so
 * a command that writes much is not blocked by a full pipe. A process that keeps the pipes open
 * after the command ended (a daemon it started) is let go AFTER_END_MS after the end.
 */
import type { Clock } from "../base/clock.ts";
import { CLOSE_FDS } from "../criu/startjob.ts";
import { OutputCapture } from "./capture.ts";
import { type CommandCgroup, commandCgroup } from "./cgroup.ts";
import type { ExecResult } from "./wire.ts";
import { OUTPUT_LIMIT } from "./wire.ts";

/** The PATH commands are looked up in, and run with. */
export const EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** How long the pipes are read after the command ended (something it started may hold them). */
export const AFTER_END_MS = 1000;

/** What a command is run with. */
export interface RunOptions {
  readonly timeoutMs: number;
  readonly clock: Clock;
  /** Variables besides PATH, HOME, USER, LOGNAME and LANG (the daemon's OM_ROOT, OM_CONFIG). */
  readonly env?: Readonly<Record<string, string>>;
  /** Default OUTPUT_LIMIT. */
  readonly outputLimit?: number;
  /** Default AFTER_END_MS. */
  readonly afterEndMs?: number;
  /** Aborting kills the command's process group (the daemon stops). */
  readonly signal?: AbortSignal;
  /** Default EXEC_PATH. */
  readonly path?: string;
  /** Makes the command's cgroup; default commandCgroup (undefined: the process group alone). */
  readonly cgroup?: () => Promise<CommandCgroup | undefined>;
}

/**
 * Perl that puts itself in the cgroup whose `cgroup.procs` is its first argument (when not empty)
 * before anything else, so that nothing the command starts runs outside it; then CLOSE_FDS.
 */
const ENTER_CGROUP = 'my $g = shift; if ($g ne "") { my $e = "Cannot enter the command\'s ' +
  'cgroup $g"; sysopen(my $c, $g, 1) or die "$e: $!\n"; ' + // 1: O_WRONLY, never O_CREAT
  'defined(syswrite($c, "$$\n")) or die "$e: $!\n"; close($c) } ';

/** The file `name` runs as: found, or the status and words of a shell that cannot run it. */
export type Resolved =
  | { readonly path: string }
  | { readonly code: 126 | 127; readonly reason: string };

async function statOf(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch {
    return undefined;
  }
}

/**
 * Finds the program `name` stands for: a path as it is, a bare name in the directories of
 * `searchPath`, as a shell would (the first executable regular file).
 */
export async function resolveCommand(name: string, searchPath = EXEC_PATH): Promise<Resolved> {
  const executable = (info: Deno.FileInfo) => info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  if (name.includes("/")) {
    const info = await statOf(name);
    if (!info) return { code: 127, reason: `${name}: No such file or directory` };
    if (info.isDirectory) return { code: 126, reason: `${name}: Is a directory` };
    if (!executable(info)) return { code: 126, reason: `${name}: Permission denied` };
    return { path: name };
  }
  for (const dir of searchPath.split(":").filter(Boolean)) {
    const path = `${dir}/${name}`;
    const info = await statOf(path);
    if (info && executable(info)) return { path };
  }
  return { code: 127, reason: `${name}: command not found` };
}

/** Kills the process group `pid` leads, or the process alone before it leads one. */
function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** Runs `argv` as the header says; never throws for the command's sake. */
export async function runCommand(
  argv: readonly string[],
  options: RunOptions,
): Promise<Omit<ExecResult, "node">> {
  const { clock } = options;
  const searchPath = options.path ?? EXEC_PATH;
  const started = clock.now();
  const empty = new Uint8Array(0);
  const unstartable = (code: 126 | 127, reason: string): Omit<ExecResult, "node"> => ({
    outcome: { kind: "unstartable", code, reason },
    stdout: empty,
    stderr: empty,
    dropped: { stdout: 0, stderr: 0 },
    ms: clock.now() - started,
  });
  const found = await resolveCommand(argv[0], searchPath);
  if (!("path" in found)) return unstartable(found.code, found.reason);
  const setsid = await resolveCommand("setsid", searchPath);
  if (!("path" in setsid)) return unstartable(127, "setsid (util-linux) is not on this node");

  const perl = await resolveCommand("perl", searchPath);
  if (!("path" in perl)) return unstartable(127, "perl is not on this node");

  const group = await (options.cgroup ?? commandCgroup)();
  let child: Deno.ChildProcess;
  try {
    // perl enters the command's cgroup, closes every descriptor above 2 the daemon inherited
    // without close-on-exec (as a job's start does), then becomes setsid, which makes the
    // command lead its own group.
    const procs = group ? `${group.path}/cgroup.procs` : "";
    child = new Deno.Command(perl.path, {
      args: [
        "-e",
        ENTER_CGROUP + CLOSE_FDS,
        "--",
        procs,
        setsid.path,
        "--",
        found.path,
        ...argv.slice(1),
      ],
      clearEnv: true,
      env: {
        ...options.env,
        PATH: searchPath,
        HOME: "/root",
        USER: "root",
        LOGNAME: "root",
        LANG: "C.UTF-8",
      },
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    await group?.release();
    return unstartable(
      error instanceof Deno.errors.NotFound ? 127 : 126,
      `${argv[0]}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }

  const capture = new OutputCapture(options.outputLimit ?? OUTPUT_LIMIT);
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  const pumps = Promise.all(readers.map(async (reader, i) => {
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        capture.add(i === 0 ? "stdout" : "stderr", value);
      }
    } catch { /* a pipe that fails has ended */ }
  }));
  let timedOut = false;
  const killAll = () => {
    killGroup(child.pid);
    void group?.kill();
  };
  const cancelTimer = clock.after(options.timeoutMs, () => {
    timedOut = true;
    killAll();
  });
  const abort = killAll;
  options.signal?.addEventListener("abort", abort);
  if (options.signal?.aborted) abort();
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    cancelTimer();
    options.signal?.removeEventListener("abort", abort);
  }
  const ended = clock.now();
  // What the command left behind at the time limit (or as the daemon stops) goes too; after an
  // end of its own, what it left running (a service it started) stays, out of its cgroup.
  if (timedOut || options.signal?.aborted) {
    killGroup(child.pid);
    await group?.kill();
  } else {
    await group?.release();
  }
  let stopLinger = () => {};
  const linger = new Promise<void>((resolve) => {
    stopLinger = clock.after(options.afterEndMs ?? AFTER_END_MS, resolve);
  });
  await Promise.race([pumps, linger]);
  stopLinger();
  await Promise.all(readers.map((reader) => reader.cancel().catch(() => {})));
  await pumps;

  const output = capture.result();
  const outcome = timedOut
    ? { kind: "timeout" as const, afterMs: options.timeoutMs }
    : status.signal
    ? { kind: "signal" as const, signal: status.signal, code: status.code }
    : { kind: "exited" as const, code: status.code };
  return { outcome, ...output, ms: ended - started };
}
