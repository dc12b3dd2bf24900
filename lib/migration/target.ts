/**
 * The target of a move (PROTOCOL.md §11, steps 3-6): the node a job comes to. It admits the job
 * (not blocked, not here already), receives its pages over a page link (`mig.pages`, with the room
 * for them taken before the freeze), the rest of its images (`mig.begin`, `mig.file`), restores it
 * stopped under a waiter (`mig.restore`, lib/criu/restore.ts; for the final round started early
 * and held at a gate, §11.4), and lets it run at `mig.commit`, when it lands: adopted at home, or
 * a guest. What a source gives up on goes (`mig.abort`, the stale drops, the commit window).
 *
 * What it takes in is bounded before the job is frozen (lib/migration/admission.ts): the job's
 * user must be the same user here (lib/migration/jobowner.ts), at most MAX_INCOMING jobs come at
 * once, and what they announce must fit the budget; `mig.file` writes only the image files
 * `mig.begin` announced, within their sizes (files.ts). After the restore, before the commit, every
 * restored task is checked to hold nothing the job's user does not (credentials.ts).
 *
 * One job's way here is one {@linkcode Arrival} with a phase, from `mig.begin` until it runs or
 * goes; the page server and the early restore, which come before it (`mig.pages`), are kept by
 * job beside it. What makes or removes a job's `<id>-in`, its page server or its held restore runs
 * one step at a time per job (#exclusive), so that a late cleanup never removes what a new attempt
 * has just made.
 *
 * Longer than 600 lines: one role's state machine; its steps share the arrival records, the page
 * servers, the held restores and the per-job queue, and each is short.
 */
import { hasOwnMounts } from "../criu/startjob.ts";
import { pageServerArgs } from "../criu/args.ts";
import { HELD_INVENTORY, WaitedRestore } from "../criu/restore.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../jobs/table.ts";
import { decodeBase64 } from "../jobs/jobwire.ts";
import { identifyProcess, type ProcessIdentity, signalProcess } from "../jobs/processid.ts";
import { sleep } from "../base/time.ts";
import { listenForPages, type PageListener, type PageServerEnd } from "./pagelistener.ts";
import { receiverArgs, reservedBytes, reservePages } from "./pagereceiver.ts";
import type { BeginRequest, PagesRequest, RestorePlan } from "./bodies.ts";
import {
  chunkRefusal,
  decodeFileChunk,
  FILES_MAX_BYTES,
  filesTotal,
  userImagesRefusal,
} from "./files.ts";
import { Admission, mib } from "./admission.ts";
import { type JobOwner, ownerRefusal, sameOwner, userNamed } from "./jobowner.ts";
import { checkRestoredTasks, credentialRule, restoredTasks } from "./credentials.ts";
import { checkRestoredFiles } from "./restoredfiles.ts";
import { checkImages } from "./imagecheck.ts";
import { continueTree } from "./stdio.ts";
import { message, type MoveState } from "./errors.ts";
import type { RoleContext } from "./context.ts";
import { COMMIT_WINDOW_MS, restoreLimitMs, STALE_INCOMING_MS, WAITER_WINDOW_S } from "./limits.ts";

/**
 * What stores a page link's pages on the target (PROTOCOL.md §11.1): unset or `om`, om's page
 * receiver (lib/migration/pagereceiver.ts) for a dump with no parent images, `criu page-server`
 * for the others; `criu`, `criu page-server` always.
 */
export const PAGE_SERVER_ENV = "OM_PAGE_SERVER";

