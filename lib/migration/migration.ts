/**
 * Moving a job between nodes (openMosix's migration, PROTOCOL.md §11) with CRIU: stop-and-copy,
 * or iterative pre-copy where the kernel tracks dirty memory (dumpRounds; the machines of this
 * project do not, so that path has only been tested for its plan and argv).
 *
 * The home daemon (where `om run` waits) migrates a job that runs at home:
 * 1. preflight: `criu check` and version here, and `mig.check` on the target (which refuses
 *    when its admin/block is set);
 * 2. the job's stdio pipe keys (`pipe:[INODE]` of /proc/<pid>/fd/0-2), for `--inherit-fd`;
 * 3. `mig.pages`: the target listens for a page link (lib/migration/pagelink.ts), a TCP connection admitted
 *    by a one-time token sent over this authenticated channel, and starts its `criu restore`,
 *    held at a gate until the images are all there (lib/criu/restore.ts), so that criu's own start is
 *    not frozen time;
 * 4. `criu dump --leave-stopped --page-server` over the page link: the job stays stopped here (a
 *    failed dump lets CRIU resume it) and its pages reach the target's page receiver
 *    (lib/migration/pagereceiver.ts, or `criu page-server`) while the dump collects them, so the frozen time
 *    holds no separate transfer of the memory (and the target restores from files spliced from
 *    the socket during the dump, which restored faster here than files written afterwards by the
 *    daemon); then `mig.begin`, the other (small) image files as `mig.file` chunks, and
 *    `mig.restore`;
 * 5. the target opens the restore's gate: criu restores the job, stopped, under a perl waiter
 *    that becomes its parent (criu cannot report a restored job's exit status, see lib/criu/criu.ts)
 *    with new pipes as its stdio;
 * 6. the commit (`mig.commit`, PROTOCOL.md §11.2): the target lets the job run, records a guest
 *    job and pushes its output to the home daemon (`job.push`, then `job.exited`). Until then
 *    both copies are stopped; a target copy that no commit reaches is killed (by the target after
 *    COMMIT_WINDOW_MS, by its waiter if the daemon is gone), and a commit whose answer is lost is
 *    asked again until the target answers, so that the job runs at exactly one place (a target
 *    that took the commit and then stayed unreachable for 40 s kills its copy once the home,
 *    reached again, refuses its output: lib/migration/homelink.ts);
 * 7. home records the job as running on the target BEFORE it kills the stopped local copy (so
 *    that copy's end is not the job's), then relays `job.input`/`job.signal` there. Output that
 *    arrives from the target waits until the local copy's pipes are drained: nothing is lost,
 *    doubled or reordered.
 * Any failure before the commit: the target is told to drop what it got (`mig.abort`), the
 * stopped job is continued (SIGCONT) where it was, and the error names the step and the CRIU log.
 *
 * Stdin: CRIU does not refill an inherited pipe, so the bytes the job had not yet read would be
 * lost. The deputy holds later `job.input` from just before the dump; after it, the deputy
 * closes its write end (the pipe's only one) and drainStdin reads what is left through
 * /proc/<pid>/fd/0 (end of file comes as no writer is left). `mig.begin` carries those bytes, and
 * the target writes them first into the job's new stdin; the held input follows them there. On
 * failure reopenStdin opens a new write end through /proc/<pid>/fd/0 and puts them back before
 * the SIGCONT.
 *
 * A job that runs elsewhere is moved by the node it runs on, when its home asks (`mig.move`): that
 * node dumps its guest the same way and sends it on; a job that comes home is adopted by the
 * deputy. Output from the new node waits at home until the old node's last output is in. When
 * `mig.move` fails or its answer is lost, the home asks both nodes where the job is
 * (`mig.status`) rather than trusting the error.
 * Nothing here prints: errors and results go back to the caller.
 */
import { type ChannelClient, type Handler, type Peer, RemoteError } from "../channel/channel.ts";
import {
  asJobUser,
  type Criu,
  CriuError,
  criuFailure,
  dumpArgs,
  fdKey,
  hasOwnMounts,
  type JobUser,
  jobUser,
  ownMounts,
  pageServerArgs,
  preflight,
} from "../criu/criu.ts";
import {
  DUMP_GATE,
  isPageToken,
  linkPages,
  listenForPages,
  newPageToken,
  PAGE_LINK_FAILED,
  type PageLink,
  PageLinkError,
  type PageListener,
} from "./pagelink.ts";
import {
  isReservation,
  pageReservation,
  receiverArgs,
  reservedBytes,
  reservePages,
} from "./pagereceiver.ts";
import { decodeBase64, type Deputy, encodeBase64, handlesSignal } from "../jobs/deputy.ts";
import {
  DEFAULT_POLICY,
  isJobPolicy,
  type Job,
  type JobExit,
  type JobPolicy,
  type OutputFd,
  SIGNAL_NUMBERS,
} from "../jobs/table.ts";
import type { Logger } from "../base/log.ts";
import { replaceFile } from "../state/tree.ts";
import { watched } from "../channel/peerwatch.ts";
import { descendants } from "../base/procs.ts";
import { HELD_INVENTORY, WaitedRestore } from "../criu/restore.ts";
import {
  disownedText,
  HomeLink,
  HomeUnreachableError,
  isDisowned,
  isUnknownJob,
} from "./homelink.ts";
import { bodyOf, isId } from "../channel/body.ts";

/** Image bytes per `mig.file` request (a frame holds 16 MiB). */
export const FILE_CHUNK = 4 * 1024 * 1024;

/**
 * What stores a page link's pages on the target (PROTOCOL.md §11.1): unset or `om`, om's page
 * receiver (lib/migration/pagereceiver.ts) for a dump with no parent images, `criu page-server` for the
 * others; `criu`, `criu page-server` always.
 */
export const PAGE_SERVER_ENV = "OM_PAGE_SERVER";

/** `mig.file` requests sent without waiting for their replies. */
const FILES_IN_FLIGHT = 8;

/**
 * Test-only hook: milliseconds the target waits before storing each `mig.file` chunk, so that a
 * test can kill it in the middle of a transfer. Never set it outside tests.
 */
export const TEST_FILE_DELAY_ENV = "OM_TEST_MIG_FILE_DELAY_MS";

/**
 * How long a target keeps a restored, stopped job waiting for mig.commit before it kills it; the
 * waiter's own limit (WAITER_WINDOW_S) is longer, for when the daemon is gone.
 */
export const COMMIT_WINDOW_MS = 20_000;

/** How long a job taken by mig.begin waits here for mig.restore before it is dropped. */
const STALE_INCOMING_MS = 60_000;
const WAITER_WINDOW_S = 30;
/** How long the source waits for one answer to mig.commit. */
const COMMIT_TIMEOUT_MS = 10_000;
/**
 * How long the source asks again after mig.commit got no answer: past the waiter's window a copy
 * that no commit reached is gone, so the job can go on at the source.
 */
const COMMIT_SETTLE_MS = (WAITER_WINDOW_S + 10) * 1000;
/** How long the home asks both nodes where a job is after mig.move got no answer. */
const MOVE_SETTLE_MS = 180_000;
/**
 * How long a target's criu restore of a job with `pages` bytes of memory may take from its go
 * before it is killed, with what it had restored, and mig.restore fails (lib/criu/restore.ts): 90 s,
 * and 1 s more per 50 MB (a slow 50 MB/s to read them back). The source waits 30 s longer for
 * the answer.
 */
export function restoreLimitMs(pages: number): number {
  return 90_000 + Math.ceil(pages / 50_000);
}
/** Test-only hook: the target's restore limit, in ms, for every job. Never set it outside tests. */
export const TEST_RESTORE_LIMIT_ENV = "OM_TEST_MIG_RESTORE_LIMIT_MS";

/**
 * Test-only hook: milliseconds the target holds its FIRST answer to mig.commit of a job, after
 * committing, so that the source's request times out and the source must ask again.
 */
export const TEST_COMMIT_DELAY_ENV = "OM_TEST_MIG_COMMIT_DELAY_MS";
/**
 * Test-only hook: when set, the node that moved a job (mig.move) answers with an error after
 * the move is done, as if its answer had been lost, so that the home must find out where the job
 * runs.
 */
export const TEST_MOVE_LOSE_REPLY_ENV = "OM_TEST_MIG_MOVE_LOSE_REPLY";
/**
 * Test-only hook: when set, the source tells the target the wrong answer to whether the job has a
 * mount namespace of its own (mig.pages `restore.mounts`), so that the target's early restore does
 * not fit the images and it restores them afresh (PROTOCOL.md §11.4).
 */
export const TEST_WRONG_PLAN_ENV = "OM_TEST_MIG_WRONG_PLAN";

/** Pre-dump rounds before the final dump, when the kernel tracks dirty memory. */
export const PRE_DUMP_ROUNDS = 1;

/**
 * One dump round of a migration: its images go to `dir` (relative to the images directory on
 * both nodes, "" for the directory itself) and, for a round after a pre-dump, only the pages
 * changed since the round in `prev` (relative to `dir`) are sent.
 */
export interface DumpRound {
  readonly action: "pre-dump" | "dump";
  readonly dir: string;
  readonly prev?: string;
}

/**
 * The rounds of a migration (PROTOCOL.md §11.3): with dirty-memory tracking (`criu check
 * --feature mem_dirty_track`), PRE_DUMP_ROUNDS pre-dumps while the job runs (iterative pre-copy:
 * each round sends what changed since the one before), then the final dump of what changed since
 * the last; without it (this project's machines), one stop-and-copy dump.
 */
