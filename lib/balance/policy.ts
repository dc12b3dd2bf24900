/**
 * The load-balancing policy (openMosix's automatic migration, PROTOCOL.md §12): which job, if any,
 * a node sends away now, and where. Pure: the daemon's side (sampling the jobs, timers, moving
 * them) is lib/balance/balancer.ts, and every figure comes in through a BalanceView.
 *
 * The policy, once per information interval on each node, for the jobs running on it:
 * 1. Memory ushering first: a node whose available memory is below USHER_LOW of its total sends
 *    the movable job with the most resident memory to a node that keeps at least USHER_KEEP of
 *    its own total free after taking it, the least loaded such node.
 * 2. Then load: a movable job goes from this node S to a node T when T, with the job, would still
 *    be less loaded per CPU than S is now, by more than a margin: half the job's own load per CPU
 *    at T (JOB_MARGIN), and at least BALANCE_MARGIN:
 *      there = (load(T) + jobLoad(T)) / cpus(T)
 *      there + max(BALANCE_MARGIN, JOB_MARGIN * jobLoad(T) / cpus(T)) < load(S) / cpus(S)
 *    On equal nodes that is a difference of more than one and a half jobs: they end within one
 *    job of each other, and a noisy figure of half a job does not send a job back and forth.
 *    Loads are openMosix's (100 = one task always runnable on a reference-speed CPU; a slower
 *    node shows more load for the same tasks, so it sheds jobs and a faster one attracts them).
 *    jobLoad(T) is the job's own load history (JobLoad) at T's speed. The jobs are tried the
 *    busiest first; of the nodes that qualify, one of those within BALANCE_MARGIN of the best is
 *    drawn at random, so that nodes balancing at the same time do not all pick the same one.
 * A job is movable when it is not locked, has been where it is for STAY_INTERVALS intervals at
 * least when it came there by a move (a moved job stays put for a while: no job moves more than
 * once per such period; a new job may move once its load is known), and
 * the node's admin flags allow it: `stay` keeps every job here, `lstay` keeps the node's own jobs
 * (guests may leave). For load, an io job is not moved away from its home, and a job loading its
 * node less than MIN_JOB_LOAD is not worth a move. Candidate targets are up (quiet nodes do not
 * publish, so they are not up), not blocking guests, not excluded (a node that just refused), and
 * have the job's resident memory available.
 */
import type { JobDecay, JobPolicy } from "../jobs/table.ts";
import { REFERENCE_SPEED } from "../info/measure.ts";
import { BALANCE_MARGIN } from "./placement.ts";

export { BALANCE_MARGIN };

/** The part of a job's own load per CPU that a move must gain beyond the job itself. */
export const JOB_MARGIN = 0.5;
/** A moved (or new) job stays where it is for at least this many information intervals. */
export const STAY_INTERVALS = 10;
/** A job whose checkpoint failed is not tried again for this many intervals. */
export const CANTMOVE_INTERVALS = 100;
/** A job loading its node less than this (load units) is not moved for load. */
export const MIN_JOB_LOAD = 20;
/** Below this fraction of its total memory available, a node ushers jobs away. */
export const USHER_LOW = 0.1;
/** A node taking an ushered job must keep this fraction of its total memory available. */
export const USHER_KEEP = 0.2;
/**
 * After a move, the loads and available memory of its two nodes are corrected by the job's for
 * this many intervals: their published figures only show the move after a whole interval
 * measured with it.
 */
export const ADJUST_INTERVALS = 2;
/** openMosix's decay defaults: per mille of the load history kept at each decay interval. */
export const DEFAULT_DECAY = { interval: 1, slow: 975, fast: 926 } as const;

/** A node as the balancer sees it. */
export interface NodeView {
  readonly id: number;
  readonly up: boolean;
  /** Refuses guests (admin/block, carried by its information message). */
  readonly block: boolean;
  readonly load: number;
  readonly speed: number;
  readonly cpus: number;
  /** Available memory, bytes. */
  readonly mem: number;
  /** Total memory, bytes. */
  readonly tmem: number;
}

/** A job running on this node. */
export interface JobView {
  readonly id: number;
  readonly home: number;
  readonly policy: JobPolicy;
  /** Its load history in runnable tasks (1 = always runnable); see JobLoad. */
  readonly tasks: number;
  /** Resident memory, bytes. */
  readonly rss: number;
  /** When it arrived on this node by a move, ms; undefined for a job that never moved. */
  readonly since?: number;
}

/** Everything one decision reads. */
export interface BalanceView {
  readonly self: number;
  readonly now: number;
  /** The information interval, ms. */
  readonly interval: number;
  /** Every node known, this one included (its own latest figures). */
  readonly nodes: readonly NodeView[];
  readonly jobs: readonly JobView[];
  /** This node's admin/stay and admin/lstay. */
  readonly stay: boolean;
  readonly lstay: boolean;
  /** Nodes not to choose now. */
  readonly exclude?: ReadonlySet<number>;
  /** A number in [0, 1); default Math.random. */
  readonly random?: () => number;
}

/** A decision: move job `id` to node `to`. */
export interface Move {
  readonly id: number;
  readonly to: number;
  readonly reason: "load" | "memory";
  /** The job's load here and at `to`, in load units (for the corrections after the move). */
  readonly loadHere: number;
  readonly loadThere: number;
  /** The job's resident memory (for the corrections after the move). */
  readonly rss: number;
  /** Load per CPU here now, and at `to` with the job (what the decision compared). */
  readonly here: number;
  readonly there: number;
}

