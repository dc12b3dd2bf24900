/**
 * A migration's restore on the target (PROTOCOL.md §11, §11.4): `criu restore` run under a perl
 * waiter that becomes the restored job's parent, and, for the final round of a migration, started
 * before the job is even frozen at its source and held at a gate until its images are all here.
 *
 * The gate: criu restore spends tens of milliseconds starting (its run-time linker, then its
 * kernel-feature probes) before it reads any image, and the first image it reads is
 * `inventory.img`. The target makes that file a FIFO and starts the restore early; criu blocks in
 * its open(2) once started. The inventory the source sends is kept beside it (HELD_INVENTORY)
 * until the go, when the daemon opens the FIFO for writing (which waits for criu's open for
 * reading, so the bytes never sit in a FIFO that nobody holds open), writes them and closes it:
 * criu reads the inventory to its end of file. While the gate is shut the waiter stops criu when
 * asked (SIGTERM) and when the daemon that started it is gone, so that a criu held at its gate
 * never outlives the migration.
 */
import { restoreArgs } from "./args.ts";
import { criuFailure } from "./criuerror.ts";
import { descendants } from "../base/procs.ts";
import { exists } from "../base/fs.ts";
import { sleep } from "../base/time.ts";

/**
 * The restored job's parent on the target: `perl -e RESTORE_WAITER MARKER PIDFILE WINDOW GATE criu
 * restore --restore-detached --restore-sibling --leave-stopped ...`. Runs the restore; while GATE
 * (when not empty) is a FIFO, it kills criu on SIGTERM or when its own parent changes (the daemon
 * died), looking every 10 ms. Once criu has restored the job (stopped) it creates MARKER, then
 * waits up to WINDOW seconds for SIGUSR1, the commit (mig.commit): without it, it kills the job
 * (the PID criu wrote to PIDFILE, the job's PID 1, so its whole namespace goes), so that a copy
 * nobody let run never runs, even when the daemon that restored it is gone. Then it waits for the
 * job and exits with its status (128+N for signal N; 125 when the restore failed or was stopped).
 * A waiter, because criu itself cannot give the status back: with `--restore-detached` the job's
 * parent becomes the host's init (or nearest subreaper) and its status is lost; without it criu
 * waits for the job but exits 0 whatever its status (criu only `wait(NULL)`s); and Deno cannot
 * wait for a child it did not spawn. With `--restore-sibling` the job is a child of criu's
 * parent, this waiter, which waits for any child.
 */
export const RESTORE_WAITER = "my ($m, $p, $w, $g) = splice(@ARGV, 0, 4); my $go = 0; " +
  "my ($c, $stop) = (0, 0); $SIG{USR1} = sub { $go = 1 }; " +
  '$SIG{TERM} = sub { $stop = 1; kill("KILL", $c) if $c }; my $d = getppid(); ' +
  "$c = fork() // exit 125; if (!$c) { exec { $ARGV[0] } @ARGV; exit 127 } " +
  'kill("KILL", $c) if $stop; my $r = 0; ' +
  'while ($g ne "" && -p $g && !($r = waitpid($c, 1))) { ' +
  'kill("KILL", $c) if getppid() != $d; select(undef, undef, undef, 0.01) } ' +
  '$SIG{TERM} = "DEFAULT"; waitpid($c, 0) unless $r > 0; $? == 0 or exit 125; ' +
  'open(my $f, ">", $m) and close($f); my $end = time + $w; ' +
  "until ($go || time >= $end) { select(undef, undef, undef, 0.05) } " +
  'if (!$go && open(my $h, "<", $p)) { my $j = <$h>; kill("KILL", $j) if $j > 1 } ' +
  "wait(); exit($? & 127 ? 128 + ($? & 127) : $? >> 8)";

/** Where the target keeps the source's `inventory.img` while a gated restore waits for the go. */
export const HELD_INVENTORY = "inventory.img.held";

/** What a restore needs to start; all of it is known before the job is frozen (`mig.pages`). */
export interface RestoreStart {
  /** The criu binary. */
  readonly criu: string;
  /** The images directory; the waiter runs there, and criu's log, pidfile and marker go there. */
  readonly dir: string;
  /** The job's stdio pipe keys (`pipe:[INODE]` or null, for fds 0-2), for `--inherit-fd`. */
  readonly fds: readonly (string | null)[];
  /** The images hold a mount namespace of the job's own (hasOwnMounts in startjob.ts). */
  readonly ownMounts: boolean;
  /** The waiter's window for the commit, in seconds. */
  readonly windowSeconds: number;
  /** Start criu now and hold it at the gate until `open` (a FIFO at `inventory.img`). */
  readonly gated?: boolean;
  /**
   * How long a restore that is not gated may take from its start before it is killed, criu and
   * whatever it restored so far, and `restored` fails; default no limit (a gated one gets its
   * limit at `open`).
   */
  readonly limitMs?: number;
}

