/**
 * The job table the home daemon keeps (PROTOCOL.md §10): every job started by `om run`, with
 * its output as an append-only log that the `om run` at home reads by byte offset. The output
 * is kept until the reader has asked for what follows it, so a reply lost on the way can be
 * asked for again, and nothing is delivered twice to a reader that asks from where it stopped.
 * The log is where a migrated job's output will land too: whatever node runs the job, its
 * stdout and stderr end up appended here, at home. Unread output is bounded per job (its high
 * water) and per user (lib/jobs/outputbudget.ts); the log outlives the job's process, for its
 * reader, until its exit is collected or nobody has read it for the keep time.
 *
 * Pure logic apart from timers (an injected clock): the daemon's side (processes, pipes,
 * signals) is lib/jobs/deputy.ts.
 */
import type { Clock } from "../base/clock.ts";
import { DEFAULT_USER_OUTPUT, OutputBudget } from "./outputbudget.ts";

/** How a job ended: its exit code, or the signal that killed it (Deno's name, "SIGINT"). */
export type JobExit = { readonly code: number } | { readonly signal: Deno.Signal };

/** Which stream a chunk of output came from: 1 stdout, 2 stderr. */
export type OutputFd = 1 | 2;

/** A piece of a job's output; `offset` is its first byte's place in the whole log. */
export interface OutputChunk {
  readonly fd: OutputFd;
  readonly offset: number;
  readonly data: Uint8Array;
}

/** What a read returns: the chunks after the offset asked for, the offset to ask next, the exit. */
export interface OutputRead {
  /** The offset after the last chunk returned (the one asked for when there is none). */
  readonly offset: number;
  readonly chunks: readonly OutputChunk[];
  /** Set once the job ended and every byte of its output was returned. */
  readonly exit?: JobExit;
}

/** Linux's signal numbers (x86, arm), for the 128+N exit status of a job a signal killed. */
export const SIGNAL_NUMBERS: Readonly<Partial<Record<Deno.Signal, number>>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** The exit status a shell gives for `exit`: the code, or 128 + the signal's number. */
export function exitStatus(exit: JobExit): number {
  return "code" in exit ? exit.code : 128 + (SIGNAL_NUMBERS[exit.signal] ?? 0);
}

/** Bytes one read returns at most (a reply must fit in a frame, in base64 inside JSON). */
export const DEFAULT_READ_LIMIT = 1024 * 1024;
/** Unread output above which the job's pipes are no longer drained (the job then blocks). */
export const DEFAULT_HIGH_WATER = 4 * 1024 * 1024;

/**
 * A job's output: chunks appended as the job writes them, read by offset with a long poll.
 * Chunks before the last offset a reader asked from are dropped (the reader has them).
 */
export class OutputLog {
  readonly #clock: Clock;
  readonly #highWater: number;
  /** The budget of the job's user (outputbudget.ts); none for root's, or once let go. */
  #budget: OutputBudget | undefined;
  #chunks: OutputChunk[] = [];
  /** Offset of the first byte still kept. */
  #start = 0;
  /** Offset after the last byte appended. */
  #end = 0;
  #exit: JobExit | undefined;
  #wake = new Set<() => void>();
  #room = new Set<() => void>();
  /** When a reader last asked for output (clock milliseconds); undefined before. */
  #lastRead: number | undefined;
  /** The job left the table (release): nothing waits for room any more. */
  #released = false;

  constructor(
    clock: Clock,
    options: { readonly highWater?: number; readonly budget?: OutputBudget } = {},
  ) {
    this.#clock = clock;
    this.#highWater = options.highWater ?? DEFAULT_HIGH_WATER;
    this.#budget = options.budget;
  }

  /** When a reader last asked for output (clock milliseconds); undefined before any read. */
  get lastRead(): number | undefined {
    return this.#lastRead;
  }

  /** Offset after the last byte appended. */
  get end(): number {
    return this.#end;
  }

  /** Bytes appended and not yet passed by a reader. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** How the job ended, once it did. */
  get exit(): JobExit | undefined {
    return this.#exit;
  }

