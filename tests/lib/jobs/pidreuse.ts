/**
 * Test tool: a process that takes a given PID, as a new process does once the kernel's PIDs come
 * round to one that ended, and that writes down every signal it gets. Waiting for the PIDs to come
 * round would take minutes; root makes it happen at once by setting the last PID the kernel gave
 * (`/proc/sys/kernel/ns_last_pid`, in this PID namespace) to the one before, then forking. Another
 * process of the host may fork in between and take the PID: then the copy is killed and it is
 * tried again.
 *
 * The process leads its own session and process group (so that a signal to the group of the PID
 * reaches it too), catches HUP, INT, QUIT, USR1, USR2, ALRM, TERM, CONT, TSTP and writes each
 * one's name on a line of its log; SIGKILL it cannot catch, but it ends it, which `alive` sees.
 */
import { identifyProcess, type ProcessIdentity } from "../../../lib/jobs/processid.ts";

/** The catcher, in perl: it takes the PID asked for, or exits 3 when another process took it. */
const CATCHER = "use POSIX (); my ($want, $log) = @ARGV; " +
  'if ($want > 0) { open(my $f, ">", "/proc/sys/kernel/ns_last_pid") or exit 4; ' +
  "print $f $want - 1; close($f) or exit 4 } " +
  "my $c = fork() // exit 5; " +
  'if (!$c) { open(STDIN, "<", "/dev/null"); open(STDOUT, ">", "/dev/null"); ' +
  'open(STDERR, ">", "/dev/null"); POSIX::setsid(); ' +
  "for my $s (qw(HUP INT QUIT USR1 USR2 ALRM TERM CONT TSTP)) { " +
  '$SIG{$s} = sub { open(my $l, ">>", $log); print $l "$_[0]\\n"; close($l) } } ' +
  "sleep 1 while 1; exit 0 } " +
  'if ($want > 0 && $c != $want) { kill("KILL", $c); exit 3 } print "$c\\n"; exit 0';

/** A process that catches signals and writes them down. */
export interface Catcher {
  /** Its PID and start time. */
  readonly who: ProcessIdentity;
  /** The signals it got so far, by name, in order. */
  signals(): Promise<string[]>;
  /** Whether it still runs (the same process: its PID and start time). */
  alive(): boolean;
  /** Ends it. */
  stop(): void;
}

/**
 * Starts a catcher writing to `log`; with `pid`, at that PID (root only; tried `attempts` times,
 * throws when the PID stays taken, e.g. by a process that has not ended).
 */
export async function startCatcher(
  log: string,
  options: { readonly pid?: number; readonly attempts?: number } = {},
): Promise<Catcher> {
  const attempts = options.attempts ?? 50;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const out = await new Deno.Command("perl", {
      args: ["-e", CATCHER, String(options.pid ?? 0), log],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (out.code === 3) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      continue;
    }
    if (out.code !== 0) throw new Error(`Cannot start a catcher: perl exited ${out.code}`);
    const pid = Number(new TextDecoder().decode(out.stdout).trim());
    const who = identifyProcess(pid);
    if (!who) throw new Error(`Cannot start a catcher: process ${pid} is gone`);
    return {
      who,
      signals: async () =>
        (await Deno.readTextFile(log).catch(() => "")).split("\n").filter((line) => line),
      alive: () => identifyProcess(pid)?.startTime === who.startTime,
      stop: () => {
        if (identifyProcess(pid)?.startTime !== who.startTime) return;
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      },
    };
  }
  throw new Error(`Cannot start a catcher at PID ${options.pid}: it stayed taken`);
}