/** A job's load at a node of speed `speed`, in load units. */
export function jobLoadAt(tasks: number, speed: number): number {
  return tasks * 100 * REFERENCE_SPEED / Math.max(1, speed);
}

const perCpu = (node: NodeView, extra = 0) => (node.load + extra) / Math.max(1, node.cpus);

/** Whether job `job` may be moved automatically now (lock, stay put, stay/lstay). */
export function movable(view: BalanceView, job: JobView): boolean {
  if (job.policy.lock || view.stay) return false;
  if (view.lstay && job.home === view.self) return false;
  return job.since === undefined || view.now - job.since >= STAY_INTERVALS * view.interval;
}

/** The effective tasks of a job: a cpu job counts as one busy task from the start. */
function tasksOf(job: JobView): number {
  return job.policy.kind === "cpu" ? Math.max(1, job.tasks) : job.tasks;
}

/** Draws among the candidates within BALANCE_MARGIN of the best score (lowest). */
function draw(
  scored: readonly { id: number; score: number }[],
  random: () => number,
): number | undefined {
  if (scored.length === 0) return undefined;
  const best = Math.min(...scored.map((s) => s.score));
  const good = scored.filter((s) => s.score <= best + BALANCE_MARGIN).sort((a, b) => a.id - b.id);
  return good[Math.min(good.length - 1, Math.max(0, Math.floor(random() * good.length)))].id;
}

/** The move to make now, or undefined. */
export function planMove(view: BalanceView): Move | undefined {
  const self = view.nodes.find((n) => n.id === view.self);
  if (!self) return undefined;
  const random = view.random ?? Math.random;
  const targets = view.nodes.filter((n) =>
    n.id !== view.self && n.up && !n.block && !view.exclude?.has(n.id)
  );
  const jobs = view.jobs.filter((j) => movable(view, j));
  const move = (job: JobView, to: number, reason: Move["reason"]): Move => {
    const target = view.nodes.find((n) => n.id === to)!;
    const loadThere = jobLoadAt(tasksOf(job), target.speed);
    return {
      id: job.id,
      to,
      reason,
      loadHere: jobLoadAt(tasksOf(job), self.speed),
      loadThere,
      rss: job.rss,
      here: Math.round(perCpu(self)),
      there: Math.round(perCpu(target, loadThere)),
    };
  };

  if (self.tmem > 0 && self.mem < USHER_LOW * self.tmem) {
    for (const job of [...jobs].sort((a, b) => b.rss - a.rss || a.id - b.id)) {
      const to = draw(
        targets.filter((t) => t.mem - job.rss >= USHER_KEEP * t.tmem).map((t) => ({
          id: t.id,
          score: perCpu(t, jobLoadAt(tasksOf(job), t.speed)),
        })),
        random,
      );
      if (to !== undefined) return move(job, to, "memory");
    }
  }

  const here = perCpu(self);
  const busiest = jobs
    .filter((j) => !(j.policy.kind === "io" && j.home === view.self))
    .filter((j) => jobLoadAt(tasksOf(j), self.speed) >= MIN_JOB_LOAD)
    .sort((a, b) => tasksOf(b) - tasksOf(a) || (a.since ?? 0) - (b.since ?? 0) || a.id - b.id);
  for (const job of busiest) {
    const to = draw(
      targets.filter((t) => t.mem >= job.rss).flatMap((t) => {
        const load = jobLoadAt(tasksOf(job), t.speed);
        const score = perCpu(t, load);
        const margin = Math.max(BALANCE_MARGIN, JOB_MARGIN * load / Math.max(1, t.cpus));
        return score + margin < here ? [{ id: t.id, score }] : [];
      }),
      random,
    );
    if (to !== undefined) return move(job, to, "load");
  }
  return undefined;
}

/** The per mille kept at each decay interval for a job's decay hint. */
export function decayFactor(
  decay: JobDecay,
  settings: { slow: number; fast: number } = DEFAULT_DECAY,
): number {
  return decay === "none" ? 1 : (decay === "fast" ? settings.fast : settings.slow) / 1000;
}

/**
 * A job's load history: the runnable tasks sampled in each decay interval, averaged with weights
 * that shrink by the decay factor at every interval (1: never forgotten, the whole life's mean).
 * The weights are normalised, so a new job's history is its first interval's figure at once.
 */
export class JobLoad {
  #sum = 0;
  #count = 0;
  #weighted = 0;
  #weights = 0;

  /** One sample: how many of the job's tasks were runnable. */
  sample(tasks: number): void {
    this.#sum += tasks;
    this.#count++;
  }

  /** Ends a decay interval: its samples' mean joins the history with weight 1. */
  fold(factor: number): void {
    if (this.#count === 0) return;
    this.#weighted = this.#weighted * factor + this.#sum / this.#count;
    this.#weights = this.#weights * factor + 1;
    this.#sum = 0;
    this.#count = 0;
  }

  /** The history's value in tasks (0 before the first interval ended). */
  get tasks(): number {
    return this.#weights > 0 ? this.#weighted / this.#weights : 0;
  }
}
