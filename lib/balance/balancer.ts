/**
 * The daemon's load balancer (openMosix's automatic migration, PROTOCOL.md §12): it samples the
 * jobs running on this node, keeps their load history, and once per information interval asks
 * the policy (lib/balance/policy.ts) whether one should go, and moves it: a job of this home node
 * through Migration.migrate, a guest by asking its home (`mig.request`), which decides every move
 * of its jobs. One move at a time; after a move the next decision follows at once, with the loads
 * of the two nodes corrected until their figures show the move.
 *
 * It also carries out `mosctl expel` (every guest goes home) and `mosctl bring` (every job of
 * this node comes home), on the local socket (`node.expel`, `node.bring`), replying when done; and
 * it says where it would send a job of this node now (`job.place`, for `om migrate PID balance`),
 * by the same placement rule (lib/balance/placement.ts) and from the same figures as its own moves.
 */
import { NEEDS_KEY } from "../migration/keyless.ts";
import { readFlag, readNumber, writeAdmin } from "../state/admin.ts";
import {
  ADJUST_INTERVALS,
  type BalanceView,
  CANTMOVE_INTERVALS,
  decayFactor,
  DEFAULT_DECAY,
  JobLoad,
  type Move,
  planMove,
  STAY_INTERVALS,
} from "./policy.ts";
import { type JobView, type NodeView, placeJob } from "./placement.ts";
import { measureJob } from "./jobmeasure.ts";
import { bodyOf, isId } from "../channel/body.ts";
import type { Handler } from "../channel/server.ts";
import type { Deputy } from "../jobs/deputy.ts";
import type { InfoExchange } from "../info/exchange.ts";
import { type JobDecay, type JobPolicy, NoSuchJobError } from "../jobs/table.ts";
import type { Logger } from "../base/log.ts";
import { jsonBytes } from "../base/json.ts";
import { sleep } from "../base/time.ts";
import type { Migration } from "../migration/migration.ts";
import { MigrationError } from "../migration/errors.ts";
import type { NodeInfo } from "../state/nodestate.ts";
import type { StatePaths } from "../state/tree.ts";

/** What the balancer works with. */
export interface BalancerOptions {
  readonly nodeId: number;
  readonly paths: StatePaths;
  readonly info: InfoExchange;
  readonly deputy: Deputy;
  readonly migration: Migration;
  readonly logger: Logger;
  /**
   * Whether the cluster has a key: without one the balancer moves nothing (it still measures, for
   * `job.place`), and expel and bring refuse (lib/migration/keyless.ts).
   */
  readonly keyed: boolean;
}

/** A job running here, with its PID 1 on this host. */
interface Here {
  readonly id: number;
  readonly home: number;
  readonly pid: number;
  readonly policy: JobPolicy;
  readonly since?: number;
  readonly guest: boolean;
}

/**
 * How long expel waits, at most, for jobs still on their way here once it has sent the others
 * home (a restore may take its waiter's 30 s; mig.commit comes within seconds of it).
 */
export const SWEEP_SETTLE_MS = 40_000;

/** How many times expel and bring try to move one job, and the pause after a round that failed. */
export const SWEEP_ATTEMPTS = 3;
export const SWEEP_RETRY_MS = 500;

/**
 * Expel's and bring's work: moves home every job `pending` lists, round after round while it
 * lists any not yet moved. One whose move fails is tried again in the next round, `attempts`
 * times in all, after `retryMs` (its home may still be settling the move that brought it here:
 * "being moved already"). While `arriving` says jobs are still on their way here (a move here
 * past its admission when expel blocked the node), it waits for them too, polling every 50 ms,
 * `settleMs` at most. `failed` lists the jobs it could not move that are still to be moved.
 */
export async function sweep(options: {
  pending: () => number[];
  move: (id: number) => Promise<unknown>;
  arriving?: () => number;
  attempts?: number;
  retryMs?: number;
  settleMs?: number;
}): Promise<SweepReport> {
  const { pending, move } = options;
  const arriving = options.arriving ?? (() => 0);
  const attempts = options.attempts ?? SWEEP_ATTEMPTS;
  const until = Date.now() + (options.settleMs ?? SWEEP_SETTLE_MS);
  const moved: number[] = [];
  const failures = new Map<number, { count: number; error: string }>();
  for (;;) {
    const ids = pending().filter((id) =>
      !moved.includes(id) && (failures.get(id)?.count ?? 0) < attempts
    );
    if (ids.length === 0) {
      if (arriving() === 0 || Date.now() >= until) break;
      await sleep(50);
      continue;
    }
    let failedNow = false;
    for (const id of ids) {
      try {
        await move(id);
        moved.push(id);
        failures.delete(id);
      } catch (error) {
        failures.set(id, { count: (failures.get(id)?.count ?? 0) + 1, error: message(error) });
        failedNow = true;
      }
    }
    if (failedNow) {
      await sleep(options.retryMs ?? SWEEP_RETRY_MS);
    }
  }
  const left = new Set(pending());
  const failed = [...failures].filter(([id]) => left.has(id));
  return { moved, failed: failed.map(([id, f]) => ({ id, error: f.error })) };
}

