/**
 * The CRIU driver: om checkpoints and restores jobs through CRIU's command line (as go-criu and
 * p.haul do), never through a library. Each argv is built by a pure function (tested without
 * CRIU), each step writes its own log file, and a failure throws {@linkcode CriuError} with the
 * step, criu's exit code, the log path, the log's last lines and a hint. CRIU itself leaves the
 * job running when a dump fails (it unfreezes the tree) and kills what it created when a restore
 * fails, so "resume where it was" needs nothing more from the caller than not killing the source
 * before the restore succeeded.
 *
 * How jobs must run to move (found on these machines, see ../../shared/notes/platform.md and
 * {@linkcode startJob}): PID 1 of their own PID namespace, leader of their own session, stdio on
 * pipes; root's in the host's mount namespace, a user's in one of its own, dumped by criu run as
 * that user ({@linkcode asJobUser}). A restore re-attaches the job's stdio to new pipes with
 * `--inherit-fd fd[N]:pipe:[INODE]`, where INODE is the old pipe's inode (from the link
 * `/proc/<pid>/fd/N` before the dump) and N is one of criu's OWN descriptors. Deno cannot hand
 * a child descriptors other than 0, 1 and 2, so the new pipes are the `criu restore` process's
 * own stdin, stdout and stderr: criu logs to its log file, not to them, and the restored job
 * keeps them after criu exits. Pipe data: CRIU saves unread bytes only of pipes whose READ end
 * the job holds (its stdin); it does not put them back into an inherited pipe, so bytes the job
 * had not yet read from stdin at dump time are in the images (pipes-data.img) but not in the new
 * pipe. Bytes the job wrote to stdout and nobody read yet stay in the OLD pipe, which its reader
 * drains to EOF: nothing is lost or doubled.
 *
 * Exit status after a restore: with `--restore-detached` the job's parent becomes the host's init
 * (or nearest subreaper) and its status is lost; without it criu waits for the job but exits 0
 * whatever the job's status (criu only `wait(NULL)`s). What returned the job's status here:
 * `--restore-detached --restore-sibling` (the job becomes a child of criu's PARENT) under a
 * parent that waits for any child, e.g. `perl -e 'system(@ARGV) == 0 or exit 125; wait();
 * exit($? >> 8)' criu restore ...` (perl-base is in every Debian); Deno itself cannot wait for a
 * child it did not spawn.
 */

import { retryUntil, type WaitClock } from "../base/retry.ts";

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
}

/** Which criu to run, and the clock that times the steps (milliseconds, monotonic). */
export interface Criu {
  readonly binary: string;
  readonly now: () => number;
}

/**
 * Finds CRIU as om does: `$OM_CRIU` if set, else the first executable `criu` on `PATH`.
 * Returns `undefined` when there is none; whether it works is {@linkcode preflight}'s business.
 */