  /** Appends what the job wrote on `fd`; wakes waiting readers. */
  append(fd: OutputFd, data: Uint8Array): void {
    if (this.#exit) throw new RangeError("Cannot append output: the job has ended");
    if (data.length === 0) return;
    this.#chunks.push({ fd, offset: this.#end, data });
    this.#end += data.length;
    this.#budget?.take(data.length);
    this.#notify();
  }

  /** Records the job's end (after its last output); wakes waiting readers. */
  finish(exit: JobExit): void {
    this.#exit ??= exit;
    this.#notify();
  }

  /**
   * Resolves when there is room for more output: buffered below the high-water mark, and the
   * user's jobs below their budget.
   */
  async room(): Promise<void> {
    while (!this.#released) {
      if (this.buffered >= this.#highWater) {
        await new Promise<void>((resolve) => this.#room.add(resolve));
        continue;
      }
      const budget = this.#budget;
      if (budget === undefined || budget.held < budget.limit) return;
      await budget.room();
    }
  }

  /**
   * The log is let go (its job left the table): its unread bytes no longer count against the
   * user's budget, and whoever waits for room goes on.
   */
  release(): void {
    this.#released = true;
    this.#budget?.give(this.buffered);
    this.#budget = undefined;
    const waiting = [...this.#room];
    this.#room.clear();
    for (const go of waiting) go();
  }

  #notify(): void {
    const waiting = [...this.#wake];
    this.#wake.clear();
    for (const wake of waiting) wake();
  }

  /** Returns what is there after `offset` now (never waits). */
  readNow(offset: number, limit = DEFAULT_READ_LIMIT): OutputRead {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.#end) {
      throw new RangeError(
        `Cannot read output from offset ${offset}: the output has ${this.#end} bytes`,
      );
    }
    if (offset < this.#start) {
      throw new RangeError(
        `Cannot read output from offset ${offset}: bytes before ${this.#start} were delivered`,
      );
    }
    this.#lastRead = this.#clock.now();
    this.#discardBefore(offset);
    const chunks: OutputChunk[] = [];
    let at = offset;
    let taken = 0;
    for (const chunk of this.#chunks) {
      const chunkEnd = chunk.offset + chunk.data.length;
      if (chunkEnd <= at) continue;
      if (taken >= limit) break;
      const from = at - chunk.offset;
      const to = Math.min(chunk.data.length, from + limit - taken);
      chunks.push({ fd: chunk.fd, offset: at, data: chunk.data.subarray(from, to) });
      taken += to - from;
      at += to - from;
    }
    const read: OutputRead = { offset: at, chunks };
    return this.#exit && at === this.#end ? { ...read, exit: this.#exit } : read;
  }

  /**
   * The long poll: resolves with every chunk after `offset` as soon as there is one, or with
   * the exit once all output is read, or with nothing after `timeoutMs`.
   */
  async read(offset: number, timeoutMs: number, limit = DEFAULT_READ_LIMIT): Promise<OutputRead> {
    const now = this.readNow(offset, limit);
    if (now.chunks.length > 0 || now.exit) return now;
    await new Promise<void>((resolve) => {
      let cancel = () => {};
      const wake = () => {
        cancel();
        this.#wake.delete(wake);
        resolve();
      };
      this.#wake.add(wake);
      cancel = this.#clock.after(timeoutMs, wake);
    });
    // A reader that asks from an older offset meanwhile may have moved the start past ours.
    return offset < this.#start ? { offset, chunks: [] } : this.readNow(offset, limit);
  }

  #discardBefore(offset: number): void {
    if (offset <= this.#start) return;
    while (this.#chunks.length > 0) {
      const first = this.#chunks[0];
      const firstEnd = first.offset + first.data.length;
      if (firstEnd > offset) break;
      this.#chunks.shift();
    }
    this.#budget?.give(offset - this.#start);
    this.#start = offset;
    if (this.buffered < this.#highWater) {
      const waiting = [...this.#room];
      this.#room.clear();
      for (const go of waiting) go();
    }
  }
}

/** A hint about what a job does (mosrun -c, -i): cpu-bound or io-bound. */
export type JobKind = "cpu" | "io";
/** How fast a job's load history is forgotten (mosrun -s, -f, -n): lib/balance/balancer.ts. */
export type JobDecay = "slow" | "fast" | "none";

/** What `om run` said about a job (mosrun's options); the balancer acts on it. */
export interface JobPolicy {
  /** Locked: the balancer never moves it (om migrate, expel and bring still do). */
  readonly lock: boolean;
  /** cpu-bound or io-bound, when it was said. */
  readonly kind?: JobKind;
  readonly decay: JobDecay;
}

/** A plain `om run`: unlocked, no hint, slow decay. */
export const DEFAULT_POLICY: JobPolicy = { lock: false, decay: "slow" };

/** Whether `value` is a JobPolicy (a request body's field). */
export function isJobPolicy(value: unknown): value is JobPolicy {
  const v = value as JobPolicy | null;
  return typeof v === "object" && v !== null && typeof v.lock === "boolean" &&
    (v.kind === undefined || v.kind === "cpu" || v.kind === "io") &&
    (v.decay === "slow" || v.decay === "fast" || v.decay === "none");
}

/** What a job is, as `om ps` and `job.list` show it (and `$OM_ROOT/jobs/<id>` holds). */
export interface JobRecord {
  /** The job's PID: the host PID its home node gave its PID 1; it never changes. */
  readonly pid: number;
  /** The node it runs on now. */
  readonly node: number;
  /** Its home node, where its `om run` is. */
  readonly home: number;
  readonly command: readonly string[];
  /** Milliseconds since the epoch. */
  readonly started: number;
  readonly policy: JobPolicy;
  /** How many times it moved (openMosix's /proc/PID/nmigs). */
  readonly migrations: number;
  /** The user it runs as, who alone (with root) may follow, signal or move it; 0 when absent. */
  readonly uid: number;
}

/** One job of the table. */
export interface Job {
  /** The job's PID (see JobRecord.pid). */
  readonly id: number;
  readonly home: number;
  node: number;
  readonly command: readonly string[];
  readonly started: number;
  readonly policy: JobPolicy;
  /** How many times it moved. */
  migrations: number;
  /** The user it runs as (its owner). */
  readonly uid: number;
  /** When it last moved (clock milliseconds). */
  movedAt?: number;
  readonly output: OutputLog;
  /** When its end was recorded (clock milliseconds), for the table's cleanup. */
  ended?: number;
}

/** The record of a job, for `om ps` and `job.list`. */
export function jobRecord(job: Job): JobRecord {
  return {
    pid: job.id,
    node: job.node,
    home: job.home,
    command: job.command,
    started: job.started,
    policy: job.policy,
    migrations: job.migrations,
    uid: job.uid,
  };
}

/** No such job on this node: the error text of the local socket's job commands. */
export class NoSuchJobError extends Error {
  override name = "NoSuchJobError";
  constructor(readonly id: number) {
    super(`no job ${id} on this node`);
  }
}

/**
 * How long an ended job whose exit nobody collected stays in the table, from its end or the last
 * read of its output, whichever is later.
 */
export const DEFAULT_KEEP_ENDED_MS = 60_000;

/** The table's counters (the local socket's `stats`). */
export interface JobTableStats {
  /** Times a job's output waited because its user's jobs held their budget unread. */
  outputWaits: number;
}

/**
 * The jobs of this home node, by id. The jobs of each user other than root share an output
 * budget (outputbudget.ts, `userOutput` bytes unread).
 */
export class JobTable {
  readonly #jobs = new Map<number, Job>();
  readonly #clock: Clock;
  readonly #keepEndedMs: number;
  readonly #userOutput: number;
  readonly #budgets = new Map<number, OutputBudget>();
  readonly #stats: JobTableStats = { outputWaits: 0 };

  constructor(
    clock: Clock,
    options: { readonly keepEndedMs?: number; readonly userOutput?: number } = {},
  ) {
    this.#clock = clock;
    this.#keepEndedMs = options.keepEndedMs ?? DEFAULT_KEEP_ENDED_MS;
    this.#userOutput = options.userOutput ?? DEFAULT_USER_OUTPUT;
  }

  /** The table's counters, live. */
  get stats(): Readonly<JobTableStats> {
    return this.#stats;
  }

  /** The jobs of user `uid` in the table (ended ones whose exit is not collected included). */
  countOf(uid: number): number {
    let n = 0;
    for (const job of this.#jobs.values()) if (job.uid === uid) n++;
    return n;
  }

  /** The output budget of user `uid` (none for root). */
  #budgetOf(uid: number): OutputBudget | undefined {
    if (uid === 0) return undefined;
    let budget = this.#budgets.get(uid);
    if (!budget) {
      budget = new OutputBudget(this.#userOutput, () => this.#stats.outputWaits++);
      this.#budgets.set(uid, budget);
    }
    return budget;
  }

  /** Takes job `id` out of the table and lets its log go (and its user's budget when unused). */
  #drop(id: number): boolean {
    const job = this.#jobs.get(id);
    if (!job) return false;
    this.#jobs.delete(id);
    job.output.release();
    if (this.countOf(job.uid) === 0) this.#budgets.delete(job.uid);
    return true;
  }

  /** Adds a job that just started here. */
  add(job: {
    id: number;
    home: number;
    node: number;
    command: readonly string[];
    policy?: JobPolicy;
    /** Its user; root (0) when not given. */
    uid?: number;
  }): Job {
    if (this.#jobs.has(job.id)) throw new RangeError(`Cannot add job ${job.id}: it exists`);
    const added: Job = {
      ...job,
      uid: job.uid ?? 0,
      policy: job.policy ?? DEFAULT_POLICY,
      migrations: 0,
      started: this.#clock.now(),
      output: new OutputLog(this.#clock, { budget: this.#budgetOf(job.uid ?? 0) }),
    };
    this.#jobs.set(job.id, added);
    return added;
  }

  /** The job `id`; throws NoSuchJobError. */
  get(id: number): Job {
    const job = this.#jobs.get(id);
    if (!job) throw new NoSuchJobError(id);
    return job;
  }

  /** The job `id`, undefined when there is none. */
  find(id: number): Job | undefined {
    return this.#jobs.get(id);
  }

  /** Every job, oldest first. */
  list(): Job[] {
    return [...this.#jobs.values()];
  }

  /** Records a job's end. */
  finish(id: number, exit: JobExit): void {
    const job = this.get(id);
    job.ended ??= this.#clock.now();
    job.output.finish(exit);
  }

  /** Removes a job (its exit was delivered); true when it was there. */
  remove(id: number): boolean {
    return this.#drop(id);
  }

  /**
   * Removes the jobs that ended, and whose output nobody read, longer ago than the keep time;
   * returns their ids.
   */
  expire(): number[] {
    const now = this.#clock.now();
    const gone: number[] = [];
    for (const job of this.#jobs.values()) {
      if (job.ended === undefined) continue;
      const last = Math.max(job.ended, job.output.lastRead ?? job.ended);
      if (now - last >= this.#keepEndedMs) gone.push(job.id);
    }
    for (const id of gone) this.#drop(id);
    return gone;
  }
}

/** Parses a `$OM_ROOT/jobs/<id>` file; undefined when it is not one. */
export function parseJobRecord(text: string): JobRecord | undefined {
  try {
    const value = JSON.parse(text);
    const ok = Number.isInteger(value?.pid) && Number.isInteger(value.node) &&
      Number.isInteger(value.home) && Array.isArray(value.command) &&
      value.command.every((a: unknown) => typeof a === "string") &&
      typeof value.started === "number";
    return ok
      ? {
        pid: value.pid,
        node: value.node,
        home: value.home,
        command: value.command,
        started: value.started,
        policy: isJobPolicy(value.policy) ? value.policy : DEFAULT_POLICY,
        migrations: Number.isInteger(value.migrations) ? value.migrations : 0,
        uid: Number.isInteger(value.uid) && value.uid >= 0 ? value.uid : 0,
      }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Reads every job file in `dir` (`$OM_ROOT/jobs`); none when there is no such directory. */
export async function readJobRecords(dir: string): Promise<JobRecord[]> {
  const records: JobRecord[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!/^\d+$/.test(entry.name)) continue;
      const text = await Deno.readTextFile(`${dir}/${entry.name}`).catch(() => "");
      const record = parseJobRecord(text);
      if (record) records.push(record);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return records.sort((a, b) => a.pid - b.pid);
}