/** What `node.expel` and `node.bring` reply. */
export interface SweepReport {
  readonly moved: number[];
  readonly failed: { id: number; error: string }[];
}

/**
 * What `job.place` replies (PROTOCOL.md §12): where the balancer would send a job of this node now.
 * Loads per CPU in load units (100 = one busy reference-speed CPU).
 */
export interface JobPlacement {
  /** The node the job runs on. */
  readonly from: number;
  /** Where it would go; absent when it stays. */
  readonly to?: number;
  readonly reason?: "load" | "memory";
  /** Load per CPU at `from` now (null when its figures are unknown), and at `to` with the job. */
  readonly here?: number | null;
  readonly there?: number;
}

const message = (error: unknown) => error instanceof Error ? error.message : String(error);

export class Balancer {
  readonly #options: BalancerOptions;
  readonly #loads = new Map<number, JobLoad>();
  readonly #rss = new Map<number, number>();
  /** Each node's last two loads, and which figure the last one was (see #view). */
  readonly #loadsSeen = new Map<number, { figure: number; last: number; before: number }>();
  /** Load corrections after moves: added to a node's published load until `until`. */
  #adjust: { node: number; load: number; mem: number; until: number }[] = [];
  /** Nodes that refused or failed a move, until when. */
  readonly #exclude = new Map<number, number>();
  /** Jobs whose checkpoint failed, until when they are not tried again. */
  readonly #cantMove = new Map<number, number>();
  /** Done when the move (or expel/bring) under way is; undefined when none is. */
  #busy: Promise<unknown> | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  #lastFold = Date.now();
  /** admin/decayinterval as last read, in ms. */
  #decayIntervalMs = DEFAULT_DECAY.interval * 1000;
  /** No moves before this (this node failed its own preflight). */
  #pausedUntil = 0;
  #stopped = false;

  constructor(options: BalancerOptions) {
    this.#options = options;
  }

  /** Starts sampling (4x per interval) and deciding (once per interval). */
  start(): void {
    const interval = this.#options.info.interval;
    this.#timers.push(setInterval(() => void this.#sample(), Math.max(10, interval / 4)));
    if (!this.#options.keyed) {
      this.#options.logger.warn("Automatic balancing is off: {why}", { why: NEEDS_KEY });
      return;
    }
    this.#timers.push(setInterval(() => void this.#decide(), interval));
  }