/** A `criu restore` under the waiter: started, perhaps held at its gate, then restored. */
export class WaitedRestore {
  readonly dir: string;
  readonly fds: readonly (string | null)[];
  readonly ownMounts: boolean;
  /** The waiter; its stdin, stdout and stderr become the restored job's pipes. */
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  /** The write end of the job's new stdin. */
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** The FIFO at `inventory.img`, for a gated restore. */
  readonly #gate: string | undefined;
  /** A gated restore's gate: shut, being opened (the go), open (criu read it), or stopped. */
  #state: "shut" | "opening" | "open" | "stopped" = "shut";
  #exited: Deno.CommandStatus | undefined;
  #started = performance.now();
  #limitMs: number | undefined;
  #limit: ReturnType<typeof setTimeout> | undefined;
  /** Done once the processes of a restore over its limit were killed. */
  #expired: Promise<void> | undefined;

  private constructor(start: RestoreStart, child: Deno.ChildProcess, gate?: string) {
    this.dir = start.dir;
    this.fds = start.fds;
    this.ownMounts = start.ownMounts;
    this.child = child;
    this.status = child.status.then((status) => this.#exited = status);
    this.stdin = child.stdin.getWriter();
    this.#gate = gate;
    this.#limitMs = start.limitMs;
    if (!gate) this.#arm();
  }

  get logPath(): string {
    return `${this.dir}/restore.log`;
  }

  /** Whether criu is held at its gate (started gated, neither opened nor stopped). */
  get gated(): boolean {
    return this.#gate !== undefined && this.#state === "shut";
  }

  /** Starts the waiter and criu; a gated restore makes its FIFO first. */
  static async start(start: RestoreStart): Promise<WaitedRestore> {
    const { dir } = start;
    const gate = start.gated ? `${dir}/inventory.img` : undefined;
    if (gate) {
      await Deno.remove(gate).catch(() => {});
      const made = await new Deno.Command("mkfifo", { args: ["-m", "600", gate] }).output();
      if (!made.success) {
        throw new Error(
          `Cannot make the restore's gate "${gate}": ${
            new TextDecoder().decode(made.stderr).trim()
          }`,
        );
      }
    }
    const args = restoreArgs({
      imagesDir: dir,
      logFile: `${dir}/restore.log`,
      pidfile: `${dir}/restore.pid`,
      restoreDetached: true,
      restoreSibling: true,
      leaveStopped: true,
      inheritFds: start.fds.flatMap((key, fd) => key ? [{ fd, key }] : []),
      ownMounts: start.ownMounts,
      // The images' pages are freed as they are restored: the job's memory once, not twice.
      autoDedup: true,
    });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command("perl", {
        args: [
          "-e",
          RESTORE_WAITER,
          `${dir}/restored`,
          `${dir}/restore.pid`,
          String(start.windowSeconds),
          gate ?? "",
          start.criu,
          ...args,
        ],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      if (gate) await Deno.remove(gate).catch(() => {});
      throw error;
    }
    return new WaitedRestore(start, child, gate);
  }

  /**
   * The go of a gated restore: the source's inventory (HELD_INVENTORY) goes through the FIFO to
   * criu, which reads it to its end. The restore's time counts from here, and so does its limit
   * (`limitMs`, as {@linkcode RestoreStart.limitMs}; default none).
   */
  async open(limitMs?: number): Promise<void> {
    const gate = this.#gate;
    if (!gate || !this.gated) {
      throw new Error(`Cannot open the restore's gate in "${this.dir}": it is not shut`);
    }
    this.#started = performance.now();
    this.#limitMs = limitMs;
    this.#arm();
    const held = `${this.dir}/${HELD_INVENTORY}`;
    const inventory = await Deno.readFile(held);
    this.#state = "opening";
    // Opening for writing waits for criu's open for reading (it has one, or is on its way to it).
    const opening = Deno.open(gate, { write: true });
    const fifo = await Promise.race([opening, this.status.then(() => undefined)]);
    if (!fifo) {
      // criu ended before it read the inventory: a reader of our own lets the open go; the
      // failure is restored()'s to report.
      const reader = await Deno.open(gate, { read: true, write: true }).catch(() => undefined);
      (await opening.catch(() => undefined))?.close();
      reader?.close();
      this.#state = "open";
      return;
    }
    try {
      // criu holds the FIFO open now: the file takes its name (the image set is whole again, and
      // the waiter leaves its gate), then criu reads the bytes and the end of file.
      await Deno.rename(held, gate).catch(() => {});
      let data = inventory;
      while (data.length > 0) data = data.subarray(await fifo.write(data));
    } finally {
      fifo.close();
    }
    this.#state = "open";
  }

  /**
   * Waits until criu has restored the job, stopped under the waiter; resolves with the job's PID
   * (its PID 1 on this host) and the restore's time in milliseconds. Throws a CriuError with the
   * log when the restore failed.
   */
  async restored(what: string): Promise<{ pid: number; ms: number }> {
    const marker = `${this.dir}/restored`;
    // Polled every millisecond: this wait is frozen time (a restore takes 30 ms and more).
    while (!this.#exited && !this.#expired && !(await exists(marker))) {
      await sleep(1);
    }
    clearTimeout(this.#limit);
    const ms = performance.now() - this.#started;
    const pidfile = `${this.dir}/restore.pid`;
    const pid = Number((await Deno.readTextFile(pidfile).catch(() => "")).trim());
    if (this.#expired || this.#exited || !(Number.isInteger(pid) && pid > 0)) {
      await this.#expired;
      await this.#ended();
      throw await criuFailure(what, {
        step: "restore",
        code: this.#exited?.code ?? 125,
        logPath: this.logPath,
        ended: this.#expired
          ? `did not end within ${this.#limitMs} ms; it and what it had restored were killed`
          : undefined,
      });
    }
    return { pid, ms };
  }

  /**
   * Stops a restore held at its gate, or whose go failed (SIGTERM: the waiter kills criu, which
   * has restored nothing) and waits for the waiter's end; then the source's inventory, if it
   * came, takes the FIFO's place, so that the images can be restored again.
   */
  async stop(): Promise<void> {
    const gate = this.#gate;
    if (!gate || this.#state === "open") {
      throw new Error(`Cannot stop the restore in "${this.dir}": it is not held at its gate`);
    }
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    try {
      this.child.kill("SIGTERM");
    } catch { /* gone */ }
    await this.#ended();
    const held = `${this.dir}/${HELD_INVENTORY}`;
    await Deno.rename(held, gate).catch(() => Deno.remove(gate).catch(() => {}));
  }

  /**
   * Kills a restored copy that must never run (its tasks hold more than the job had,
   * lib/migration/credentials.ts): every process below the waiter first (the job's tasks, its
   * children, stopped: SIGKILL ends them where they stand), then the waiter, which would otherwise
   * wait out its commit window; then waits for the waiter's end and lets its pipes go.
   */
  async kill(): Promise<void> {
    clearTimeout(this.#limit);
    for (const pid of await descendants(this.child.pid)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
    await this.#ended();
  }

  /** Starts the restore's time limit, if it has one. */
  #arm(): void {
    if (this.#limitMs === undefined) return;
    clearTimeout(this.#limit);
    this.#limit = setTimeout(() => {
      if (this.#exited) return;
      this.#expired = killBelow(this.child.pid);
    }, this.#limitMs);
    Deno.unrefTimer(this.#limit);
  }

  /** Waits for the waiter's end and lets its pipes go. */
  async #ended(): Promise<void> {
    clearTimeout(this.#limit);
    await this.status;
    await Promise.all([this.child.stdout.cancel(), this.child.stderr.cancel()]).catch(() => {});
    await this.stdin.close().catch(() => {});
  }
}

/**
 * Kills every process below `pid` (SIGKILL; the waiter's: criu, its action scripts, and the job's
 * tasks, which criu forks as the waiter's children): listed, killed, and listed again until none
 * is left, as a dying criu's children are reparented away only once it is reaped.
 */
async function killBelow(pid: number): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = await descendants(pid);
    if (pids.length === 0) return;
    for (const each of pids) {
      try {
        Deno.kill(each, "SIGKILL");
      } catch { /* gone */ }
    }
    await sleep(10);
  }
}
