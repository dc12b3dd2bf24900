/**
 * The recent moves of this home node's jobs, as the home saw them (every move of a job is decided
 * and carried out through its home, lib/migration/home.ts): when, which job, from where to where,
 * who asked, and how it went (frozen and total milliseconds, or the failed step and why). A
 * bounded ring in memory (MOVE_LOG_SIZE entries), read by the status page (lib/web/) here and, by
 * other nodes, with `status.migrations` (PROTOCOL.md §14.4). Nothing is written to disk: a
 * restarted daemon starts a new log, told apart by its `epoch`.
 *
 * A move is entered when it begins (result "moving") and updated when it ends; every change bumps
 * the log's revision, so a reader asks only for what changed since the revision it has.
 */

/** Entries the log keeps; older ones are dropped. */
export const MOVE_LOG_SIZE = 64;
/** The longest error text an entry keeps. */
export const MOVE_ERROR_CHARS = 300;

/**
 * Who asked for a move: a user's `om migrate` (`user`), the balancer of the node the job ran on
 * (`balancer`), `mosctl expel` on the node it ran on (`expel`), `mosctl bring` at its home
 * (`bring`), `om run`'s placement of a new job (`placement`), or another node that did not say
 * why (`node`).
 */
export type MoveAsker = "user" | "balancer" | "expel" | "bring" | "placement" | "node";

/** The askers, for checking what came over the wire. */
export const MOVE_ASKERS: readonly MoveAsker[] = [
  "user",
  "balancer",
  "expel",
  "bring",
  "placement",
  "node",
];

/** Why a move happens: who asked, the user's uid (`user`), the node that asked (from another). */
export interface MoveCause {
  readonly by: MoveAsker;
  readonly uid?: number;
  readonly node?: number;
}

/** A move whose asker is not known (a caller that did not say). */
export const UNSAID: MoveCause = { by: "node" };

/** One move of the log. */
export interface MoveEntry {
  /** Its number in this log (1, 2, ...), for as long as the daemon runs. */
  readonly seq: number;
  /** The log's revision when it last changed. */
  readonly rev: number;
  /** When it began, milliseconds since the epoch. */
  readonly at: number;
  /** The job (its PID at home). */
  readonly id: number;
  readonly home: number;
  readonly from: number;
  readonly to: number;
  readonly cause: MoveCause;
  readonly result: "moving" | "ok" | "failed";
  /** How long the job was frozen (done moves; 0 when the home could not learn it). */
  readonly frozenMs?: number;
  /** How long the move took in all (ended moves). */
  readonly totalMs?: number;
  /** The failed step (`dump`, `restore`, ...; PROTOCOL.md §8.5), when one is known. */
  readonly step?: string;
  /** Why it failed, at most MOVE_ERROR_CHARS characters. */
  readonly error?: string;
}

/** A move under way: end it with `ok` or `failed`. */
export interface MoveHandle {
  ok(report: { readonly frozenMs: number; readonly totalMs: number }): void;
  failed(failure: { readonly step?: string; readonly message: string; totalMs: number }): void;
}

/** The ring of recent moves. */
export class MoveLog {
  readonly #now: () => number;
  readonly #size: number;
  #entries: MoveEntry[] = [];
  #seq = 0;
  #rev = 0;
  /** When this log began (milliseconds since the epoch): a new daemon, a new log. */
  readonly epoch: number;

  /** `now`: the wall clock (milliseconds since the epoch). */
  constructor(options: { readonly now: () => number; readonly size?: number }) {
    this.#now = options.now;
    this.#size = options.size ?? MOVE_LOG_SIZE;
    this.epoch = this.#now();
  }

  /** The revision of the last change (0: none yet). */
  get rev(): number {
    return this.#rev;
  }

  /** Enters a move that begins now; returns the handle that ends it. */
  begin(
    move: { readonly id: number; readonly home: number; readonly from: number; to: number },
    cause: MoveCause,
  ): MoveHandle {
    const seq = ++this.#seq;
    this.#put({ seq, rev: ++this.#rev, at: this.#now(), ...move, cause, result: "moving" });
    return {
      ok: (report) =>
        this.#end(seq, {
          result: "ok",
          frozenMs: Math.max(0, Math.round(report.frozenMs)),
          totalMs: Math.max(0, Math.round(report.totalMs)),
        }),
      failed: (failure) =>
        this.#end(seq, {
          result: "failed",
          totalMs: Math.max(0, Math.round(failure.totalMs)),
          ...(failure.step ? { step: failure.step } : {}),
          error: failure.message.slice(0, MOVE_ERROR_CHARS),
        }),
    };
  }

  /** The entries changed after revision `rev` (all for 0), oldest first. */
  since(rev = 0): MoveEntry[] {
    return this.#entries.filter((e) => e.rev > rev);
  }

  #put(entry: MoveEntry): void {
    this.#entries.push(entry);
    if (this.#entries.length > this.#size) {
      this.#entries.splice(0, this.#entries.length - this.#size);
    }
  }

  #end(seq: number, outcome: Partial<MoveEntry>): void {
    const index = this.#entries.findIndex((e) => e.seq === seq);
    // Dropped from the ring meanwhile (many moves while this one ran): nothing to update.
    if (index < 0 || this.#entries[index].result !== "moving") return;
    const updated = { ...this.#entries[index], ...outcome, rev: ++this.#rev };
    this.#entries.splice(index, 1);
    this.#entries.push(updated);
  }
}