export function findCriu(env: (name: string) => string | undefined): string | undefined {
  const explicit = env("OM_CRIU");
  if (explicit) return explicit;
  for (const dir of (env("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const candidate = `${dir}/criu`;
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// argv builders (pure)

/** `criu check` (the whole check), or `criu check --feature NAME`. */
export function checkArgs(feature?: string): string[] {
  return feature === undefined ? ["check"] : ["check", "--feature", feature];
}

/** Options of a dump or pre-dump. */
export interface DumpArgsOptions {
  /** Host PID of the tree's root (the job's PID 1). */
  pid: number;
  /** Where the images go; must exist. */
  imagesDir: string;
  /** The step's log file (absolute; criu resolves a relative one against its work dir). */
  logFile: string;
  /** `--leave-running`: the job goes on after the dump (else CRIU kills it once dumped). */
  leaveRunning?: boolean;
  /** `--leave-stopped`: the job stays, stopped, after the dump (a migration's source copy). */
  leaveStopped?: boolean;
  /** `--track-mem`: start dirty-memory tracking, for a later pre-dump or dump on top. */
  trackMem?: boolean;
  /** `--prev-images-dir`: the previous (pre-)dump's images, RELATIVE to `imagesDir` (CRIU's rule). */
  prevImagesDir?: string;
  /** `--shell-job`: the job shares a session or terminal with something outside the tree. */
  shellJob?: boolean;
  /** `--ext-unix-sk`: allow unix sockets whose peer is outside the tree. */
  extUnixSk?: boolean;
  /** `--tcp-established`: checkpoint established TCP connections. */
  tcpEstablished?: boolean;
  /** `--file-locks`: checkpoint file locks. */
  fileLocks?: boolean;
  /** `--page-server --address --port`: send the pages to a `criu page-server` instead. */
  pageServer?: { address: string; port: number };
  /**
   * `--page-server --ps-socket N`: send the pages to a `criu page-server` over descriptor N, a
   * connection already made (lib/migration/pagelink.ts); excludes `pageServer`.
   */
  psSocket?: number;
  /**
   * `--unprivileged`: criu runs as the job's user (with root's capabilities as ambient ones,
   * {@linkcode asJobUser}), as it must for a job that is not root's.
   */
  unprivileged?: boolean;
  /**
   * `--external mnt[]`: the job has a mount namespace of its own (a user's job,
   * {@linkcode startJobArgs}); its mounts, copies of the host's, are dumped as external ones,
   * by path, and their contents stay behind (its /proc is made anew on restore).
   */
  ownMounts?: boolean;
  /** `--action-script PATH`: a program criu runs at each step (lib/migration/pagelink.ts DUMP_GATE). */
  actionScript?: string;
  /** Log verbosity 0-4; default 4 (the log is the only trace of a failed migration). */
  verbosity?: number;
}

/** `criu dump` (or `criu pre-dump` with `action`), in the order criu's own docs list options. */
export function dumpArgs(
  options: DumpArgsOptions,
  action: "dump" | "pre-dump" = "dump",
): string[] {
  if (!Number.isInteger(options.pid) || options.pid <= 0) {
    throw new RangeError(`Cannot dump process "${options.pid}": not a process id`);
  }
  if (options.prevImagesDir?.startsWith("/")) {
    throw new RangeError(
      `Cannot use previous images "${options.prevImagesDir}": must be relative to the images dir`,
    );
  }
  const argv = [
    action,
    "--tree",
    String(options.pid),
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
  ];
  if (options.leaveRunning && options.leaveStopped) {
    throw new TypeError("Cannot leave the job both running and stopped");
  }
  if (options.leaveRunning) argv.push("--leave-running");
  if (options.leaveStopped) argv.push("--leave-stopped");
  if (options.trackMem) argv.push("--track-mem");
  if (options.prevImagesDir !== undefined) argv.push("--prev-images-dir", options.prevImagesDir);
  if (options.shellJob) argv.push("--shell-job");
  if (options.extUnixSk) argv.push("--ext-unix-sk");
  if (options.tcpEstablished) argv.push("--tcp-established");
  if (options.fileLocks) argv.push("--file-locks");
  if (options.unprivileged) argv.push("--unprivileged");
  if (options.ownMounts) argv.push("--external", "mnt[]");
  if (options.actionScript !== undefined) argv.push("--action-script", options.actionScript);
  if (options.pageServer && options.psSocket !== undefined) {
    throw new TypeError("Cannot dump to a page server: give an address or a socket, not both");
  }
  if (options.psSocket !== undefined) {
    if (!Number.isInteger(options.psSocket) || options.psSocket < 0) {
      throw new RangeError(`Cannot use socket "${options.psSocket}": not a descriptor number`);
    }
    argv.push("--page-server", "--ps-socket", String(options.psSocket));
  }
  if (options.pageServer) {
    argv.push(
      "--page-server",
      "--address",
      options.pageServer.address,
      "--port",
      String(options.pageServer.port),
    );
  }
  return argv;
}

/** Options of a page server (the receiving end of a dump's `--page-server`). */
export interface PageServerArgsOptions {
  /** Where the pages (pagemap-*.img, pages-*.img) go; must exist. */
  imagesDir: string;
  logFile: string;
  /** `--ps-socket N`: serve the connection already made on descriptor N (lib/migration/pagelink.ts). */
  psSocket: number;
  /**
   * `--prev-images-dir`: the previous pre-dump's pages, RELATIVE to `imagesDir`; criu links it
   * as `parent` there, where the restore finds the pages the last round did not send again.
   */
  prevImagesDir?: string;
  verbosity?: number;
}

/** `criu page-server` serving one connection: it exits once the dump has sent everything. */
export function pageServerArgs(options: PageServerArgsOptions): string[] {
  if (!Number.isInteger(options.psSocket) || options.psSocket < 0) {
    throw new RangeError(`Cannot use socket "${options.psSocket}": not a descriptor number`);
  }
  if (options.prevImagesDir?.startsWith("/")) {
    throw new RangeError(
      `Cannot use previous images "${options.prevImagesDir}": must be relative to the images dir`,
    );
  }
  return [
    "page-server",
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
    "--ps-socket",
    String(options.psSocket),
    ...(options.prevImagesDir !== undefined ? ["--prev-images-dir", options.prevImagesDir] : []),
  ];
}

/** One descriptor handed to the restored tree: criu's own `fd` stands for the dumped file `key`. */
export interface InheritFd {
  /** criu's descriptor (0, 1 or 2 when criu is started by Deno). */
  fd: number;
  /** What CRIU calls the dumped file: `pipe:[INODE]`, `socket:[INODE]`, or a path. */
  key: string;
}

/** Options of a restore. */
export interface RestoreArgsOptions {
  imagesDir: string;
  logFile: string;
  /** criu writes the restored root's host PID here. */
  pidfile: string;
  inheritFds?: readonly InheritFd[];
  /** `--restore-detached`: criu exits once the tree runs (default true). */
  restoreDetached?: boolean;
  /** `--restore-sibling`: the root becomes a child of criu's parent, not of criu. */
  restoreSibling?: boolean;
  /** `--leave-stopped`: the restored tree stays stopped (SIGSTOP) until someone continues it. */
  leaveStopped?: boolean;
  shellJob?: boolean;
  extUnixSk?: boolean;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  /**
   * `--root / --external mnt[]`: the images hold a mount namespace of the job's own (dumped with
   * `ownMounts`): it is made anew, each of its mounts bound from this host's same path.
   */
  ownMounts?: boolean;
  /**
   * `--auto-dedup`: criu frees the pages of the images (punches holes in `pages-*.img`) as it
   * restores them, so the node holds the job's memory once, not twice, and the restore reuses
   * the memory just freed.
   */
  autoDedup?: boolean;
  verbosity?: number;
}

/** `criu restore`. */
export function restoreArgs(options: RestoreArgsOptions): string[] {
  const argv = [
    "restore",
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
    "--pidfile",
    options.pidfile,
  ];
  if (options.restoreDetached ?? true) argv.push("--restore-detached");
  if (options.restoreSibling) argv.push("--restore-sibling");
  if (options.leaveStopped) argv.push("--leave-stopped");
  if (options.shellJob) argv.push("--shell-job");
  if (options.extUnixSk) argv.push("--ext-unix-sk");
  if (options.tcpEstablished) argv.push("--tcp-established");
  if (options.fileLocks) argv.push("--file-locks");
  if (options.ownMounts) argv.push("--root", "/", "--external", "mnt[]");
  if (options.autoDedup) argv.push("--auto-dedup");
  for (const { fd, key } of options.inheritFds ?? []) {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new RangeError(`Cannot inherit descriptor "${fd}": not a descriptor number`);
    }
    argv.push("--inherit-fd", `fd[${fd}]:${key}`);
  }
  return argv;
}

/**
 * Whether the images in `imagesDir` hold a mount namespace of the job's own (a user's job:
 * `mountpoints-N.img`), to be restored with `ownMounts`. A job in the host's mount namespace has
 * none: CRIU leaves the namespace it runs in out of the images.
 */
export async function hasOwnMounts(imagesDir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(imagesDir)) {
    if (/^mountpoints-\d+\.img$/.test(entry.name)) return true;
  }
  return false;
}

/** A CRIU version, from `criu --version`. */
export interface CriuVersion {
  major: number;
  minor: number;
  patch: number;
  /** As criu printed it ("4.1.1"). */
  text: string;
}

/** Reads `Version: 4.1.1` (or `4.1`) out of `criu --version`; `undefined` if absent. */
export function parseVersion(output: string): CriuVersion | undefined {
  const match = /^Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/m.exec(output);
  if (!match) return undefined;
  return {
    major: Number(match[1]),
    minor: Number(match[2]),
    patch: Number(match[3] ?? 0),
    text: match[0].replace(/^Version:\s*/, ""),
  };
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

// ---------------------------------------------------------------------------------------------
// running criu

const decoder = new TextDecoder();

async function readLog(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** The line that most likely says why: the first error, else the last line. */
function firstError(log: string): string {
  const lines = logTail(log, Infinity);
  const cause = lines.find((line) =>
    /Error|Can't|Unable|failed/i.test(line) && !/(Dumping|Restoring) FAILED/.test(line)
  );
  return (cause ?? lines.at(-1) ?? "no output").replace(/^\([\d.]+\)\s*/, "").trim();
}

async function failure(
  step: CriuStep,
  what: string,
  exitCode: number,
  logPath: string | undefined,
  output: string,
): Promise<CriuError> {
  // A log criu could not create (its directory missing) is not pointed at.
  const logText = logPath ? await readLog(logPath) : "";
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

function notStarted(step: CriuStep, what: string, binary: string, error: unknown): CriuError {
  const why = error instanceof Error ? error.message : String(error);
  return new CriuError(`Cannot ${what}: cannot run criu "${binary}": ${why}`, {
    step,
    hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu does both)",
    cause: error,
  });
}

async function run(
  criu: Criu,
  step: CriuStep,
  what: string,
  args: string[],
  user?: JobUser,
): Promise<{ code: number; output: string }> {
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
    throw notStarted(step, what, criu.binary, error);
  }
}

/** What {@linkcode preflight} found. */
export interface Preflight {
  binary: string;
  version: CriuVersion;
  /** Whether `criu check --feature mem_dirty_track` passed (iterative pre-copy possible). */
  memDirtyTrack: boolean;
}

/**
 * Checks, before anything is frozen, that this CRIU works here: `criu check` passes and
 * `criu --version` is at least `minVersion` (default 4.0: 3.17 fails on kernel 6.18). With
 * `logDir`, the outputs go to `check.log` and `version.log` there. Throws CriuError.
 */
export async function preflight(
  criu: Criu,
  options: { logDir?: string; minVersion?: readonly [number, number] } = {},
): Promise<Preflight> {
  const [minMajor, minMinor] = options.minVersion ?? [4, 0];
  const keep = async (name: string, text: string) => {
    if (!options.logDir) return undefined;
    const path = `${options.logDir}/${name}`;
    await Deno.writeTextFile(path, text);
    return path;
  };
  const check = await run(criu, "check", "use CRIU", checkArgs());
  const checkLog = await keep("check.log", check.output);
  if (check.code !== 0) {
    throw await failure("check", "use CRIU", check.code, checkLog, check.output);
  }

  const version = await run(criu, "version", "use CRIU", ["--version"]);
  const versionLog = await keep("version.log", version.output);
  const parsed = parseVersion(version.output);
  if (version.code !== 0 || !parsed) {
    throw await failure("version", "use CRIU", version.code, versionLog, version.output);
  }
  if (parsed.major < minMajor || (parsed.major === minMajor && parsed.minor < minMinor)) {
    throw new CriuError(
      `Cannot use CRIU "${criu.binary}": version ${parsed.text} is older than ${minMajor}.${minMinor}`,
      {
        step: "version",
        exitCode: 0,
        logPath: versionLog,
        hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu)",
        logTail: logTail(version.output),
      },
    );
  }
  return { binary: criu.binary, version: parsed, memDirtyTrack: await featureMemDirtyTrack(criu) };
}

/** Whether the kernel lets CRIU track dirty memory (`criu check --feature mem_dirty_track`). */
export async function featureMemDirtyTrack(criu: Criu): Promise<boolean> {
  const result = await run(criu, "check", "check CRIU's features", checkArgs("mem_dirty_track"));
  return result.code === 0;
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
  const result = await run(criu, step, `dump process "${options.pid}"`, args, user);
  const ms = criu.now() - start;
  if (result.code !== 0) {
    throw await failure(step, `dump process "${options.pid}"`, result.code, logPath, result.output);
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
    throw notStarted("restore", what, criu.binary, error);
  }
  const status = await child.status;
  const ms = criu.now() - start;
  const streams = {
    stdin: stdio.stdin === "piped" ? child.stdin : undefined,
    stdout: stdio.stdout === "piped" ? child.stdout : undefined,
    stderr: stdio.stderr === "piped" ? child.stderr : undefined,
  };
  const pid = status.code === 0 ? Number((await readLog(pidfile)).trim()) : Number.NaN;
  if (status.code !== 0 || !Number.isInteger(pid) || pid <= 0) {
    // criu's messages go to the log; whatever reached the pipes is drained for the error.
    const said = await Promise.all([streams.stdout, streams.stderr].map(async (stream) => {
      if (!stream) return "";
      return decoder.decode(await new Response(stream).arrayBuffer());
    }));
    await streams.stdin?.close().catch(() => {});
    throw await failure("restore", what, status.code, logPath, said.join(""));
  }
  return { step: "restore", ms, logPath, pid, ...streams };
}

// ---------------------------------------------------------------------------------------------
// starting a job that can move

/** A job started by {@linkcode startJob}. */
export interface StartedJob {
  /** Host PID of the job: PID 1 of its own PID namespace; the root of every dump. */
  pid: number;
  /** The `unshare` process, parent of the job; it exits with the job's status (until a dump). */
  process: Deno.ChildProcess;
}

/**
 * Perl (perl-base is in every Debian) that closes every descriptor but 0, 1 and 2 (through
 * PerlIO: POSIX.pm costs 10 ms) and execs its arguments: a job must not inherit what its starter
 * happened to hold open (a shell's /dev/null on 10, a socket), which CRIU would have to dump and
 * might not ("Can't lookup mount", external socket).
 */
export const CLOSE_FDS = 'opendir(my $d, "/proc/self/fd") or die "/proc/self/fd: $!\\n"; ' +
  "my @fds = grep { /^\\d+$/ && $_ > 2 } readdir($d); closedir($d); " +
  'for (@fds) { open(my $h, "<&=", $_) and close($h) } ' +
  'exec { $ARGV[0] } @ARGV or die "$ARGV[0]: $!\\n"';

/**
 * Unmounts every nsfs mount (`ip netns add`'s /run/netns/NAME) in a user's job's own mount
 * namespace, then execs its arguments. Their copies would keep those network namespaces'
 * files busy (`ip netns del` fails while the job runs), and CRIU cannot restore them (it binds
 * them as directories: "Not a directory").
 */
export const DROP_NSFS = 'umount -a -t nsfs 2>/dev/null; exec "$@"';

/**
 * The argv that starts `command` so that CRIU can move it:
 * `perl -e CLOSE_FDS -- unshare --pid --fork -- setsid -- command...`.
 * - `unshare --pid` gives the job a PID namespace of its own, so that on restore it gets its
 *   PIDs back in a fresh namespace and never clashes with PIDs taken on the target ("Can't fork
 *   for PID: File exists").
 * - `--fork`: a new PID namespace applies to children only; unshare forks, and its child is the
 *   namespace's PID 1, the root CRIU dumps (its children, the job's children, come along).
 * - `setsid` (run by that child, before exec): a new session and process group led by the job,
 *   so the dumped tree holds its own session leader (otherwise CRIU refuses, or needs
 *   --shell-job). The child of unshare is not a group leader, so setsid does not fork again: the
 *   command itself is PID 1.
 * - No `--kill-child`: it sets a parent-death signal, which CRIU dumps and restores, so the
 *   restored job would be killed when criu (its parent at restore) exits.
 * - `ownMounts` (a user's job): `--mount --mount-proc` too, a mount namespace of its own (a
 *   private copy of the host's mounts) with a /proc of the job's PID namespace. CRIU's parasite
 *   needs such a /proc in the dumped PID 1 and mounts one itself only when that PID 1 is root's.
 *   Its stdio must be pipes then: a file opened outside the namespace (/dev/null) cannot be
 *   dumped ("Can't lookup mount"). Root's jobs keep the host's mount namespace.
 *   Before setsid, a root shell there unmounts the namespace's nsfs mounts
 *   ({@linkcode DROP_NSFS}).
 */
export function startJobArgs(
  command: readonly string[],
  options: { ownMounts?: boolean } = {},
): string[] {
  if (command.length === 0) throw new RangeError("Cannot start a job: no command");
  const mounts = options.ownMounts
    ? ["--mount", "--mount-proc", "--propagation", "private", "--", "sh", "-c", DROP_NSFS, "om-job"]
    : ["--"];
  return [
    "perl",
    "-e",
    CLOSE_FDS,
    "--",
    "unshare",
    "--pid",
    "--fork",
    ...mounts,
    "setsid",
    "--",
    ...command,
  ];
}

/**
 * Starts `command` as a job that can be checkpointed ({@linkcode startJobArgs}) with its stdio
 * on pipes or /dev/null (never regular files: CRIU checks their size on restore), and waits
 * until its PID 1 exists (polled: it appears within milliseconds).
 */
export async function startJob(
  command: readonly string[],
  options: {
    stdin?: "piped" | "null";
    stdout?: "piped" | "null";
    stderr?: "piped" | "null";
    env?: Record<string, string>;
    cwd?: string;
    /** A mount namespace and /proc of its own ({@linkcode startJobArgs}). */
    ownMounts?: boolean;
    /** The clock the wait for PID 1 polls with (default: the real one; 2 s at most). */
    clock?: WaitClock;
  } = {},
): Promise<StartedJob> {
  const [program, ...args] = startJobArgs(command, { ownMounts: options.ownMounts });
  const process = new Deno.Command(program, {
    args,
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: options.stderr ?? "piped",
    env: options.env,
    cwd: options.cwd,
  }).spawn();
  try {
    const pid = await retryUntil(() => namespacePid1(process.pid), 2000, {
      intervalMs: 5,
      what: "the job's PID 1",
      clock: options.clock,
    });
    return { pid, process };
  } catch (error) {
    try {
      process.kill("SIGKILL");
    } catch {
      // already gone
    }
    await process.status;
    throw new Error(`Cannot start job "${command.join(" ")}": its PID 1 did not appear`, {
      cause: error,
    });
  }
}

/**
 * The host PID of the PID-1 child of `parent` (the `unshare --pid --fork` process of a job), or
 * undefined while it does not exist yet.
 */
export async function namespacePid1(parent: number): Promise<number | undefined> {
  const children = await readLog(`/proc/${parent}/task/${parent}/children`);
  const pid = Number(children.trim().split(/\s+/)[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const status = await readLog(`/proc/${pid}/status`);
  // NSpid: host PID, then the PID in each nested namespace; the last must be 1.
  const nspid = /^NSpid:\s*(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
  return nspid?.at(-1) === "1" ? pid : undefined;
}

/**
 * Whether process `pid` has a mount namespace other than this process's: CRIU then dumps it
 * (`mountpoints-N.img`, see hasOwnMounts). A user's job has one (startJobArgs).
 */
export async function ownMounts(pid: number): Promise<boolean> {
  const [job, self] = await Promise.all([
    Deno.readLink(`/proc/${pid}/ns/mnt`),
    Deno.readLink("/proc/self/ns/mnt"),
  ]);
  return job !== self;
}

/** The key CRIU knows descriptor `fd` of process `pid` by (`pipe:[INODE]`, `socket:[...]`, a path). */
export async function fdKey(pid: number, fd: number): Promise<string> {
  return await Deno.readLink(`/proc/${pid}/fd/${fd}`);
}

// ---------------------------------------------------------------------------------------------
// users' jobs

/** Linux's capabilities by number (linux/capability.h), as setpriv names them. */
const CAPABILITIES = [
  "chown",
  "dac_override",
  "dac_read_search",
  "fowner",
  "fsetid",
  "kill",
  "setgid",
  "setuid",
  "setpcap",
  "linux_immutable",
  "net_bind_service",
  "net_broadcast",
  "net_admin",
  "net_raw",
  "ipc_lock",
  "ipc_owner",
  "sys_module",
  "sys_rawio",
  "sys_chroot",
  "sys_ptrace",
  "sys_pacct",
  "sys_admin",
  "sys_boot",
  "sys_nice",
  "sys_resource",
  "sys_time",
  "sys_tty_config",
  "mknod",
  "lease",
  "audit_write",
  "audit_control",
  "setfcap",
  "mac_override",
  "mac_admin",
  "syslog",
  "wake_alarm",
  "block_suspend",
  "audit_read",
  "perfmon",
  "bpf",
  "checkpoint_restore",
] as const;

/** The capabilities of a hex mask (`CapEff:` of /proc/PID/status) as setpriv names them. */
export function capabilityNames(mask: string): string[] {
  if (!/^[0-9a-f]{1,16}$/i.test(mask)) throw new RangeError(`Cannot read capabilities "${mask}"`);
  const bits = BigInt(`0x${mask}`);
  return CAPABILITIES.filter((_, n) => ((bits >> BigInt(n)) & 1n) === 1n);
}

/** Whom a user's job is dumped as: its user and group, with the daemon's capabilities. */
export interface JobUser {
  readonly uid: number;
  readonly gid: number;
  /** Capabilities criu keeps (setpriv names); the daemon's own. */
  readonly caps: readonly string[];
}

/**
 * The argv prefix that runs criu as the job's user, keeping `caps` as inheritable and ambient
 * capabilities through exec: `setpriv --reuid --regid --clear-groups --inh-caps --ambient-caps
 * --`. CRIU reads each task's limits with prlimit(2), which another uid may do only with
 * CAP_SYS_RESOURCE (missing on some hosts, e.g. in containers), the same uid and gid always; the
 * rest of the dump needs the capabilities (ptrace, the parasite, the namespaces). The job's user
 * cannot trace such a process (it has more capabilities than the user), only signal it, which
 * fails its own job's dump, and the job goes on.
 */
export function asJobUser(user: JobUser): string[] {
  if (!Number.isInteger(user.uid) || user.uid <= 0 || !Number.isInteger(user.gid) || user.gid < 0) {
    throw new RangeError(`Cannot dump as user ${user.uid}:${user.gid}: not a user's ids`);
  }
  const caps = ["-all", ...user.caps.map((c) => `+${c}`)].join(",");
  return [
    "setpriv",
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--clear-groups",
    `--inh-caps=${caps}`,
    `--ambient-caps=${caps}`,
    "--",
  ];
}

/**
 * The user whom a job runs as, for its dump ({@linkcode asJobUser}), from its PID 1's
 * /proc/PID/status (`status`), with the capabilities of this process (`self`, its own status);
 * `undefined` when the job is root's. Throws when PID 1's real, effective and saved ids differ
 * (a set-user-ID program), which CRIU can dump only with CAP_SYS_RESOURCE.
 */
export function parseJobUser(status: string, self: string): JobUser | undefined {
  const ids = (name: string) =>
    (new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "").trim().split(/\s+/)
      .slice(0, 3).map(Number);
  const uids = ids("Uid");
  const gids = ids("Gid");
  const [uid, gid] = [uids[0], gids[0]];
  if (uids.length < 3 || gids.length < 3 || ![...uids, ...gids].every(Number.isInteger)) {
    throw new Error("Cannot read the job's user: no Uid and Gid lines");
  }
  if (uids.some((id) => id !== uid) || gids.some((id) => id !== gid)) {
    throw new Error(
      `Cannot dump the job as its user: it runs set-user-ID or set-group-ID (uids ${
        uids.join(" ")
      }, gids ${gids.join(" ")})`,
    );
  }
  if (uid === 0) return undefined;
  const mask = /^CapEff:\s*([0-9a-f]+)$/im.exec(self)?.[1];
  if (mask === undefined) throw new Error("Cannot read this process's capabilities");
  return { uid, gid, caps: capabilityNames(mask) };
}

/** {@linkcode parseJobUser} of the running job whose PID 1 is `pid`. */
export async function jobUser(pid: number): Promise<JobUser | undefined> {
  const [status, self] = await Promise.all(
    [`/proc/${pid}/status`, "/proc/self/status"].map((path) => Deno.readTextFile(path)),
  );
  return parseJobUser(status, self);
}