/** An image set being received: what mig.begin said of the job. */
export interface Incoming {
  readonly id: number;
  readonly home: number;
  /** The job's user, as mig.begin named it: its restored tasks may hold no more. */
  readonly user: JobOwner;
  /** The image files mig.begin announced, bytes by name: mig.file writes these only. */
  readonly files: Readonly<Record<string, number>>;
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

/** A job restored here, stopped under its waiter. */
export interface RestoredCopy {
  /** The waiter, the restored job's parent. */
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  /** The job's PID 1 on this host. */
  readonly pid: number;
  /** That PID 1 as restored (PID and start time): what every later signal checks. */
  readonly who: ProcessIdentity | undefined;
  /** The write end of its new stdin. */
  readonly stdin: WritableStreamDefaultWriter<Uint8Array>;
}

/** SIGKILL to `who` if it is still that process (lib/jobs/processid.ts). */
function killProcess(who: ProcessIdentity): void {
  try {
    signalProcess(who, "SIGKILL");
  } catch { /* not ours to kill */ }
}

/**
 * Where one job's arrival is: "begun" (mig.begin took it: its files come), "restoring" (criu
 * restores it), "restored" (stopped, waiting for mig.commit), "committing" (let run, landing).
 */
export type ArrivalPhase = "begun" | "restoring" | "restored" | "committing";

/** One job on its way here, from mig.begin until it runs here or goes. */
interface Arrival {
  readonly incoming: Incoming;
  phase: ArrivalPhase;
  /** In phase "restored": the copy, and the timer that drops it when no commit comes. */
  restored?: RestoredCopy & { readonly timer: ReturnType<typeof setTimeout> };
  /** The mig.file writes under way: mig.restore waits for them before it checks the images. */
  readonly writes: Set<Promise<void>>;
}

/** A page link's page server on the target (mig.pages), with the link's end. */
interface PageServer {
  readonly dir: string;
  /** The job's user as mig.pages named it; mig.begin must name the same. */
  readonly user: JobOwner;
  /** What stores the pages: "om's page receiver" or "criu page-server". */
  readonly what: string;
  readonly logPath: string;
  readonly listener: PageListener;
}

/** How a page server ended, for messages: its exit code, or why its page link failed. */
function howEnded(end: PageServerEnd): string {
  return end.link !== undefined ? `the page link failed: ${end.link}` : `exit code ${end.code}`;
}

/** What the target needs of the rest of the node. */
export interface TargetLinks {
  /** Whether this node refuses guests (admin/block). */
  blocked(): Promise<boolean>;
  /** A copy of job `id` is here already: a guest (even one moving on), or a job come home. */
  hosts(id: number): boolean;
  /** Job `id` runs here: a guest that has not moved on, or a job come home. */
  runs(id: number): boolean;
  /** The home (this node) asked for job `id` to come back here (its mig.move is under way). */
  awaitsHome(id: number): boolean;
  /** Lets a committed job run here: adopted at its home, or a guest. Must not fail. */
  land(incoming: Incoming, copy: RestoredCopy): Promise<void>;
}

/** Options of {@linkcode Target}. */
export interface TargetOptions {
  readonly links: TargetLinks;
  readonly env?: (name: string) => string | undefined;
  /** Whether root's jobs from other nodes may come here (root_guests); default yes. */
  readonly rootGuests?: () => boolean;
  /**
   * How long a job taken by mig.begin waits here for mig.restore before its images are dropped
   * (default STALE_INCOMING_MS); tests shorten it.
   */
  readonly staleMs?: number;
}

/** The target's side of every move to this node. */
export class Target {
  readonly #context: RoleContext;
  readonly #options: TargetOptions;
  readonly #arrivals = new Map<number, Arrival>();
  /** Page servers receiving a dump's pages (mig.pages), by job, until mig.begin takes them. */
  readonly #pages = new Map<number, PageServer>();
  /** Restores started with a final round's page link, waiting at their gate (§11.4), by job. */
  readonly #primed = new Map<number, WaitedRestore>();
  /** Jobs whose first mig.commit answer was held (faults.commitDelayMs). */
  readonly #commitsHeld = new Set<number>();
  /** The tail of each job's queue of exclusive steps (#exclusive). */
  readonly #queues = new Map<number, Promise<void>>();
  /** How many jobs come at once, and the room they may take (lib/migration/admission.ts). */
  readonly #admission: Admission;

  constructor(context: RoleContext, options: TargetOptions) {
    this.#context = context;
    this.#options = options;
    this.#admission = new Admission({
      nodeId: context.nodeId,
      dir: context.dir,
      incoming: () => [
        ...this.#pages.keys(),
        ...this.#primed.keys(),
        ...[...this.#arrivals].flatMap(([id, { phase }]) => phase === "committing" ? [] : [id]),
      ],
    });
    const pageServer = options.env?.(PAGE_SERVER_ENV);
    if (pageServer && pageServer !== "criu" && pageServer !== "om") {
      context.logger.warn("{name}={value} is neither criu nor om: om's page receiver is used", {
        name: PAGE_SERVER_ENV,
        value: pageServer,
      });
    }
  }

