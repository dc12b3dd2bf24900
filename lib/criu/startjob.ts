/**
 * How a job must run so that CRIU can move it, as found with criu 4.1.1 on Linux 6.18: PID 1 of
 * its own PID namespace (restoring a plain process fails with "Can't fork for PID: File exists"
 * when its old PID is taken on the target), leader of its own session, no descriptors but 0, 1
 * and 2, and stdio on pipes or /dev/null (CRIU checks the size of a regular file on restore, so a
 * log that grew after the dump fails it). Root's job stays in the host's mount namespace (a new
 * one made the dump fail, "Can't lookup mount ... /dev/null"); a user's job gets one of its own,
 * with its stdio pipes only, and is dumped by criu run as its user (jobuser.ts). Here are the
 * argv that starts such a job ({@linkcode startJobArgs}), the start itself, and the questions a
 * dump asks about a running job (its PID 1, its mounts, its descriptors' keys).
 */
import { retryUntil } from "../base/retry.ts";
import type { WaitClock } from "../base/clock.ts";

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
  const children = await Deno.readTextFile(`/proc/${parent}/task/${parent}/children`)
    .catch(() => "");
  const pid = Number(children.trim().split(/\s+/)[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
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
