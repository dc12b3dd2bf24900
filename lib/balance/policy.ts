/**
 * The load-balancing policy (openMosix's automatic migration, PROTOCOL.md §12): which job, if any,
 * a node sends away now. Where a job goes is lib/balance/placement.ts, the one placement rule, which
 * `om migrate PID balance` follows too. Pure: the daemon's side (sampling the jobs, timers, moving
 * them) is lib/balance/balancer.ts, and every figure comes in through a BalanceView.
 *
 * The policy, once per information interval on each node, for the jobs running on it:
 * 1. Memory ushering first: a node short of memory (placement.ts `shortOfMemory`) sends the movable
 *    job with the most resident memory that some node can take (`placeByMemory`).
 * 2. Then load: the movable jobs are tried the busiest first, each where `placeByLoad` sends it.
 * A job is movable when it is not locked, has been where it is for STAY_INTERVALS intervals at
 * least when it came there by a move (a moved job stays put for a while: no job moves more than
 * once per such period; a new job may move once its load is known), and
 * the node's admin flags allow it: `stay` keeps every job here, `lstay` keeps the node's own jobs
 * (guests may leave). For load, an io job is not moved away from its home, and a job loading its
 * node less than MIN_JOB_LOAD is not worth a move.
 */
import type { JobDecay } from "../jobs/table.ts";
import { loadAt } from "../info/measure.ts";
import { DEFAULT_DECAY } from "../state/admin.ts";
import {
  jobTasks,
  type JobView,
  type NodeView,
  placeByLoad,
  placeByMemory,
  type Placement,
  shortOfMemory,
} from "./placement.ts";

/** A moved (or new) job stays where it is for at least this many information intervals. */
export const STAY_INTERVALS = 10;
/** A job whose checkpoint failed is not tried again for this many intervals. */
export const CANTMOVE_INTERVALS = 100;
/** A job loading its node less than this (load units) is not moved for load. */
export const MIN_JOB_LOAD = 20;
/**
 * After a move, the loads and available memory of its two nodes are corrected by the job's for
 * this many intervals: their published figures only show the move after a whole interval
 * measured with it.
 */
export const ADJUST_INTERVALS = 2;
/** openMosix's decay defaults: the admin files' (lib/state/admin.ts), which mosctl shows. */
export { DEFAULT_DECAY };

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

/** A decision: move job `id` to node `to` (the loads per CPU rounded, for the log). */
export interface Move extends Placement {
  readonly id: number;
  /** The job's resident memory (for the corrections after the move). */
  readonly rss: number;
}

/** Whether job `job` may be moved automatically now (lock, stay put, stay/lstay). */
export function movable(view: BalanceView, job: JobView): boolean {
  if (job.policy.lock || view.stay) return false;
  if (view.lstay && job.home === view.self) return false;
  return job.since === undefined || view.now - job.since >= STAY_INTERVALS * view.interval;
}

/** The move to make now, or undefined. */
export function planMove(view: BalanceView): Move | undefined {
  const self = view.nodes.find((n) => n.id === view.self);
  if (!self) return undefined;
  const options = { from: view.self, exclude: view.exclude, random: view.random };
  const jobs = view.jobs.filter((j) => movable(view, j));
  const move = (job: JobView, placement: Placement): Move => ({
    ...placement,
    id: job.id,
    rss: job.rss,
    here: Math.round(placement.here),
    there: Math.round(placement.there),
  });

  if (shortOfMemory(self)) {
    for (const job of [...jobs].sort((a, b) => b.rss - a.rss || a.id - b.id)) {
      const placement = placeByMemory(view.nodes, job, options);
      if (placement) return move(job, placement);
    }
  }

  const busiest = jobs
    .filter((j) => !(j.policy.kind === "io" && j.home === view.self))
    .filter((j) => loadAt(jobTasks(j), self.speed) >= MIN_JOB_LOAD)
    .sort((a, b) => jobTasks(b) - jobTasks(a) || (a.since ?? 0) - (b.since ?? 0) || a.id - b.id);
  for (const job of busiest) {
    const placement = placeByLoad(view.nodes, job, options);
    if (placement) return move(job, placement);
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

  /** Whether an interval with samples has ended: before that, `tasks` is 0 for want of a figure. */
  get known(): boolean {
    return this.#weights > 0;
  }

  /** The history's value in tasks (0 before the first interval ended). */
  get tasks(): number {
    return this.#weights > 0 ? this.#weighted / this.#weights : 0;
  }
}