  get #dir(): string {
    return this.#context.dir;
  }

  /**
   * How many jobs are on their way here: past mig.begin (this node took them) and not yet let
   * run (mig.commit). Each becomes a guest or goes, within the restore's and commit's limits;
   * one whose source went quiet after mig.begin (no mig.restore, no mig.abort) is dropped after
   * STALE_INCOMING_MS (#dropStale).
   */
  arriving(): number {
    return this.#arrivals.size;
  }

  /** Where job `id` is as the target sees it: "restored", "running" (landing) or undefined. */
  state(id: number): MoveState | undefined {
    const phase = this.#arrivals.get(id)?.phase;
    if (phase === "restoring" || phase === "restored") return "restored";
    if (phase === "committing") return "running";
    return undefined;
  }

  /**
   * Removes what migrations left in `migrations/` when an earlier daemon of this node ended in
   * the middle of them (`<id>-in`: images or a reservation, §11.1.1; `<id>-out`): none of it is
   * of use to a new daemon, and on a tmpfs it is memory. Call it at the start, before the
   * channel's handlers serve anything; returns how many directories it removed.
   */
  sweepLeftovers(): number {
    const { logger } = this.#context;
    let removed = 0;
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(this.#dir)];
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        logger.warn("Cannot read {dir}: {error}", { dir: this.#dir, error: message(error) });
      }
    }
    for (const entry of entries) {
      if (!/^\d+-(in|out)$/.test(entry.name)) continue;
      try {
        Deno.removeSync(`${this.#dir}/${entry.name}`, { recursive: true });
        removed++;
      } catch (error) {
        logger.warn("Cannot remove {path}: {error}", {
          path: `${this.#dir}/${entry.name}`,
          error: message(error),
        });
      }
    }
    if (removed > 0) {
      logger.info("removed {count} directories that migrations left in {dir}", {
        count: removed,
        dir: this.#dir,
      });
    }
    return removed;
  }

  /** mig.check: whether this node takes guests, and its CRIU's version. */
  async check(): Promise<{ criu: string }> {
    await this.#refuseWhenBlocked();
    await Deno.mkdir(this.#dir, { recursive: true });
    return { criu: (await this.#context.criu.preflight(this.#dir)).version };
  }

  /** mig.pages: listens for a round's page link; for the final round, starts the restore. */
  pages(request: PagesRequest): Promise<{ port: number }> {
    const { id, token, secret, prev } = request;
    return this.#exclusive(id, async () => {
      await this.#admit(id, request.home, request.user);
      // Counted here from now on; its pages' room is promised until it is taken.
      using _admitted = await this.#admission.take(id, {
        kind: "pages",
        bytes: prev === undefined ? reservedBytes(request.reserve) : 0,
        what: "its pages",
      });
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
          const { warmed } = await reservePages(dir, request.reserve).finally(() =>
            this.#admission.settle(id, "pages")
          );
          this.#context.logger.info(
            "job {id}: room for {bytes} of pages taken, {warmed} warmed",
            { id, bytes: mib(reservedBytes(request.reserve)), warmed: mib(warmed) },
          );
        }
        listener = await listenForPages(
          receiver ?? [
            this.#context.criu.criu.binary,
            ...pageServerArgs({
              imagesDir: dir,
              logFile: logPath,
              psSocket: 0,
              ...(prev !== undefined ? { prevImagesDir: prev } : {}),
            }),
          ],
          {
            token,
            secret,
            dir,
            logFile: logPath,
            port: this.#context.faults.pagePortVia?.listen,
          },
        );
      } catch (error) {
        // A first round's directory is its own: a reservation goes with it.
        if (prev === undefined) await Deno.remove(base, { recursive: true }).catch(() => {});
        throw error;
      }
      const what = receiver ? "om's page receiver" : "criu page-server";
      const pages: PageServer = { dir, user: request.user, what, logPath, listener };
      this.#pages.set(id, pages);
      if (request.restore) await this.#prime(id, dir, request.restore);
      void this.#watchPages(id, pages);
      return { port: this.#context.faults.pagePortVia?.announce ?? listener.port };
    });
  }

  /**
   * mig.begin: takes the job (its pages, stored by now; its record and unread stdin), and waits
   * for its other files and mig.restore. `homeAddress`: where the home was heard from, when the
   * home itself sends the job.
   */
  begin(request: BeginRequest, homeAddress: string | undefined): Promise<{ pages: number }> {
    const stdin = request.stdin ? decodeBase64(request.stdin) : undefined;
    const { id } = request;
    return this.#exclusive(id, async () => {
      await this.#admit(id, request.home, request.user);
      const server = this.#pages.get(id);
      if (server && !sameOwner(server.user, request.user)) {
        throw new Error(`Cannot take job ${id}: mig.begin names another user than mig.pages did`);
      }
      const images = request.user.uid === 0 ? undefined : userImagesRefusal(request.files);
      if (images) throw new Error(`Cannot take job ${id} of user ${request.user.name}: ${images}`);
      const total = filesTotal(request.files);
      if (total > FILES_MAX_BYTES) {
        throw new Error(
          `Cannot take job ${id}: its image files hold ${mib(total)}, more than the ` +
            `${mib(FILES_MAX_BYTES)} a node takes`,
        );
      }
      using _admitted = await this.#admission.take(id, {
        kind: "files",
        bytes: total,
        what: "its image files",
      });
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
        user: request.user,
        files: request.files,
        command: request.command,
        policy: request.policy ?? DEFAULT_POLICY,
        fds: request.fds,
        stdin,
        stdinEof: request.stdinEof,
        dir,
        pages: pages ?? 0,
        homeAddress,
      };
      this.#arrivals.set(id, { incoming, phase: "begun", writes: new Set() });
      const stale = this.#options.staleMs ?? STALE_INCOMING_MS;
      Deno.unrefTimer(setTimeout(() => void this.#dropStale(incoming, stale), stale));
      return { pages: pages ?? 0 };
    });
  }

  /** mig.file: stores one chunk of an image file of a job past mig.begin. */
  async file(body: Uint8Array): Promise<void> {
    const chunk = decodeFileChunk(body);
    const delay = this.#context.faults.fileDelayMs ?? 0;
    if (delay > 0) await sleep(delay);
    const arrival = this.#arrivals.get(chunk.id);
    if (arrival?.phase !== "begun") {
      throw new Error(`no migration of job ${chunk.id} under way here`);
    }
    const refused = chunkRefusal(arrival.incoming.files, { ...chunk, length: chunk.data.length });
    if (refused) throw new Error(`Cannot store image ${chunk.name} of job ${chunk.id}: ${refused}`);
    // A restore waiting at its gate gets the inventory at the go (lib/criu/restore.ts).
    const name = chunk.name === "inventory.img" && this.#primed.get(chunk.id)?.gated
      ? HELD_INVENTORY
      : chunk.name;
    const write = (async () => {
      using file = await Deno.open(`${arrival.incoming.dir}/${name}`, {
        write: true,
        create: true,
      });
      await file.seek(chunk.offset, Deno.SeekMode.Start);
      let data = chunk.data;
      while (data.length > 0) data = data.subarray(await file.write(data));
    })();
    arrival.writes.add(write);
    await write.finally(() => arrival.writes.delete(write));
  }

  /**
   * mig.restore: restores the job under the waiter, stopped (`--leave-stopped`): opens the gate
   * of the restore started with the page link when it fits the images, else starts one; resolves
   * with the restore's time. The job runs only once mig.commit lets it; without that within
   * COMMIT_WINDOW_MS it is killed (#dropRestored).
   */
  async restore(id: number): Promise<{ ms: number }> {
    const arrival = this.#arrivals.get(id);
    if (arrival?.phase !== "begun") throw new Error(`no migration of job ${id} under way here`);
    arrival.phase = "restoring";
    // No mig.file writes from now on; those under way end before the images are checked.
    await Promise.allSettled([...arrival.writes]);
    // Its files are all here: what is written is counted in the free space from now on.
    this.#admission.settle(id, "files");
    let copy: RestoredCopy & { ms: number };
    try {
      copy = await this.#restore(arrival.incoming);
    } catch (error) {
      if (this.#arrivals.get(id) === arrival) this.#arrivals.delete(id);
      throw error;
    }
    const timer = setTimeout(
      () => void this.#dropRestored(id, `no mig.commit within ${COMMIT_WINDOW_MS} ms`),
      COMMIT_WINDOW_MS,
    );
    arrival.phase = "restored";
    arrival.restored = { ...copy, timer };
    return { ms: Math.round(copy.ms) };
  }

  /**
   * mig.commit: lets the job restored here run (the waiter keeps it, SIGCONT), as a guest or, at
   * its home, adopted by the deputy. Asked again once it runs, it answers the same; throws when
   * there is no such job here (never restored, or dropped), so that the source can go on.
   */
  async commit(id: number): Promise<void> {
    const arrival = this.#arrivals.get(id);
    const first = arrival?.phase === "restored";
    if (arrival?.phase === "restored" && arrival.restored) {
      arrival.phase = "committing";
      try {
        await this.#land(arrival.incoming, arrival.restored);
      } finally {
        this.#arrivals.delete(id);
      }
    } else if (!(arrival?.phase === "committing" || this.#options.links.runs(id))) {
      throw new Error(`job ${id} was not restored here, or was dropped`);
    }
    const hold = this.#context.faults.commitDelayMs ?? 0;
    if (first && hold > 0 && !this.#commitsHeld.has(id)) {
      this.#commitsHeld.add(id);
      await sleep(hold);
    }
  }

  /** mig.abort: drops whatever of job `id` is here and not let run (a failed move). */
  abort(id: number): Promise<void> {
    return this.#exclusive(id, async () => {
      const arrival = this.#arrivals.get(id);
      const incoming = arrival?.phase === "begun" ? arrival.incoming : undefined;
      // A copy being restored, committed or running here has its own ways to go.
      const beyond = arrival?.phase === "restoring" || arrival?.phase === "committing" ||
        this.#options.links.hosts(id);
      if (incoming) this.#arrivals.delete(id);
      await this.#dropRestored(id, "mig.abort");
      await this.#dropPrimed(id);
      await this.#dropPages(id);
      // What came so far goes: images, or a page link's reservation (§11.1.1).
      const dir = incoming?.dir ?? (beyond ? undefined : `${this.#dir}/${id}-in`);
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    });
  }

  /** The commit's work: the job runs, adopted or a guest; nothing here may fail the commit. */
  async #land(
    incoming: Incoming,
    restored: RestoredCopy & { readonly timer: ReturnType<typeof setTimeout> },
  ): Promise<void> {
    clearTimeout(restored.timer);
    try {
      restored.child.kill("SIGUSR1");
    } catch { /* the waiter is gone: so is the job, and its end is reported where it lands */ }
    // From here the job is this node's: nothing below may fail the commit.
    await continueTree(restored.who).catch(() => {});
    await this.#options.links.land(incoming, restored);
  }

  async #refuseWhenBlocked(): Promise<void> {
    if (await this.#options.links.blocked()) {
      throw new Error(`node ${this.#context.nodeId} blocks guests (mosctl block)`);
    }
  }

  /**
   * Whether this node takes job `id` of node `home` run by `user` (mig.pages, mig.begin); throws
   * if not.
   */
  async #admit(id: number, home: number, user: JobOwner): Promise<void> {
    await this.#refuseWhenBlocked();
    // root's jobs from elsewhere only where root_guests allows them; this node's own come home.
    const rootGuests = this.#options.rootGuests?.() ?? true;
    if (!rootGuests && user.uid === 0 && home !== this.#context.nodeId) {
      throw new Error(
        `Cannot take job ${id}: node ${this.#context.nodeId} takes no root jobs from other ` +
          "nodes (root_guests = no)",
      );
    }
    // The same user here, or the job does not come (before it is frozen: mig.pages asks first).
    const here = await userNamed(user.name);
    const refused = ownerRefusal(user, { here, nodeId: this.#context.nodeId });
    if (refused) throw new Error(`Cannot take job ${id}: ${refused}`);
    const phase = this.#arrivals.get(id)?.phase;
    if (this.#options.links.hosts(id) || phase === "committing") {
      throw new Error(`job ${id} runs here already`);
    }
    if (phase === "restoring") throw new Error(`job ${id} is being restored here`);
    // A copy restored here for an earlier attempt that its source gave up on.
    await this.#dropRestored(id, "a new migration of the job began");
    // A job comes home only when this node asked for it (mig.move).
    if (home === this.#context.nodeId && !this.#options.links.awaitsHome(id)) {
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
    const end = await Promise.race([pages.listener.done, late]).finally(() => clearTimeout(timer));
    if (end === "late" || !end.success) {
      await pages.listener.stop();
      const how = end === "late"
        ? `${pages.what} still running after 30000 ms`
        : end.link !== undefined
        ? howEnded(end)
        : `${pages.what} ${howEnded(end)}`;
      throw new Error(`Cannot store the pages of job ${id}: ${how} (log: ${pages.logPath})`);
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
    await pages.listener.stop();
  }

  /**
   * Starts the restore of job `id` with its final round's page link, held at its gate until
   * mig.restore (lib/criu/restore.ts, §11.4). Without it the restore starts at mig.restore, which
   * is slower, not wrong: a restore that cannot start early is only logged.
   */
  async #prime(id: number, dir: string, plan: RestorePlan): Promise<void> {
    let run: WaitedRestore;
    try {
      run = await WaitedRestore.start({
        criu: this.#context.criu.criu.binary,
        dir,
        fds: plan.fds,
        ownMounts: plan.mounts,
        windowSeconds: WAITER_WINDOW_S,
        gated: true,
      });
    } catch (error) {
      this.#context.logger.warn("job {id}: cannot start its restore early: {error}", {
        id,
        error: message(error),
      });
      return;
    }
    this.#primed.set(id, run);
  }

  /**
   * A page server's images that no mig.begin takes leave nothing behind here: when it failed (a
   * source gone or cut off mid-dump, whose silence ends the link, or a record that did not open:
   * lib/migration/pagerelay.ts), the restore held at its gate for them is stopped at once (the
   * pages are incomplete); when it ended either way and no mig.begin came within the stale time
   * (a source that went quiet after its dump), the images go, and so does that restore.
   */
  async #watchPages(id: number, pages: PageServer): Promise<void> {
    const end = await pages.listener.done;
    // Its pages are written, or never will be: the free space counts them from now on.
    this.#admission.settle(id, "pages");
    if (this.#pages.get(id) !== pages) return; // taken by mig.begin, or by a new mig.pages
    if (!end.success) await this.#dropPrimed(id);
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
    this.#context.logger.warn(
      "job {id}: its page server ended ({how}) and no mig.begin came within {ms} ms; its images " +
        "here were dropped",
      { id, how: howEnded(end), ms: stale },
    );
  }

  /**
   * Drops an image set whose source went quiet after mig.begin (neither mig.restore nor
   * mig.abort came within `ms`): its restore waiting at its gate, its files.
   */
  async #dropStale(incoming: Incoming, ms: number): Promise<void> {
    const dropped = await this.#exclusive(incoming.id, async () => {
      const arrival = this.#arrivals.get(incoming.id);
      if (arrival?.incoming !== incoming || arrival.phase !== "begun") return false;
      this.#arrivals.delete(incoming.id);
      await this.#dropPrimed(incoming.id);
      await Deno.remove(incoming.dir, { recursive: true }).catch(() => {});
      return true;
    });
    if (!dropped) return;
    this.#context.logger.warn(
      "job {id} of node {home}: no mig.restore within {ms} ms of mig.begin; its images here were dropped",
      { id: incoming.id, home: incoming.home, ms },
    );
  }

  /**
   * Runs `step` once the job's earlier exclusive steps have ended: what makes or removes a job's
   * `<id>-in` and its page server and held restore (mig.pages, mig.begin, mig.abort, the stale
   * drops) runs one at a time per job, so that a late cleanup never removes what a new attempt
   * has just made.
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
   * mig.restore's work: the restore itself, its stdin filled, its tasks' credentials checked
   * (killed, and the restore failed, when they hold more than the job's user); the copy, stopped,
   * and its time.
   */
  async #restore(incoming: Incoming): Promise<RestoredCopy & { ms: number }> {
    const { id, dir } = incoming;
    // What the copy may hold, found while criu restores it.
    const rule = credentialRule(incoming.user);
    rule.catch(() => {});
    const ownMounts = await hasOwnMounts(dir);
    let run = this.#primed.get(id);
    this.#primed.delete(id);
    if (run && run.ownMounts !== ownMounts) {
      this.#context.logger.info(
        "job {id}: its images {have} a mount namespace, not as announced: restored afresh",
        { id, have: ownMounts ? "have" : "lack" },
      );
      await run.stop();
      run = undefined;
    }
    // A user's images are checked before criu reads them (imagecheck.ts): a held restore's gate
    // stays shut until they pass.
    const refused = incoming.user.uid === 0 ? undefined : await rule
      .then((allowed) => checkImages(dir, allowed))
      .catch((error) => `cannot be checked: ${message(error)}`);
    if (refused !== undefined) {
      if (run?.gated) await run.stop();
      this.#context.logger.warn("job {id}: its images were refused: {fault}", {
        id,
        fault: refused,
      });
      throw new Error(
        `Cannot restore job ${id} as user ${incoming.user.name}: its images ${refused}; nothing ` +
          "was restored",
      );
    }
    const limitMs = this.#context.faults.restoreLimitMs ?? restoreLimitMs(incoming.pages);
    if (run) {
      await run.open(limitMs).catch(async (error) => {
        await run!.stop().catch(() => {});
        throw error;
      });
    } else {
      run = await WaitedRestore.start({
        criu: this.#context.criu.criu.binary,
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
    // A child of the waiter, stopped: its PID cannot change hands before this.
    const who = identifyProcess(pid);
    const checked = await rule
      .then(async (allowed) => {
        const tasks = await checkRestoredTasks({ waiter: run.child.pid, pid }, allowed);
        if (tasks.fault !== undefined) return tasks;
        // And what it holds open: nothing its user may not open here (restoredfiles.ts).
        const pids = await restoredTasks({ waiter: run.child.pid, pid });
        const fault = await checkRestoredFiles(pids, allowed);
        return fault === undefined ? tasks : { ...tasks, fault };
      })
      .catch((error) => ({ threads: 0, fault: `its tasks cannot be checked: ${message(error)}` }));
    if (checked.fault !== undefined) {
      // Still stopped as criu left it: it never runs an instruction of the job.
      if (who) killProcess(who);
      await run.kill();
      this.#context.logger.warn("job {id}: its restored copy was killed: {fault}", {
        id,
        fault: checked.fault,
      });
      throw new Error(
        `Cannot restore job ${id} as user ${incoming.user.name}: ${checked.fault}; the copy was ` +
          "killed before it ran",
      );
    }
    return { child: run.child, status: run.status, pid, who, stdin, ms };
  }

  /** Kills a restored job that was never let run, and forgets it. */
  async #dropRestored(id: number, why: string): Promise<void> {
    const arrival = this.#arrivals.get(id);
    const restored = arrival?.phase === "restored" ? arrival.restored : undefined;
    if (!arrival || !restored) return;
    this.#arrivals.delete(id);
    clearTimeout(restored.timer);
    if (restored.who) killProcess(restored.who);
    // The waiter would wait out its commit window before it noticed: it has nothing left to do.
    try {
      restored.child.kill("SIGKILL");
    } catch { /* gone */ }
    await restored.stdin.close().catch(() => {});
    await Promise.all([restored.child.stdout.cancel(), restored.child.stderr.cancel()]).catch(
      () => {},
    );
    await restored.status;
    await Deno.remove(arrival.incoming.dir, { recursive: true }).catch(() => {});
    this.#context.logger.warn("job {id}: its restored copy here was dropped: {why}", { id, why });
  }
}