export function dumpRounds(memDirtyTrack: boolean, preDumps = PRE_DUMP_ROUNDS): DumpRound[] {
  if (!memDirtyTrack || preDumps < 1) return [{ action: "dump", dir: "" }];
  const rounds: DumpRound[] = [];
  for (let i = 1; i <= preDumps; i++) {
    rounds.push({
      action: "pre-dump",
      dir: `pre-${i}`,
      ...(i > 1 ? { prev: `../pre-${i - 1}` } : {}),
    });
  }
  return [...rounds, { action: "dump", dir: "", prev: `pre-${preDumps}` }];
}

/**
 * The criu argv of a round on the source, its pages sent over the page link (descriptor 0):
 * `--track-mem` in pre-copy, `--leave-stopped` for the final dump (the source's copy waits for
 * the commit, §11.2).
 */
export function roundArgs(
  round: DumpRound,
  options: {
    pid: number;
    imagesDir: string;
    memDirtyTrack: boolean;
    /** A user's job: criu runs as its user (`--unprivileged`), its own mounts are external. */
    user?: boolean;
    /** `--action-script`: the dump's gate (lib/migration/pagelink.ts DUMP_GATE). */
    gate?: string;
  },
): string[] {
  const imagesDir = round.dir ? `${options.imagesDir}/${round.dir}` : options.imagesDir;
  return dumpArgs({
    pid: options.pid,
    imagesDir,
    logFile: `${imagesDir}/${round.action}.log`,
    psSocket: 0,
    trackMem: options.memDirtyTrack,
    leaveStopped: round.action === "dump",
    unprivileged: options.user,
    ownMounts: options.user,
    ...(options.gate !== undefined ? { actionScript: options.gate } : {}),
    ...(round.prev !== undefined ? { prevImagesDir: round.prev } : {}),
  }, round.action);
}

/** No move from here under way (Migration.migrate). */
const noArrival = () => {};

/** Where a job is, as a node sees it (mig.status). */
export type MoveState = "running" | "restored" | "moving" | "none";

/** Signals that kill by default; see Deputy.signal. */
const TERMINATING: readonly Deno.Signal[] = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];

/** Which step of a migration failed. */
export type MigrationStep =
  | "preflight"
  | "target check"
  | "pre-dump"
  | "dump"
  | "transfer"
  | "restore"
  | "commit";

/** The failed step named in a migration error's text from another node, if any. */
export function stepOf(text: string): MigrationStep | undefined {
  return /: (preflight|target check|pre-dump|dump|transfer|restore|commit) failed on/.exec(text)
    ?.[1] as MigrationStep | undefined;
}

/** A migration that did not happen; the job goes on where it was. */
export class MigrationError extends Error {
  override name = "MigrationError";
  constructor(
    message: string,
    readonly step: MigrationStep | undefined,
    readonly logPath?: string,
  ) {
    super(message);
  }
}

/** What a migration took, in milliseconds (`job.migrate`'s reply). */
export interface MigrationReport {
  readonly id: number;
  readonly from: number;
  readonly to: number;
  readonly frozenMs: number;
  readonly transferMs: number;
  readonly restoreMs: number;
  readonly totalMs: number;
  /** Image bytes sent. */
  readonly bytes: number;
}

/** Options of {@linkcode Migration}. */
export interface MigrationOptions {
  readonly nodeId: number;
  /** `$OM_ROOT`: images under `migrations/`, guest records under `jobs/`. */
  readonly root: string;
  readonly deputy: Deputy;
  readonly logger: Logger;
  /** The criu binary (`$OM_CRIU` or PATH), undefined when there is none. */
  readonly criuBinary: string | undefined;
  /** Opens the channel to node `id` (`address`: where it was last heard from, if known). */
  readonly connect: (id: number, address?: string) => Promise<ChannelClient>;
  /** Whether this node refuses guests (admin/block). */
  readonly blocked: () => Promise<boolean>;
  readonly env?: (name: string) => string | undefined;
  /**
   * How long a job taken by mig.begin waits here for mig.restore before its images are dropped
   * (default STALE_INCOMING_MS); tests shorten it.
   */
  readonly staleMs?: number;
}

/** An image set being received. */
interface Incoming {
  readonly id: number;
  readonly home: number;
  readonly command: readonly string[];
  readonly policy: JobPolicy;
  readonly fds: readonly (string | null)[];
  /** What the job had not read of its stdin at the dump, and whether it had reached its end. */
  readonly stdin?: Uint8Array;
  readonly stdinEof?: boolean;
  readonly dir: string;
  /** The bytes of its pages that came over the page link (its restore's limit grows with them). */
  readonly pages: number;
  /** Where the home was heard from, when it sent the images itself. */
  readonly homeAddress?: string;
}

/** A job running here for another home node, as the balancer sees it. */
export interface GuestView {
  readonly id: number;
  readonly home: number;
  /** Its PID 1 on this host. */
  readonly pid: number;
  readonly policy: JobPolicy;
  /** When it arrived here (ms since the epoch). */
  readonly arrived: number;
}

/** A job running here for another home node. */
interface Guest extends GuestView {
  readonly command: readonly string[];
  /** The write end of its stdin; replaced when a failed migration reopens it. */
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** End of file was asked for: the write end is closed. */
  eof?: boolean;
  killedFor?: Deno.Signal;
  /** It moved on (mig.move): its end is not the job's. */
  moved?: boolean;
  /** Done once its output and end were sent home. */
  served?: Promise<void>;
}

/** A job restored here, stopped under its waiter, until mig.commit lets it run. */
interface Restored {
  readonly incoming: Incoming;
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  readonly pid: number;
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** What the source tells the target in the final round's mig.pages, to start the restore early. */
interface RestorePlan {
  /** The job's stdio pipe keys, as mig.begin will carry them. */
  readonly fds: readonly (string | null)[];
  /** The job has a mount namespace of its own (its images will hold one). */
  readonly mounts: boolean;
}

/** Whether `fds` are mig.begin's and mig.pages' stdio keys: three, each `pipe:[INODE]` or null. */
function isStdioKeys(fds: unknown): boolean {
  return Array.isArray(fds) && fds.length === 3 &&
    fds.every((k) => k === null || (typeof k === "string" && /^pipe:\[\d+\]$/.test(k)));
}

function isRestorePlan(value: unknown): value is RestorePlan {
  const plan = value as RestorePlan;
  return typeof value === "object" && value !== null && isStdioKeys(plan.fds) &&
    typeof plan.mounts === "boolean";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const json = (value: unknown) => encoder.encode(JSON.stringify(value));
const now = () => performance.now();

const message = (error: unknown) => error instanceof Error ? error.message : String(error);

/**
 * A `mig.file` body of `length` data bytes, the data left to fill: u32 header length
 * (big-endian), JSON header, then the raw bytes (`data`, a view into `body`).
 */
export function fileChunkBody(
  header: { id: number; name: string; offset: number },
  length: number,
): { body: Uint8Array; data: Uint8Array } {
  const head = json(header);
  const body = new Uint8Array(4 + head.length + length);
  new DataView(body.buffer).setUint32(0, head.length);
  body.set(head, 4);
  return { body, data: body.subarray(4 + head.length) };
}

/** A `mig.file` body holding `data`. */
export function encodeFileChunk(
  header: { id: number; name: string; offset: number },
  data: Uint8Array,
): Uint8Array {
  const chunk = fileChunkBody(header, data.length);
  chunk.data.set(data);
  return chunk.body;
}

/** Reads a `mig.file` body; throws TypeError when it is not one. */
export function decodeFileChunk(
  body: Uint8Array,
): { id: number; name: string; offset: number; data: Uint8Array } {
  if (body.length < 4) throw new TypeError("Cannot read mig.file: too short");
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  if (4 + length > body.length) throw new TypeError("Cannot read mig.file: header cut short");
  const header = bodyOf<{ id: number; name: string; offset: number }>(
    "mig.file",
    body.subarray(4, 4 + length),
    (h) =>
      isId(h.id) && typeof h.name === "string" && /^[A-Za-z0-9][\w.-]*$/.test(h.name) &&
      Number.isInteger(h.offset) && h.offset >= 0,
  );
  return { ...header, data: body.subarray(4 + length) };
}

/**
 * The bytes left in a stopped job's stdin pipe, read through /proc/<pid>/fd/0 (a new read end
 * of the same pipe). The caller has closed the only write end first, so the read ends with end
 * of file once the pipe is empty; a writer left elsewhere makes it fail after `timeoutMs`.
 */
export async function drainStdin(pid: number, timeoutMs = 5000): Promise<Uint8Array> {
  const file = await Deno.open(`/proc/${pid}/fd/0`, { read: true });
  const parts: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const reading = (async () => {
      const buffer = new Uint8Array(65536);
      for (;;) {
        const n = await file.read(buffer);
        if (n === null) return;
        parts.push(buffer.slice(0, n));
        size += n;
      }
    })();
    const late = new Promise<never>((_, reject) =>
      timer = setTimeout(
        () => reject(new Error("the job's stdin pipe has another writer: no end of file")),
        timeoutMs,
      )
    );
    await Promise.race([reading, late]);
  } finally {
    clearTimeout(timer);
    try {
      file.close();
    } catch { /* closed */ }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/**
 * A new write end of a job's stdin pipe, opened through /proc/<pid>/fd/0, with `data` (the
 * bytes drainStdin took out) written first: a failed migration puts them back this way.
 */
export async function reopenStdin(
  pid: number,
  data: Uint8Array,
): Promise<WritableStreamDefaultWriter<Uint8Array>> {
  const file = await Deno.open(`/proc/${pid}/fd/0`, { write: true });
  const writer = file.writable.getWriter();
  if (data.length) void writer.write(data).catch(() => {});
  return writer;
}

/** Continues every process of the tree rooted at `pid` (a dump left them stopped). */
async function continueTree(pid: number): Promise<void> {
  for (const p of [pid, ...await descendants(pid)]) {
    try {
      Deno.kill(p, "SIGCONT");
    } catch { /* gone */ }
  }
}

/** A page link's page server on the target (mig.pages). */
interface PageServer {
  readonly dir: string;
  /** What stores the pages: "om's page receiver" or "criu page-server". */
  readonly what: string;
  readonly logPath: string;
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
}

/** Both ends of a migration, and the guest jobs this node runs for other home nodes. */
export class Migration {
  readonly #options: MigrationOptions;
  readonly #incoming = new Map<number, Incoming>();
  /** Jobs restored here, stopped, waiting for mig.commit. */
  readonly #restored = new Map<number, Restored>();
  /** Jobs between #incoming and #restored: criu restores them. */
  readonly #restoring = new Set<number>();
  /** Jobs between #restored and a guest (or adopted): committed, being set up to run. */
  readonly #committing = new Set<number>();
  /** Jobs this node is moving on (mig.move), until the move has ended either way. */
  readonly #moving = new Set<number>();
  /** At home: jobs committed here on their way home, until the move is settled. */
  readonly #homecomings = new Set<number>();
  /** Jobs whose first mig.commit answer was held (TEST_COMMIT_DELAY_ENV). */
  readonly #commitsHeld = new Set<number>();
  /** Page servers receiving a dump's pages (mig.pages), by job, until mig.begin takes them. */
  readonly #pages = new Map<number, PageServer>();
  /** Restores started with a final round's page link, waiting at their gate (§11.4), by job. */
  readonly #primed = new Map<number, WaitedRestore>();
  readonly #guests = new Map<number, Guest>();
  /**
   * At home: jobs being moved, from here or between two other nodes or home, and where to; what
   * that node pushes for them waits until the move is settled.
   */
  readonly #arrivals = new Map<number, { node: number; done: Promise<void> }>();
  /**
   * At home: the bytes of each output fd a moved job's node has pushed, for that placement (the
   * job's node and migration count), so that a push sent again (HomeLink) is not appended twice.
   * Keyed by the job itself: a later job with the same PID starts afresh, an ended one is let go.
   */
  readonly #received = new WeakMap<Job, { node: number; migrations: number; bytes: number[] }>();
  /** Channels to the nodes moved jobs run on, for their stdin and their signals. */
  readonly #relays = new Map<string, Promise<ChannelClient>>();
  /** At home: the jobs a migration (migrate) is under way for. */
  readonly #migrating = new Set<number>();
  /** On the target: the tail of each job's queue of exclusive steps (#exclusive). */
  readonly #queues = new Map<number, Promise<void>>();
  #preflightUntil = 0;

  constructor(options: MigrationOptions) {
    this.#options = options;
    const pageServer = options.env?.(PAGE_SERVER_ENV);
    if (pageServer && pageServer !== "criu" && pageServer !== "om") {
      options.logger.warn("{name}={value} is neither criu nor om: om's page receiver is used", {
        name: PAGE_SERVER_ENV,
        value: pageServer,
      });
    }
    options.deputy.placer = async (id, node) => void await this.migrate(id, node);
    options.deputy.remote = {
      input: async (job, data, eof) => {
        const body = eof ? { id: job.id, eof: true } : { id: job.id, data: encodeBase64(data!) };
        await this.#relay(job, "input", "job.input", body);
      },
      signal: async (job, signal) => {
        const reply = await this.#relay(job, "signal", "job.signal", { id: job.id, signal });
        return JSON.parse(decoder.decode(reply)).sent;
      },
    };
  }

  get #criu(): Criu {
    const binary = this.#options.criuBinary;
    if (!binary) {
      throw new CriuError("Cannot use CRIU: no criu on PATH and OM_CRIU not set", {
        step: "check",
        hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu does both)",
      });
    }
    return { binary, now };
  }

  #restoreLimitMs(pages: number): number {
    return Number(this.#options.env?.(TEST_RESTORE_LIMIT_ENV)) || restoreLimitMs(pages);
  }

  get #dir(): string {
    return `${this.#options.root}/migrations`;
  }