  /** Stops the timers; a move under way finishes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await this.#busy?.catch(() => {});
  }

  /** The local socket's `node.expel`, `node.bring` and `job.place`. */
  localHandlers(): Map<string, Handler> {
    return new Map<string, Handler>([
      ["node.expel", async () => {
        this.#refuseKeyless("expel");
        return jsonBytes(await this.#exclusive(() => this.#expel()));
      }],
      ["node.bring", async () => {
        this.#refuseKeyless("bring");
        return jsonBytes(await this.#exclusive(() => this.#bring()));
      }],
      ["job.place", async (body) => {
        const { id } = bodyOf<{ id: number }>("job.place", body, (r) => isId(r.id));
        return jsonBytes(await this.place(id));
      }],
    ]);
  }

  /** Expel and bring move jobs: without a key they refuse, saying why. */
  #refuseKeyless(verb: string): void {
    if (!this.#options.keyed) throw new Error(`Cannot ${verb}: ${NEEDS_KEY}`);
  }

  /**
   * Where the balancer would send job `id` of this home node now (`job.place`); moves nothing. The
   * rule and the figures are its own moves' (placement.ts `placeJob` over what a decision reads:
   * the nodes' steady loads, corrected after moves, their block flags, the nodes that failed a move
   * lately); which job goes and when (lock, stay, the stay-put time) are left to whoever asks. The
   * job's load is its history when it runs here and has one, else measured now (measureJob); a job
   * that runs on another node counts as its policy says (a cpu job as one busy task), its figures
   * being that node's.
   */
  async place(id: number): Promise<JobPlacement> {
    const { deputy, nodeId } = this.#options;
    const job = deputy.jobs.list().find((j) => j.id === id);
    if (!job) throw new NoSuchJobError(id);
    if (job.output.exit) throw new Error(`Cannot place job ${id}: it has ended`);
    const view = await this.#view();
    if (!view) {
      throw new Error(`Cannot place job ${id}: node ${nodeId} has not measured itself yet`);
    }
    const here = this.#jobsHere().find((j) => j.id === id && !j.guest);
    const history = here ? this.#loads.get(id) : undefined;
    const measured = here && !history?.known ? measureJob(here.pid) : undefined;
    const placement = placeJob(view.nodes, {
      id,
      home: job.home,
      policy: job.policy,
      tasks: history?.known ? history.tasks : measured?.runnable ?? 0,
      rss: (history?.known ? this.#rss.get(id) : undefined) ?? measured?.rss ?? 0,
      since: job.movedAt,
    }, { from: job.node, exclude: view.exclude });
    if (!placement) {
      // It stays: the load it stays at, as the balancer sees it, for whoever asks why.
      const from = view.nodes.find((n) => n.id === job.node);
      return { from: job.node, here: from ? from.load / Math.max(1, from.cpus) : null };
    }
    return {
      from: job.node,
      to: placement.to,
      reason: placement.reason,
      here: Number.isFinite(placement.here) ? placement.here : null,
      there: placement.there,
    };
  }

  /** The jobs running on this node now. */
  #jobsHere(): Here[] {
    const { deputy, migration, nodeId } = this.#options;
    const here: Here[] = [];
    for (const job of deputy.jobs.list()) {
      const pid = job.node === nodeId && !job.output.exit ? deputy.localPid(job.id) : undefined;
      if (pid === undefined) continue;
      here.push({
        id: job.id,
        home: job.home,
        pid,
        policy: job.policy,
        since: job.movedAt,
        guest: false,
      });
    }
    for (const guest of migration.guests()) {
      here.push({ ...guest, since: guest.arrived, guest: true });
    }
    return here;
  }

  async #decaySettings(): Promise<{ interval: number; slow: number; fast: number }> {
    const { paths } = this.#options;
    return {
      interval: await readNumber(paths, "decayinterval") ?? DEFAULT_DECAY.interval,
      slow: await readNumber(paths, "slowdecay") ?? DEFAULT_DECAY.slow,
      fast: await readNumber(paths, "fastdecay") ?? DEFAULT_DECAY.fast,
    };
  }

  /** One sample of every job here; folds the histories once per decay interval. */
  async #sample(): Promise<void> {
    const here = this.#jobsHere();
    const present = new Set(here.map((j) => j.id));
    for (const id of this.#loads.keys()) {
      if (!present.has(id)) {
        this.#loads.delete(id);
        this.#rss.delete(id);
      }
    }
    // An idle node (no job here) reads nothing more.
    if (here.length === 0) return;
    for (const job of here) {
      const measured = measureJob(job.pid);
      let load = this.#loads.get(job.id);
      if (!load) this.#loads.set(job.id, load = new JobLoad());
      load.sample(measured.runnable);
      this.#rss.set(job.id, measured.rss);
    }
    // The settings are read when a decay interval may have ended, not at every sample.
    if (Date.now() - this.#lastFold >= this.#decayIntervalMs) {
      const decay = await this.#decaySettings();
      this.#decayIntervalMs = decay.interval * 1000;
      if (Date.now() - this.#lastFold < this.#decayIntervalMs) return;
      this.#lastFold = Date.now();
      const decayOf = new Map<number, JobDecay>(here.map((j) => [j.id, j.policy.decay]));
      for (const [id, load] of this.#loads) {
        load.fold(decayFactor(decayOf.get(id) ?? "slow", decay));
      }
    }
  }

  /** What the policy sees now. */
  async #view(): Promise<BalanceView | undefined> {
    const { info, nodeId, paths } = this.#options;
    if (!info.own) return undefined;
    const now = Date.now();
    this.#adjust = this.#adjust.filter((a) => a.until > now);
    for (const [node, until] of this.#exclude) if (until <= now) this.#exclude.delete(node);
    for (const [id, until] of this.#cantMove) if (until <= now) this.#cantMove.delete(id);
    // One noisy figure must not move a job: this node counts the lower of its last two loads,
    // the others the higher of theirs.
    const steady = (node: NodeInfo, figure: number) => {
      let seen = this.#loadsSeen.get(node.id);
      if (!seen) {
        this.#loadsSeen.set(node.id, seen = { figure, last: node.load, before: node.load });
      }
      if (seen.figure !== figure) {
        seen.before = seen.last;
        seen.last = node.load;
        seen.figure = figure;
      }
      return node.id === nodeId
        ? Math.min(seen.before, seen.last)
        : Math.max(seen.before, seen.last);
    };
    const corrected = (node: NodeInfo, block: boolean, figure: number): NodeView => {
      const adjust = this.#adjust.filter((a) => a.node === node.id);
      const sum = (key: "load" | "mem") => adjust.reduce((total, a) => total + a[key], 0);
      return {
        id: node.id,
        up: node.status === "up",
        block,
        load: Math.max(0, steady(node, figure) + sum("load")),
        speed: node.speed,
        cpus: node.cpus,
        mem: Math.max(0, node.mem + sum("mem")),
        tmem: node.tmem,
      };
    };
    const nodes = [
      corrected(info.own, info.ownBlock, info.ownCount),
      ...info.known().filter((k) => k.info.id !== nodeId).map((k) =>
        corrected(k.info, k.block, k.at)
      ),
    ];
    const jobs: JobView[] = this.#jobsHere().flatMap((job) => {
      const load = this.#loads.get(job.id);
      return load && !this.#cantMove.has(job.id)
        ? [{
          id: job.id,
          home: job.home,
          policy: job.policy,
          tasks: load.tasks,
          rss: this.#rss.get(job.id) ?? 0,
          since: job.since,
        }]
        : [];
    });
    return {
      self: nodeId,
      now,
      interval: info.interval,
      nodes,
      jobs,
      stay: await readFlag(paths, "stay"),
      lstay: await readFlag(paths, "lstay"),
      exclude: new Set(this.#exclude.keys()),
    };
  }

  /** One decision; after a move, the next one at once. */
  async #decide(): Promise<void> {
    while (
      !this.#busy && !this.#stopped && Date.now() >= this.#pausedUntil &&
      this.#loads.size > 0
    ) {
      const view = await this.#view();
      const move = view && planMove(view);
      if (!move || this.#busy) return;
      const done = this.#move(move);
      this.#busy = done;
      const moved = await done;
      this.#busy = undefined;
      if (!moved) return;
    }
  }

  /** Carries out a move; true when the job moved. */
  async #move(move: Move): Promise<boolean> {
    const { logger, migration, nodeId, info } = this.#options;
    const guest = migration.guests().some((g) => g.id === move.id);
    logger.info(
      "balance: job {id} goes to node {to} ({reason}: load per CPU {here} here, {there} there with it)",
      { ...move },
    );
    try {
      if (guest) await migration.requestMove(move.id, move.to, "balancer");
      else await migration.migrate(move.id, move.to, { by: "balancer" });
    } catch (error) {
      logger.warn("balance: job {id} stays: {error}", { id: move.id, error: message(error) });
      const until = Date.now() + STAY_INTERVALS * info.interval;
      const step = error instanceof MigrationError ? error.step : undefined;
      // The sending node cannot checkpoint at all (no working CRIU): no moves for a while. The
      // job cannot be checkpointed: not that job for much longer (openMosix's "cantmove"). The
      // target refused or failed: not that node for a while. No step (the job ended, is being
      // moved already, its home is out of reach): nothing to remember.
      if (step === "preflight") this.#pausedUntil = until;
      else if (step === "dump" || step === "pre-dump") {
        this.#cantMove.set(move.id, Date.now() + CANTMOVE_INTERVALS * info.interval);
      } else if (step) this.#exclude.set(move.to, until);
      return false;
    }
    const until = Date.now() + ADJUST_INTERVALS * info.interval;
    this.#adjust.push(
      { node: nodeId, load: -move.loadHere, mem: move.rss, until },
      { node: move.to, load: move.loadThere, mem: -move.rss, until },
    );
    this.#loads.delete(move.id);
    return true;
  }

  /** Runs an expel or a bring once no move is under way, holding the balancer meanwhile. */
  async #exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.#busy) await this.#busy.catch(() => {});
    const done = work();
    this.#busy = done;
    try {
      return await done;
    } finally {
      this.#busy = undefined;
    }
  }

  /** {@linkcode sweep}, then admin/<file> cleared and what it did logged. */
  async #sweep(
    file: "expel" | "bring",
    pending: () => number[],
    move: (id: number) => Promise<unknown>,
    arriving?: () => number,
  ): Promise<SweepReport> {
    const { logger, paths } = this.#options;
    const report = await sweep({ pending, move, arriving });
    await writeAdmin(paths, file, "0").catch(() => {});
    logger.info(`${file}: {moved} job(s) moved home, {failed} failed`, {
      moved: report.moved.length,
      failed: report.failed.length,
    });
    return report;
  }

  /** Every guest goes home (its home moves it); admin/expel is cleared when done. */
  #expel(): Promise<SweepReport> {
    const { migration } = this.#options;
    return this.#sweep(
      "expel",
      () => migration.guests().map((g) => g.id),
      (id) => migration.requestMove(id, "home", "expel"),
      () => migration.arriving(),
    );
  }

  /** Every job of this node running elsewhere comes home; admin/bring is cleared when done. */
  #bring(): Promise<SweepReport> {
    const { deputy, migration, nodeId } = this.#options;
    return this.#sweep(
      "bring",
      () => deputy.jobs.list().filter((j) => j.node !== nodeId && !j.output.exit).map((j) => j.id),
      (id) => migration.migrate(id, "home", { by: "bring" }),
    );
  }
}