  /**
   * Removes what migrations left in `migrations/` when an earlier daemon of this node ended in
   * the middle of them (`<id>-in`: images or a reservation, §11.1.1; `<id>-out`): none of it is
   * of use to a new daemon, and on a tmpfs it is memory. Call it at the start, before the
   * channel's handlers serve anything; returns how many directories it removed.
   */
  sweepLeftovers(): number {
    let removed = 0;
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(this.#dir)];
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#options.logger.warn("Cannot read {dir}: {error}", {
          dir: this.#dir,
          error: message(error),
        });
      }
    }
    for (const entry of entries) {
      if (!/^\d+-(in|out)$/.test(entry.name)) continue;
      try {
        Deno.removeSync(`${this.#dir}/${entry.name}`, { recursive: true });
        removed++;
      } catch (error) {
        this.#options.logger.warn("Cannot remove {path}: {error}", {
          path: `${this.#dir}/${entry.name}`,
          error: message(error),
        });
      }
    }
    if (removed > 0) {
      this.#options.logger.info("removed {count} directories that migrations left in {dir}", {
        count: removed,
        dir: this.#dir,
      });
    }
    return removed;
  }

  /** `criu check` and version, remembered for a minute once they passed. */
  async #preflight(logDir: string): Promise<{ version: string; memDirtyTrack: boolean }> {
    const found = await preflight(this.#criu, this.#preflightUntil > now() ? {} : { logDir });
    this.#preflightUntil = now() + 60_000;
    return { version: found.version.text, memDirtyTrack: found.memDirtyTrack };
  }

  async #relay(
    job: Job,
    kind: string,
    command: string,
    body: unknown,
  ): Promise<Uint8Array> {
    const key = `${job.node}:${kind}`;
    let client = this.#relays.get(key);
    if (!client) {
      client = this.#options.connect(job.node);
      client.catch(() => this.#relays.delete(key));
      this.#relays.set(key, client);
    }
    try {
      return await (await client).request(command, json(body), { timeoutMs: 0 });
    } catch (error) {
      this.#options.logger.warn("job {id}: {command} to node {node} failed: {error}", {
        id: job.id,
        command,
        node: job.node,
        error: message(error),
      });
      this.#relays.delete(key);
      void client.then((c) => c.close(), () => {});
      throw error;
    }
  }

  /** The local socket's `job.migrate`. */
  localHandlers(): Map<string, Handler> {
    return new Map<string, Handler>([
      ["job.migrate", async (body) => {
        const { id, to } = bodyOf<{ id: number; to: number | "home" }>(
          "job.migrate",
          body,
          (r) => isId(r.id) && (r.to === "home" || (Number.isInteger(r.to) && r.to >= 0)),
        );
        return json(await this.migrate(id, to));
      }],
    ]);
  }

  /**
   * Moves job `id` (a job of this home node) to node `to`. When it runs here, this node is the
   * source; when it runs elsewhere, that node is asked to be the source (`mig.move`), and the
   * destination may be this node (the job comes home and the deputy adopts it). Throws
   * MigrationError.
   */
  async migrate(id: number, to: number | "home"): Promise<MigrationReport> {
    const { deputy, nodeId } = this.#options;
    const start = now();
    const job = deputy.jobs.get(id);
    const target = to === "home" ? job.home : to;
    if (job.output.exit) {
      throw new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined);
    }
    if (target === job.node) {
      throw new MigrationError(
        `Cannot migrate job ${id}: it runs on node ${target} already`,
        undefined,
      );
    }
    if (this.#migrating.has(id)) {
      throw new MigrationError(`Cannot migrate job ${id}: it is being moved already`, undefined);
    }
    this.#migrating.add(id);
    // Stdin writes wait from here until the job runs again, here or there.
    const release = await deputy.holdInput(id);
    let arrived = noArrival;
    try {
      if (job.node === nodeId) {
        const pid = deputy.localPid(id) ?? id;
        // The target may push output as soon as it commits: it waits until this move is settled
        // (and is refused if the job went on here).
        this.#arrivals.set(id, {
          node: target,
          done: new Promise<void>((resolve) => arrived = resolve),
        });
        const report = await this.#send({
          id,
          pid,
          home: job.home,
          command: job.command,
          policy: job.policy,
          target,
          start,
          detach: () => deputy.detachInput(id).then((d) => d?.eof),
          reattach: (writer, eof) => deputy.reattachInput(id, writer, eof),
        });
        job.migrations++;
        job.movedAt = Date.now();
        await deputy.moved(id, target);
        return { ...report, totalMs: Math.round(now() - start) };
      }
      return await this.#moveRemote(job, target, start);
    } finally {
      if (arrived !== noArrival) {
        this.#arrivals.delete(id);
        arrived();
      }
      release();
      this.#migrating.delete(id);
    }
  }

  /**
   * How many jobs are on their way here: past mig.begin (this node took them) and not yet let
   * run (mig.commit). Each becomes a guest or goes, within the restore's and commit's limits;
   * one whose source went quiet after mig.begin (no mig.restore, no mig.abort) is dropped after
   * STALE_INCOMING_MS (#dropStale).
   */
  arriving(): number {
    return this.#incoming.size + this.#restoring.size + this.#restored.size +
      this.#committing.size;
  }

  /** The guests running here now. */
  guests(): GuestView[] {
    return [...this.#guests.values()].filter((g) => !g.moved).map((g) => ({
      id: g.id,
      home: g.home,
      pid: g.pid,
      policy: g.policy,
      arrived: g.arrived,
    }));
  }

  /**
   * Asks the home of guest `id` to move it to `to` (a node id, or its home): the home decides,
   * as for every move of its jobs, and asks this node to send it (`mig.request`, then `mig.move`).
   */
  async requestMove(id: number, to: number | "home"): Promise<MigrationReport> {
    const guest = this.#guest(id);
    let client: ChannelClient;
    try {
      client = await this.#options.connect(guest.home);
    } catch (error) {
      throw new MigrationError(
        `Cannot move job ${id}: cannot reach its home node ${guest.home}: ${message(error)}`,
        undefined,
      );
    }
    try {
      const reply = await client.request("mig.request", json({ id, to }), { timeoutMs: 0 });
      return JSON.parse(decoder.decode(reply));
    } catch (error) {
      const text = error instanceof Error && "error" in error
        ? String((error as { error: unknown }).error)
        : message(error);
      throw new MigrationError(text, stepOf(text), /\(log: ([^)]+)\)/.exec(text)?.[1]);
    } finally {
      await client.close().catch(() => {});
    }
  }

  /** Asks the node job `job` runs on to move it to `target` (which may be this home node). */
  async #moveRemote(job: Job, target: number, start: number): Promise<MigrationReport> {
    const { deputy, nodeId, logger } = this.#options;
    const id = job.id;
    const source = job.node;
    let arrived!: () => void;
    const arrival = { node: target, done: new Promise<void>((resolve) => arrived = resolve) };
    this.#arrivals.set(id, arrival);
    let client: ChannelClient | undefined;
    try {
      try {
        client = await this.#options.connect(source);
      } catch (error) {
        throw new MigrationError(
          `Cannot migrate job ${id} to node ${target}: cannot reach node ${source}, where it runs: ${
            message(error)
          }`,
          undefined,
        );
      }
      let report: MigrationReport;
      try {
        const reply = await client.request("mig.move", json({ id, to: target }), {
          timeoutMs: 0,
        });
        report = JSON.parse(decoder.decode(reply));
      } catch (error) {
        // The answer may not tell the truth (a lost connection, a node that went away after the
        // commit): where the job runs is asked of both nodes.
        const settled = await this.#settleMove(id, source, target);
        const text = error instanceof Error && "error" in error
          ? String((error as { error: unknown }).error)
          : message(error);
        if (settled !== "moved") {
          const step = stepOf(text);
          throw new MigrationError(
            settled === "unknown"
              ? `${text}; node ${source} and node ${target} did not say where job ${id} runs`
              : text,
            step,
            /\(log: ([^)]+)\)/.exec(text)?.[1],
          );
        }
        logger.warn(
          "job {id}: mig.move to node {source} failed ({error}), but the job runs on node {to}",
          { id, source, to: target, error: text },
        );
        report = {
          id,
          from: source,
          to: target,
          frozenMs: 0,
          transferMs: 0,
          restoreMs: 0,
          totalMs: 0,
          bytes: 0,
        };
      }
      job.migrations++;
      job.movedAt = Date.now();
      if (target === nodeId) await deputy.adopted(id);
      else await deputy.placed(id, target);
      logger.info("job {id}: moved from node {from} to node {to}", {
        id,
        from: source,
        to: target,
      });
      return { ...report, totalMs: Math.round(now() - start) };
    } catch (error) {
      if (target === nodeId) deputy.dropAdoption(id);
      throw error;
    } finally {
      this.#homecomings.delete(id);
      this.#arrivals.delete(id);
      arrived();
      await client?.close().catch(() => {});
    }
  }

  /**
   * After mig.move failed or got no answer: asks the source and the target where job `id` is
   * (mig.status, every 500 ms for up to MOVE_SETTLE_MS) until it is clear. "stayed": the source
   * runs it; "moved": the target runs it and the source has finished with it (its last output is
   * home); "unknown": neither said so in time.
   */
  async #settleMove(
    id: number,
    source: number,
    target: number,
  ): Promise<"moved" | "stayed" | "unknown"> {
    const until = now() + MOVE_SETTLE_MS;
    for (;;) {
      const [atSource, atTarget] = await Promise.all([
        this.#stateAt(source, id),
        this.#stateAt(target, id),
      ]);
      if (atSource === "running") return "stayed";
      if (atSource !== "moving" && atTarget === "running") return "moved";
      if (now() >= until) return "unknown";
      await sleep(500);
    }
  }

  /** Where node `node` says job `id` is (mig.status; this node asks itself); undefined: no answer. */
  async #stateAt(node: number, id: number): Promise<MoveState | undefined> {
    if (node === this.#options.nodeId) return this.#state(id);
    const client = await this.#options.connect(node).catch(() => undefined);
    try {
      const reply = await client?.request("mig.status", json({ id }), { timeoutMs: 5000 });
      return reply ? JSON.parse(decoder.decode(reply)).state : undefined;
    } catch {
      return undefined;
    } finally {
      await client?.close().catch(() => {});
    }
  }

  /**
   * The source's side of a migration: preflight, dump (leave-stopped), the job's unread stdin,
   * the images, the restore at `target`. On failure after the dump the stdin bytes are put back
   * and the job is continued; throws MigrationError. On success the caller kills the old copy.
   */
  async #send(o: {
    id: number;
    pid: number;
    home: number;
    command: readonly string[];
    policy: JobPolicy;
    target: number;
    start: number;
    /** Closes this node's write end of the job's stdin; says whether it had reached its end. */
    detach: () => Promise<boolean | undefined>;
    reattach: (writer: WritableStreamDefaultWriter<Uint8Array>, eof: boolean) => void;
  }): Promise<MigrationReport> {
    const { nodeId, logger } = this.#options;
    const { id, pid, target } = o;
    const dir = `${this.#dir}/${id}-out`;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(dir, { recursive: true });
    const fail = (step: MigrationStep, error: unknown, where = nodeId) => {
      const logPath = error instanceof CriuError ? error.logPath : undefined;
      return new MigrationError(
        `Cannot migrate job ${id} to node ${target}: ${step} failed on node ${where}: ${
          message(error)
        }; the job goes on at node ${nodeId}`,
        step,
        logPath,
      );
    };

    let memDirtyTrack: boolean;
    // A user's job is dumped by criu run as that user (lib/criu/criu.ts asJobUser).
    let user: JobUser | undefined;
    try {
      memDirtyTrack = (await this.#preflight(dir)).memDirtyTrack;
      user = await jobUser(pid);
    } catch (error) {
      throw fail("preflight", error);
    }
    const criuCommand = [...(user ? asJobUser(user) : []), this.#criu.binary];
    // criu dump's action script: its gate (lib/migration/pagelink.ts DUMP_GATE).
    const gateScript = `${this.#dir}/dump-gate`;
    try {
      await Deno.writeTextFile(gateScript, DUMP_GATE, { mode: 0o700 });
      await Deno.chmod(gateScript, 0o700);
    } catch (error) {
      throw fail("preflight", error);
    }
    let client: ChannelClient;
    try {
      client = await this.#options.connect(target);
    } catch (error) {
      throw fail("target check", error);
    }
    try {
      try {
        await client.request("mig.check", json({ id }), { timeoutMs: 30_000 });
      } catch (error) {
        throw fail("target check", error, target);
      }
      const fds: (string | null)[] = [];
      for (const fd of [0, 1, 2]) {
        const key = await fdKey(pid, fd).catch(() => null);
        fds.push(key && /^pipe:\[\d+\]$/.test(key) && !fds.includes(key) ? key : null);
      }
      // The target starts its restore with the final round's page link (§11.4).
      const plan: RestorePlan = {
        fds,
        mounts: (await ownMounts(pid).catch(() => false)) !==
          (this.#options.env?.(TEST_WRONG_PLAN_ENV) !== undefined),
      };

      // Each round's pages go over a page link (lib/migration/pagelink.ts), made before the round starts.
      const abort = () =>
        client.request("mig.abort", json({ id }), { timeoutMs: 5000 }).then(() => {}, () => {});
      let frozen = 0;
      for (const round of dumpRounds(memDirtyTrack)) {
        const token = newPageToken();
        let port: number;
        let link: PageLink;
        const imagesDir = round.dir ? `${dir}/${round.dir}` : dir;
        try {
          // A stop-and-copy dump's pages may have their room taken before the freeze (§11.1.1).
          const reserve = round.action === "dump" && round.prev === undefined
            ? await pageReservation(pid)
            : undefined;
          const reply = await client.request(
            "mig.pages",
            json({
              id,
              home: o.home,
              token,
              ...(round.dir ? { dir: round.dir } : {}),
              ...(round.prev !== undefined ? { prev: round.prev } : {}),
              ...(round.action === "dump" ? { restore: plan } : {}),
              ...(reserve ? { reserve } : {}),
            }),
            // A big job's reservation takes the target longer (fallocate(2) of 2 GiB took 0.5 s
            // here, its warm-up stops at 2 s): 1 s more per 256 MiB, a wide margin.
            { timeoutMs: 30_000 + Math.ceil(reservedBytes(reserve) / 2 ** 28) * 1000 },
          );
          port = JSON.parse(decoder.decode(reply)).port;
          if (!client.hostname) throw new Error(`no TCP address for node ${target}`);
          await Deno.mkdir(imagesDir, { recursive: true });
          // The final dump starts now and waits, started, at its gate (lib/migration/pagelink.ts).
          const gated = round.action === "dump";
          const args = roundArgs(round, {
            pid,
            imagesDir: dir,
            memDirtyTrack,
            user: !!user,
            ...(gated ? { gate: gateScript } : {}),
          });
          link = await linkPages(
            [...criuCommand, ...args],
            { hostname: client.hostname, port, token },
            gated ? { gate: `${imagesDir}/gate` } : {},
          );
        } catch (error) {
          await abort();
          if (error instanceof PageLinkError && error.exitCode !== PAGE_LINK_FAILED) {
            // criu itself ended before its gate: a failed dump, with its log.
            const logPath = `${imagesDir}/${round.action}.log`;
            throw fail(
              round.action,
              await criuFailure(`${round.action} job ${id}`, {
                step: round.action,
                code: error.exitCode,
                logPath,
              }),
            );
          }
          throw fail("target check", error, target);
        }
        // The final dump: frozen from here (criu waited, started, at its gate), its pages sent as
        // criu collects them. (A pre-dump freezes the job only while it collects them.)
        if (round.action === "dump") frozen = now();
        let code: number;
        try {
          code = (await link.go()).code;
        } catch (error) {
          await abort();
          throw fail(round.action, error);
        }
        if (code !== 0) {
          await abort();
          const logPath = `${imagesDir}/${round.action}.log`;
          throw fail(
            round.action,
            await criuFailure(`${round.action} job ${id}`, { step: round.action, code, logPath }),
          );
        }
      }

      // The job is frozen from here until the commit: a target that stops answering fails the
      // step within seconds, not at the request's own limit (lib/channel/peerwatch.ts).
      const watch = <T>(work: Promise<T>) =>
        watched(work, {
          // Where the request went, should the target have left the map meanwhile.
          connect: () => this.#options.connect(target, client.hostname),
          where: `node ${target}`,
        });
      let step: MigrationStep = "dump";
      let transferMs = 0;
      let restoreMs = 0;
      let bytes = 0;
      let stdin: { data: Uint8Array; eof: boolean } | undefined;
      try {
        // Bytes written to the job's stdin that it had not read: CRIU does not refill an
        // inherited pipe, so they go with the images (and back into the pipe on failure).
        const eof = fds[0] ? await o.detach() : undefined;
        if (eof !== undefined) stdin = { data: new Uint8Array(0), eof };
        if (stdin) stdin.data = await drainStdin(pid);
        step = "transfer";
        const begun = await watch(client.request(
          "mig.begin",
          json({
            id,
            home: o.home,
            command: o.command,
            policy: o.policy,
            fds,
            ...(stdin ? { stdin: encodeBase64(stdin.data), stdinEof: stdin.eof } : {}),
          }),
          { timeoutMs: 60_000 },
        ));
        bytes += JSON.parse(decoder.decode(begun)).pages ?? 0;
        const transfer = now();
        bytes += await watch(this.#sendFiles(client, id, dir));
        transferMs = now() - transfer;
        step = "restore";
        const restore = now();
        await watch(
          client.request("mig.restore", json({ id }), {
            timeoutMs: restoreLimitMs(bytes) + 30_000,
          }),
        );
        // Restored there, stopped: from the commit on, the job is the target's.
        step = "commit";
        if (!(await this.#commitAt(client, id, target))) {
          throw new Error(`node ${target} did not let the restored job run`);
        }
        restoreMs = now() - restore;
      } catch (error) {
        // The job runs on here first: the target's copy never runs without mig.commit, so the
        // abort (which waits for a target that may not answer) need not keep the job frozen.
        if (stdin) {
          const writer = await reopenStdin(pid, stdin.data).catch(() => undefined);
          if (writer) o.reattach(writer, stdin.eof);
        }
        await continueTree(pid);
        await abort();
        logger.warn("job {id}: migration to node {to} failed at {step}; continued here", {
          id,
          to: target,
          step,
        });
        const where = error instanceof Deno.errors.ConnectionReset ||
            error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.TimedOut
          ? nodeId
          : target;
        throw fail(step, error, where);
      }
      const frozenMs = now() - frozen;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const report: MigrationReport = {
        id,
        from: nodeId,
        to: target,
        frozenMs: Math.round(frozenMs),
        transferMs: Math.round(transferMs),
        restoreMs: Math.round(restoreMs),
        totalMs: Math.round(now() - o.start),
        bytes,
      };
      logger.info("job {id}: migrated to node {to} ({report})", {
        id,
        to: target,
        report: JSON.stringify(report),
      });
      return report;
    } finally {
      await client.close().catch(() => {});
    }
  }

  /**
   * Asks the target to let the job it restored run (mig.commit); resolves with whether it runs
   * there. An error answer means it does not (never restored, or dropped). No answer leaves it
   * open, so the question is asked again over new connections until the target answers or
   * COMMIT_SETTLE_MS have passed: then the target's copy, had no commit reached it, was killed by
   * its waiter, and the job goes on here. (Had a commit reached a target that then stayed
   * unreachable for that long, its stray copy runs until its output reaches the home, which
   * refuses it: the target kills it then, PROTOCOL.md §11.2.)
   */
  async #commitAt(client: ChannelClient, id: number, target: number): Promise<boolean> {
    const { logger } = this.#options;
    const ask = async (via: ChannelClient) => {
      try {
        await via.request("mig.commit", json({ id }), { timeoutMs: COMMIT_TIMEOUT_MS });
        return true;
      } catch (error) {
        if (error instanceof RemoteError) return false;
        logger.warn("job {id}: mig.commit to node {target} got no answer: {error}", {
          id,
          target,
          error: message(error),
        });
        return undefined;
      }
    };
    const first = await ask(client);
    if (first !== undefined) return first;
    const until = now() + COMMIT_SETTLE_MS;
    while (now() < until) {
      await sleep(500);
      const again = await this.#options.connect(target).catch(() => undefined);
      if (!again) continue;
      try {
        const answer = await ask(again);
        if (answer !== undefined) return answer;
      } finally {
        await again.close().catch(() => {});
      }
    }
    logger.error(
      "job {id}: node {target} never answered mig.commit; the job goes on here (a copy that a " +
        "commit reached there is killed once node {target} reaches the job's home again)",
      { id, target },
    );
    return false;
  }

  /**
   * Sends every image file in `dir` but the logs as `mig.file` chunks, up to FILES_IN_FLIGHT
   * requests at a time (the pages went over the page link: these are a few small files, and one
   * round trip each was most of the transfer); resolves with the bytes sent.
   */
  async #sendFiles(client: ChannelClient, id: number, dir: string): Promise<number> {
    const inFlight = new Set<Promise<unknown>>();
    // The first failed request, kept: a request that fails between two awaits below leaves the
    // set before anyone awaits it, and the transfer must not look complete then.
    let failed: { error: unknown } | undefined;
    let bytes = 0;
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || entry.name.endsWith(".log")) continue;
      using file = await Deno.open(`${dir}/${entry.name}`);
      const size = (await file.stat()).size;
      let offset = 0;
      do {
        // Read straight into the request's body: no buffer per file, no copy.
        const length = Math.min(FILE_CHUNK, size - offset);
        const { body, data } = fileChunkBody({ id, name: entry.name, offset }, length);
        for (let filled = 0; filled < length;) {
          const n = await file.read(data.subarray(filled));
          if (n === null) throw new Error(`image ${entry.name} ended early`);
          filled += n;
        }
        if (failed) throw failed.error;
        const sent = client.request("mig.file", body, { timeoutMs: 60_000 });
        sent.catch((error) => failed ??= { error });
        inFlight.add(sent);
        void sent.finally(() => inFlight.delete(sent)).catch(() => {});
        if (inFlight.size >= FILES_IN_FLIGHT) await Promise.race(inFlight);
        offset += length;
        bytes += length;
      } while (offset < size);
    }
    await Promise.all(inFlight);
    if (failed) throw failed.error;
    return bytes;
  }

  /**
   * `mig.move` at the node a guest runs on, asked by its home: sends the guest to `to` (#send),
   * then marks it moved (its end is not the job's), kills it and waits until its last output
   * reached home, so that the output from its new node follows it.
   */
  async #moveGuest(guest: Guest, to: number): Promise<MigrationReport> {
    this.#moving.add(guest.id);
    try {
      return await this.#moveGuestNow(guest, to);
    } finally {
      this.#moving.delete(guest.id);
    }
  }

  async #moveGuestNow(guest: Guest, to: number): Promise<MigrationReport> {
    const start = now();
    const report = await this.#send({
      id: guest.id,
      pid: guest.pid,
      home: guest.home,
      command: guest.command,
      policy: guest.policy,
      target: to,
      start,
      detach: async () => {
        const eof = guest.eof === true;
        guest.eof = true;
        if (!eof) await guest.stdin.close().catch(() => {});
        return eof;
      },
      reattach: (writer, eof) => {
        guest.stdin = writer;
        guest.eof = eof;
        if (eof) void writer.close().catch(() => {});
      },
    });
    guest.moved = true;
    try {
      Deno.kill(guest.pid, "SIGKILL");
    } catch { /* gone */ }
    await guest.served;
    return { ...report, totalMs: Math.round(now() - start) };
  }

  /** The TCP channel's migration commands and the guest jobs' input and signals. */
  channelHandlers(): Map<string, Handler> {
    const { deputy } = this.#options;
    const ok = () => Promise.resolve(json({}));
    return new Map<string, Handler>([
      // At home: the node a job runs on asks to move it (its balancer, or expel).
      ["mig.request", async (body, peer) => {
        const { id, to } = bodyOf<{ id: number; to: number | "home" }>(
          "mig.request",
          body,
          (r) => isId(r.id) && (r.to === "home" || (Number.isInteger(r.to) && r.to > 0)),
        );
        this.#movedJob(id, peer);
        return json(await this.migrate(id, to));
      }],
      ["mig.check", async () => {
        await this.#refuseWhenBlocked();
        await Deno.mkdir(this.#dir, { recursive: true });
        return json({ criu: (await this.#preflight(this.#dir)).version });
      }],
      ["mig.move", async (body, peer: Peer) => {
        const { id, to } = bodyOf<{ id: number; to: number }>(
          "mig.move",
          body,
          (r) => isId(r.id) && Number.isInteger(r.to) && r.to > 0,
        );
        const guest = this.#guest(id);
        if (peer.nodeId !== guest.home) {
          throw new Error(`job ${id} is not a job of node ${peer.nodeId}`);
        }
        if (this.#moving.has(id)) throw new Error(`job ${id} is being moved already`);
        const report = await this.#moveGuest(guest, to);
        if (this.#options.env?.(TEST_MOVE_LOSE_REPLY_ENV)) {
          throw new Error(
            `the answer to mig.move was lost (test hook ${TEST_MOVE_LOSE_REPLY_ENV})`,
          );
        }
        return json(report);
      }],
      ["mig.begin", async (body, peer: Peer) => {
        const request = bodyOf<
          {
            id: number;
            home: number;
            command: string[];
            policy?: JobPolicy;
            fds: unknown[];
            stdin?: string;
            stdinEof?: boolean;
          }
        >(
          "mig.begin",
          body,
          (r) =>
            isId(r.id) && Number.isInteger(r.home) && Array.isArray(r.command) &&
            (r.stdin === undefined || typeof r.stdin === "string") &&
            (r.policy === undefined || isJobPolicy(r.policy)) &&
            (r.stdinEof === undefined || typeof r.stdinEof === "boolean") &&
            isStdioKeys(r.fds),
        );
        const stdin = request.stdin ? decodeBase64(request.stdin) : undefined;
        const { id } = request;
        return await this.#exclusive(id, async () => {
          await this.#admit(id, request.home);
          const primed = this.#primed.get(id);
          if (primed && primed.fds.some((key, fd) => key !== request.fds[fd])) {
            // The job's stdio changed since mig.pages: the early restore does not fit.
            await this.#dropPrimed(id);
          }
          const dir = `${this.#dir}/${id}-in`;
          // The pages came during the dump (mig.pages): the page server must have stored them
          // all. When it did not, nothing of this attempt is kept (the source aborts, if it can).
          const pages = await this.#pagesDone(id).catch(async (error) => {
            await this.#dropPrimed(id);
            await Deno.remove(dir, { recursive: true }).catch(() => {});
            throw error;
          });
          if (pages === undefined) {
            await Deno.remove(dir, { recursive: true }).catch(() => {});
            await Deno.mkdir(dir, { recursive: true });
          }
          const incoming: Incoming = {
            id,
            home: request.home,
            command: request.command,
            policy: request.policy ?? DEFAULT_POLICY,
            fds: request.fds as (string | null)[],
            stdin,
            stdinEof: request.stdinEof,
            dir,
            pages: pages ?? 0,
            homeAddress: peer.nodeId === request.home ? peer.address : undefined,
          };
          this.#incoming.set(id, incoming);
          const stale = this.#options.staleMs ?? STALE_INCOMING_MS;
          Deno.unrefTimer(setTimeout(() => void this.#dropStale(incoming, stale), stale));
          return json({ pages: pages ?? 0 });
        });
      }],
      ["mig.pages", async (body) => {
        const request = bodyOf<
          {
            id: number;
            home: number;
            token: string;
            dir?: string;
            prev?: string;
            restore?: RestorePlan;
            reserve?: Record<string, number>;
          }
        >(
          "mig.pages",
          body,
          (r) =>
            isId(r.id) && Number.isInteger(r.home) && isPageToken(r.token) &&
            (r.dir === undefined || (typeof r.dir === "string" && /^pre-\d+$/.test(r.dir))) &&
            (r.prev === undefined ||
              (typeof r.prev === "string" && /^(\.\.\/)?pre-\d+$/.test(r.prev))) &&
            (r.restore === undefined || (r.dir === undefined && isRestorePlan(r.restore))) &&
            (r.reserve === undefined || (r.prev === undefined && isReservation(r.reserve))),
        );
        const { id, token, prev } = request;
        return await this.#exclusive(id, async () => {
          await this.#admit(id, request.home);
          await this.#dropPrimed(id);
          const base = `${this.#dir}/${id}-in`;
          if (prev === undefined) {
            // A first round: whatever an earlier attempt left goes.
            await this.#dropPages(id);
            await Deno.remove(base, { recursive: true }).catch(() => {});
          } else {
            // A round after a pre-dump (§11.3): that round's page server must have ended well.
            await this.#pagesDone(id);
          }
          const dir = request.dir ? `${base}/${request.dir}` : base;
          await Deno.mkdir(dir, { recursive: true });
          const logPath = `${dir}/page-server.log`;
          // om's receiver takes no parent images (§11.3): criu's page server stores those rounds.
          const receiver = prev === undefined && this.#options.env?.(PAGE_SERVER_ENV) !== "criu"
            ? receiverArgs({ imagesDir: dir, logFile: logPath })
            : undefined;
          let listener: PageListener;
          try {
            // The room for the pages is taken now, before the job is frozen (§11.1.1).
            if (receiver && request.reserve) {
              const { warmed } = await reservePages(dir, request.reserve);
              const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
              this.#options.logger.info(
                "job {id}: room for {bytes} of pages taken, {warmed} warmed",
                { id, bytes: mib(reservedBytes(request.reserve)), warmed: mib(warmed) },
              );
            }
            listener = await listenForPages(
              receiver ?? [
                this.#criu.binary,
                ...pageServerArgs({
                  imagesDir: dir,
                  logFile: logPath,
                  psSocket: 0,
                  ...(prev !== undefined ? { prevImagesDir: prev } : {}),
                }),
              ],
              { token, cwd: dir },
            );
          } catch (error) {
            // A first round's directory is its own: a reservation goes with it.
            if (prev === undefined) await Deno.remove(base, { recursive: true }).catch(() => {});
            throw error;
          }
          const { port, child } = listener;
          const what = receiver ? "om's page receiver" : "criu page-server";
          const pages: PageServer = { dir, what, logPath, child, status: child.status };
          this.#pages.set(id, pages);
          if (request.restore) await this.#prime(id, dir, request.restore);
          void this.#watchPages(id, pages);
          return json({ port });
        });
      }],
      ["mig.file", async (body) => {
        const chunk = decodeFileChunk(body);
        const delay = Number(this.#options.env?.(TEST_FILE_DELAY_ENV) ?? 0);
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        const incoming = this.#incoming.get(chunk.id);
        if (!incoming) throw new Error(`no migration of job ${chunk.id} under way here`);
        // A restore waiting at its gate gets the inventory at the go (lib/criu/restore.ts).
        const name = chunk.name === "inventory.img" && this.#primed.get(chunk.id)?.gated
          ? HELD_INVENTORY
          : chunk.name;
        using file = await Deno.open(`${incoming.dir}/${name}`, {
          write: true,
          create: true,
        });
        await file.seek(chunk.offset, Deno.SeekMode.Start);
        let data = chunk.data;
        while (data.length > 0) data = data.subarray(await file.write(data));
        return await ok();
      }],
      ["mig.restore", async (body) => {
        const { id } = bodyOf<{ id: number }>("mig.restore", body, (r) => isId(r.id));
        const incoming = this.#incoming.get(id);
        if (!incoming) throw new Error(`no migration of job ${id} under way here`);
        this.#incoming.delete(id);
        this.#restoring.add(id);
        try {
          const ms = await this.#restore(incoming);
          return json({ ms: Math.round(ms) });
        } finally {
          this.#restoring.delete(id);
        }
      }],
      ["mig.commit", async (body) => {
        const { id } = bodyOf<{ id: number }>("mig.commit", body, (r) => isId(r.id));
        const first = this.#restored.has(id);
        await this.#commitHere(id);
        const hold = Number(this.#options.env?.(TEST_COMMIT_DELAY_ENV) ?? 0);
        if (first && hold > 0 && !this.#commitsHeld.has(id)) {
          this.#commitsHeld.add(id);
          await sleep(hold);
        }
        return json({});
      }],
      ["mig.status", (body) => {
        const { id } = bodyOf<{ id: number }>("mig.status", body, (r) => isId(r.id));
        return Promise.resolve(json({ state: this.#state(id) }));
      }],
      ["mig.abort", async (body) => {
        const { id } = bodyOf<{ id: number }>("mig.abort", body, (r) => isId(r.id));
        return await this.#exclusive(id, async () => {
          const incoming = this.#incoming.get(id);
          // A copy being restored, committed or running here has its own ways to go.
          const beyond = this.#restoring.has(id) || this.#committing.has(id) ||
            this.#guests.has(id) || this.#homecomings.has(id);
          this.#incoming.delete(id);
          await this.#dropRestored(id, "mig.abort");
          await this.#dropPrimed(id);
          await this.#dropPages(id);
          // What came so far goes: images, or a page link's reservation (§11.1.1).
          const dir = incoming?.dir ?? (beyond ? undefined : `${this.#dir}/${id}-in`);
          if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
          return json({});
        });
      }],
      // At home: a moved job's output and end, from the node that runs it.
      ["job.push", async (body, peer) => {
        const push = bodyOf<{ id: number; fd: OutputFd; offset: number; data: string }>(
          "job.push",
          body,
          (r) =>
            isId(r.id) && (r.fd === 1 || r.fd === 2) && Number.isSafeInteger(r.offset) &&
            r.offset >= 0 && typeof r.data === "string",
        );
        await this.#arrived(push.id, peer);
        const job = await this.#movedJob(push.id, peer);
        await deputy.drained(push.id);
        const fresh = this.#fresh(job, peer.nodeId, push.fd, push.offset, decodeBase64(push.data));
        if (fresh.length > 0) {
          job.output.append(push.fd, fresh);
          await job.output.room();
        }
        return json({});
      }],
      ["job.exited", async (body, peer) => {
        const { id, exit } = bodyOf<{ id: number; exit: JobExit }>(
          "job.exited",
          body,
          (r) =>
            isId(r.id) && typeof r.exit === "object" && r.exit !== null &&
            (Number.isInteger((r.exit as { code: number }).code) ||
              typeof (r.exit as { signal: string }).signal === "string"),
        );
        await this.#arrived(id, peer);
        await this.#movedJob(id, peer);
        await deputy.drained(id);
        deputy.jobs.finish(id, exit);
        return json({});
      }],
      // On the node a job moved to: its stdin and signals, from its home.
      ["job.input", async (body) => {
        const request = bodyOf<{ id: number; data?: string; eof?: boolean }>(
          "job.input",
          body,
          (r) => isId(r.id) && (typeof r.data === "string" || r.eof === true),
        );
        const guest = this.#guest(request.id);
        if (request.data && !guest.eof) {
          await guest.stdin.write(decodeBase64(request.data)).catch(() => {});
        }
        if (request.eof && !guest.eof) {
          guest.eof = true;
          await guest.stdin.close().catch(() => {});
        }
        return json({});
      }],
      ["job.signal", async (body) => {
        const { id, signal } = bodyOf<{ id: number; signal: Deno.Signal }>(
          "job.signal",
          body,
          (r) => isId(r.id) && typeof r.signal === "string",
        );
        return json({ sent: await this.#signal(this.#guest(id), signal) });
      }],
    ]);
  }

  /** Output from the node a job is moving to waits until the move is done (and the old node's output is in). */
  async #arrived(id: number, peer: Peer): Promise<void> {
    const arrival = this.#arrivals.get(id);
    if (arrival && arrival.node === peer.nodeId) await arrival.done;
  }

  /**
   * The job `id` that `peer` pushes output or an end for. When it is not recorded there, throws:
   * the disowning error (lib/migration/homelink.ts; that node then kills its copy) when the job verifiably
   * runs elsewhere, here (its source, this node, went on with it after a commit whose answer never
   * came) or at the node recorded, which says so (mig.status); a plain error otherwise (a move
   * that settled as unknown: the copy at `peer` may be the only one).
   */
  async #movedJob(id: number, peer: Peer): Promise<Job> {
    const { deputy, nodeId } = this.#options;
    const job = deputy.jobs.get(id);
    if (job.node === peer.nodeId) return job;
    if (job.node === nodeId) throw new Error(disownedText(id, peer.nodeId));
    if (await this.#stateAt(job.node, id) === "running") {
      throw new Error(disownedText(id, peer.nodeId));
    }
    throw new Error(`job ${id} is recorded on node ${job.node}, not on node ${peer.nodeId}`);
  }

  /**
   * The part of a pushed chunk not appended yet: `offset` is where `data` starts in what `node`
   * has pushed of the job's fd `fd` since it runs there. A chunk sent again after its answer was
   * lost is cut to what is new (nothing, mostly). A gap (pushes lost, e.g. this daemon restarted
   * meanwhile) cannot be filled: it is logged and the data taken from there.
   */
  #fresh(job: Job, node: number, fd: OutputFd, offset: number, data: Uint8Array): Uint8Array {
    let seen = this.#received.get(job);
    if (!seen || seen.node !== node || seen.migrations !== job.migrations) {
      seen = { node, migrations: job.migrations, bytes: [0, 0] };
      this.#received.set(job, seen);
    }
    const have = seen.bytes[fd - 1];
    if (offset > have) {
      this.#options.logger.warn(
        "job {id}: bytes {from} to {to} of its fd {fd} from node {node} never arrived",
        { id: job.id, from: have, to: offset, fd, node },
      );
    }
    seen.bytes[fd - 1] = Math.max(have, offset + data.length);
    return data.subarray(Math.min(data.length, Math.max(0, have - offset)));
  }

  #guest(id: number): Guest {
    const guest = this.#guests.get(id);
    if (!guest) throw new Error(`no job ${id} on this node`);
    return guest;
  }

  /** Whether this node takes job `id` of node `home` (mig.pages, mig.begin); throws if not. */
  async #admit(id: number, home: number): Promise<void> {
    await this.#refuseWhenBlocked();
    if (this.#guests.has(id) || this.#homecomings.has(id)) {
      throw new Error(`job ${id} runs here already`);
    }
    // A copy restored here for an earlier attempt that its source gave up on.
    await this.#dropRestored(id, "a new migration of the job began");
    // A job comes home only when this node asked for it (mig.move).
    if (home === this.#options.nodeId && this.#arrivals.get(id)?.node !== home) {
      throw new Error(`job ${id} is not on its way here`);
    }
  }

  /**
   * Waits for the page server of job `id` (mig.pages) to end, which it does once the dump has
   * sent every page; resolves with the bytes it stored, or undefined when there was none. Throws
   * when it failed.
   */
  async #pagesDone(id: number): Promise<number | undefined> {
    const pages = this.#pages.get(id);
    if (!pages) return undefined;
    this.#pages.delete(id);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(resolve, 30_000, "late"));
    const status = await Promise.race([pages.status, late]).finally(() => clearTimeout(timer));
    if (status === "late" || !status.success) {
      try {
        pages.child.kill("SIGKILL");
      } catch { /* gone */ }
      const code = status === "late" ? "still running after 30000 ms" : `exit code ${status.code}`;
      throw new Error(
        `Cannot store the pages of job ${id}: ${pages.what} ${code} (log: ${pages.logPath})`,
      );
    }
    let bytes = 0;
    for await (const entry of Deno.readDir(pages.dir)) {
      if (/^pages-\d+\.img$/.test(entry.name)) {
        bytes += (await Deno.stat(`${pages.dir}/${entry.name}`)).size;
      }
    }
    return bytes;
  }

  /** Stops the page server of job `id`, if any (a failed or abandoned migration). */
  async #dropPages(id: number): Promise<void> {
    const pages = this.#pages.get(id);
    if (!pages) return;
    this.#pages.delete(id);
    try {
      pages.child.kill("SIGKILL");
    } catch { /* gone */ }
    await pages.status;
  }

  async #refuseWhenBlocked(): Promise<void> {
    if (await this.#options.blocked()) {
      throw new Error(`node ${this.#options.nodeId} blocks guests (mosctl block)`);
    }
  }

  /**
   * Starts the restore of job `id` with its final round's page link, held at its gate until
   * mig.restore (lib/criu/restore.ts, §11.4). Without it the restore starts at mig.restore, which is
   * slower, not wrong: a restore that cannot start early is only logged.
   */
  async #prime(id: number, dir: string, plan: RestorePlan): Promise<void> {
    let run: WaitedRestore;
    try {
      run = await WaitedRestore.start({
        criu: this.#criu.binary,
        dir,
        fds: plan.fds,
        ownMounts: plan.mounts,
        windowSeconds: WAITER_WINDOW_S,
        gated: true,
      });
    } catch (error) {
      this.#options.logger.warn("job {id}: cannot start its restore early: {error}", {
        id,
        error: message(error),
      });
      return;
    }
    this.#primed.set(id, run);
  }

  /**
   * A page server's images that no mig.begin takes leave nothing behind here: when it failed (a
   * source gone or cut off mid-dump: the page link's keepalive ends it, lib/migration/pagelink.ts), the
   * restore held at its gate for them is stopped at once (the pages are incomplete); when it
   * ended either way and no mig.begin came within the stale time (a source that went quiet after
   * its dump), the images go, and so does that restore.
   */
  async #watchPages(id: number, pages: PageServer): Promise<void> {
    const status = await pages.status;
    if (this.#pages.get(id) !== pages) return; // taken by mig.begin, or by a new mig.pages
    if (!status.success) await this.#dropPrimed(id);
    const stale = this.#options.staleMs ?? STALE_INCOMING_MS;
    await new Promise((resolve) => Deno.unrefTimer(setTimeout(resolve, stale)));
    const dropped = await this.#exclusive(id, async () => {
      if (this.#pages.get(id) !== pages) return false;
      this.#pages.delete(id);
      await this.#dropPrimed(id);
      await Deno.remove(`${this.#dir}/${id}-in`, { recursive: true }).catch(() => {});
      return true;
    });
    if (!dropped) return;
    this.#options.logger.warn(
      "job {id}: its page server ended ({how}) and no mig.begin came within {ms} ms; its images " +
        "here were dropped",
      { id, how: status.success ? "exit code 0" : `exit code ${status.code}`, ms: stale },
    );
  }

  /**
   * Drops an image set whose source went quiet after mig.begin (neither mig.restore nor
   * mig.abort came within `ms`): its restore waiting at its gate, its files.
   */
  async #dropStale(incoming: Incoming, ms: number): Promise<void> {
    const dropped = await this.#exclusive(incoming.id, async () => {
      if (this.#incoming.get(incoming.id) !== incoming) return false;
      this.#incoming.delete(incoming.id);
      await this.#dropPrimed(incoming.id);
      await Deno.remove(incoming.dir, { recursive: true }).catch(() => {});
      return true;
    });
    if (!dropped) return;
    this.#options.logger.warn(
      "job {id} of node {home}: no mig.restore within {ms} ms of mig.begin; its images here were dropped",
      { id: incoming.id, home: incoming.home, ms },
    );
  }

  /**
   * Runs `step` once the job's earlier exclusive steps have ended: on the target, what makes or
   * removes a job's `<id>-in` and its page server and held restore (mig.pages, mig.begin,
   * mig.abort, the stale drops) runs one at a time per job, so that a late cleanup never removes
   * what a new attempt has just made.
   */
  #exclusive<T>(id: number, step: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(id) ?? Promise.resolve()).then(step);
    const tail = run.then(() => {}, () => {});
    this.#queues.set(id, tail);
    void tail.then(() => {
      if (this.#queues.get(id) === tail) this.#queues.delete(id);
    });
    return run;
  }

  /** Stops the restore of job `id` waiting at its gate, if any. */
  async #dropPrimed(id: number): Promise<void> {
    const run = this.#primed.get(id);
    if (!run) return;
    this.#primed.delete(id);
    if (run.gated) await run.stop();
  }

  /**
   * Restores an image set under the waiter, stopped (`--leave-stopped`): opens the gate of the
   * restore started with the page link when it fits the images, else starts one; resolves with
   * the restore's time. The job runs only once mig.commit lets it (#commitHere); without that
   * within COMMIT_WINDOW_MS it is killed (#dropRestored).
   */
  async #restore(incoming: Incoming): Promise<number> {
    const { id, dir } = incoming;
    const ownMounts = await hasOwnMounts(dir);
    let run = this.#primed.get(id);
    this.#primed.delete(id);
    if (run && run.ownMounts !== ownMounts) {
      this.#options.logger.info(
        "job {id}: its images {have} a mount namespace, not as announced: restored afresh",
        { id, have: ownMounts ? "have" : "lack" },
      );
      await run.stop();
      run = undefined;
    }
    const limitMs = this.#restoreLimitMs(incoming.pages);
    if (run) {
      await run.open(limitMs).catch(async (error) => {
        await run!.stop().catch(() => {});
        throw error;
      });
    } else {
      run = await WaitedRestore.start({
        criu: this.#criu.binary,
        dir,
        fds: incoming.fds,
        ownMounts,
        windowSeconds: WAITER_WINDOW_S,
        limitMs,
      });
    }
    // The job's unread stdin goes first into its new pipe (it buffers until the job reads).
    const { stdin } = run;
    if (incoming.stdin?.length) void stdin.write(incoming.stdin).catch(() => {});
    if (incoming.stdinEof) void stdin.close().catch(() => {});
    const { pid, ms } = await run.restored(`restore job ${id}`);
    const timer = setTimeout(
      () => void this.#dropRestored(id, `no mig.commit within ${COMMIT_WINDOW_MS} ms`),
      COMMIT_WINDOW_MS,
    );
    this.#restored.set(id, {
      incoming,
      child: run.child,
      status: run.status,
      pid,
      stdin,
      timer,
    });
    return ms;
  }

  /**
   * mig.commit: lets the job restored here run (the waiter keeps it, SIGCONT), as a guest or, at
   * its home, adopted by the deputy. Asked again once it runs, it answers the same; throws when
   * there is no such job here (never restored, or dropped), so that the source can go on.
   */
  async #commitHere(id: number): Promise<void> {
    const restored = this.#restored.get(id);
    if (!restored) {
      if (this.#state(id) === "running") return;
      throw new Error(`job ${id} was not restored here, or was dropped`);
    }
    this.#restored.delete(id);
    this.#committing.add(id);
    try {
      await this.#landHere(id, restored);
    } finally {
      this.#committing.delete(id);
    }
  }

  /** #commitHere's work once the job is no longer #restored: it runs, adopted or a guest. */
  async #landHere(id: number, restored: Restored): Promise<void> {
    const { logger, nodeId } = this.#options;
    clearTimeout(restored.timer);
    const { incoming, child, status, pid, stdin } = restored;
    try {
      child.kill("SIGUSR1");
    } catch { /* the waiter is gone: so is the job, and its end is reported below */ }
    // From here the job is this node's: nothing below may fail the commit.
    await continueTree(pid).catch(() => {});
    const dir = incoming.dir;
    if (incoming.home === nodeId) {
      // The job came home: the deputy runs it again, once the move is done.
      this.#homecomings.add(id);
      this.#options.deputy.adopt(id, child, pid, stdin, incoming.stdinEof === true);
      logger.info("job {id}: restored at home as pid {pid}", { id, pid });
      void Deno.remove(dir, { recursive: true }).catch(() => {});
      return;
    }
    const guest: Guest = {
      id,
      home: incoming.home,
      command: incoming.command,
      policy: incoming.policy,
      arrived: Date.now(),
      pid,
      stdin,
      eof: incoming.stdinEof === true,
    };
    this.#guests.set(id, guest);
    const record = `${this.#options.root}/jobs/${id}`;
    await Deno.mkdir(`${this.#options.root}/jobs`, { recursive: true }).catch(() => {});
    await replaceFile(
      record,
      json({
        pid: id,
        node: nodeId,
        home: incoming.home,
        command: incoming.command,
        started: Date.now(),
        policy: incoming.policy,
      }),
    ).catch(() => {});
    logger.info("job {id} of node {home}: restored here as pid {pid}", {
      id,
      home: incoming.home,
      pid,
    });
    guest.served = this.#serveGuest(guest, child, status, incoming.homeAddress, dir, record);
  }

  /** Kills a restored job that was never let run, and forgets it. */
  async #dropRestored(id: number, why: string): Promise<void> {
    const restored = this.#restored.get(id);
    if (!restored) return;
    this.#restored.delete(id);
    clearTimeout(restored.timer);
    try {
      Deno.kill(restored.pid, "SIGKILL");
    } catch { /* gone */ }
    // The waiter would wait out its commit window before it noticed: it has nothing left to do.
    try {
      restored.child.kill("SIGKILL");
    } catch { /* gone */ }
    await restored.stdin.close().catch(() => {});
    await Promise.all([restored.child.stdout.cancel(), restored.child.stderr.cancel()]).catch(
      () => {},
    );
    await restored.status;
    await Deno.remove(restored.incoming.dir, { recursive: true }).catch(() => {});
    this.#options.logger.warn("job {id}: its restored copy here was dropped: {why}", { id, why });
  }

  /** Where job `id` is as this node sees it (mig.status). */
  #state(id: number): MoveState {
    if (this.#moving.has(id)) return "moving";
    if (this.#restored.has(id) || this.#restoring.has(id)) return "restored";
    const guest = this.#guests.get(id);
    if ((guest && !guest.moved) || this.#homecomings.has(id) || this.#committing.has(id)) {
      return "running";
    }
    return "none";
  }

  /** Pushes a guest's output home, then its exit; forgets it. */
  async #serveGuest(
    guest: Guest,
    child: Deno.ChildProcess,
    status: Promise<Deno.CommandStatus>,
    homeAddress: string | undefined,
    dir: string,
    record: string,
  ): Promise<void> {
    const { logger } = this.#options;
    const { id } = guest;
    const home = new HomeLink({
      connect: () => this.#options.connect(guest.home, homeAddress),
      where: `node ${guest.home}`,
      onRetry: (command, error) =>
        logger.warn("job {id}: {command} to its home node {home} failed ({error}); sending again", {
          id,
          command,
          home: guest.home,
          error: message(error),
        }),
    });
    // Why this copy was ended here, not by the job itself: its output and end are not sent home.
    let orphaned: string | undefined;
    let exited = false;
    void status.then(() => exited = true);
    const orphan = (why: string) => {
      if (orphaned !== undefined || guest.moved) return;
      orphaned = why;
      logger.error("job {id} of node {home}: {why}: its copy here is killed", {
        id,
        home: guest.home,
        why,
      });
      if (exited) return; // its PID may be another process's by now
      try {
        Deno.kill(guest.pid, "SIGKILL");
      } catch { /* gone */ }
    };
    const failed = (error: unknown, what: string) => {
      if (isDisowned(error)) orphan(`its home says it runs elsewhere`);
      else if (isUnknownJob(error) && !exited) {
        orphan(`its home has no such job (its daemon restarted, or the job ended there)`);
      } else if (error instanceof HomeUnreachableError) orphan(error.message);
      else logger.warn(`job {id}: ${what}: {error}`, { id, error: message(error) });
    };
    const push = async (stream: ReadableStream<Uint8Array>, fd: OutputFd) => {
      let offset = 0;
      for await (const chunk of stream) {
        if (orphaned !== undefined) continue;
        await home.send("job.push", json({ id, fd, offset, data: encodeBase64(chunk) })).catch(
          (error) => failed(error, "output lost on the way home"),
        );
        offset += chunk.length;
      }
    };
    const [ended] = await Promise.all([status, push(child.stdout, 1), push(child.stderr, 2)]);
    this.#guests.delete(id);
    await guest.stdin.close().catch(() => {});
    const exit: JobExit = guest.killedFor ? { signal: guest.killedFor } : { code: ended.code };
    if (guest.moved || orphaned !== undefined) {
      await home.close();
      await Deno.remove(record).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (guest.moved) logger.info("job {id} of node {home}: moved on", { id, home: guest.home });
      return;
    }
    await home.send("job.exited", json({ id, exit })).catch((error) =>
      failed(error, "its exit did not reach home")
    );
    await home.close();
    await Deno.remove(record).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    logger.info("job {id} of node {home}: ended with {exit}", {
      id: guest.id,
      home: guest.home,
      exit: JSON.stringify(exit),
    });
  }

  /** Delivers a signal to a guest as Deputy.signal does at home. */
  async #signal(guest: Guest, signal: Deno.Signal): Promise<Deno.Signal> {
    const number = SIGNAL_NUMBERS[signal];
    if (number === undefined) throw new RangeError(`Cannot send "${signal}": unknown signal`);
    let sent = signal;
    if (TERMINATING.includes(signal)) {
      const status = await Deno.readTextFile(`/proc/${guest.pid}/status`).catch(() => "");
      if (status && !handlesSignal(status, number)) {
        guest.killedFor = signal;
        sent = "SIGKILL";
      }
    }
    try {
      if (sent !== "SIGKILL" && (signal === "SIGINT" || signal === "SIGQUIT")) {
        Deno.kill(-guest.pid, signal);
      } else Deno.kill(guest.pid, sent);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return sent;
  }

  /** Closes the relays; guest jobs go on. */
  async close(): Promise<void> {
    for (const client of this.#relays.values()) await client.then((c) => c.close(), () => {});
    this.#relays.clear();
  }
}
