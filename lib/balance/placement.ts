/**
 * Where a job goes: om's one placement rule (PROTOCOL.md §12), for the balancer's own moves
 * (lib/balance/policy.ts `planMove`, which decides which job goes, and when) and for
 * `om migrate PID balance` (which asks the balancer, `job.place`, where it would send that job).
 * Pure: every figure comes in through NodeView and JobView.
 *
 * From node F, the one the job runs on, a target T is another node that is up (a quiet node
 * publishes nothing, so it is down to the others), does not block arrivals (`mosctl block`), is
 * not excluded (it refused or failed a move lately), and has the memory:
 * - By load: T has the job's resident memory available, and T with the job would still be less
 *   loaded per CPU than F is now, by more than half the job's own load per CPU at T (JOB_MARGIN),
 *   and at least BALANCE_MARGIN:
 *     there = (load(T) + jobLoad(T)) / cpus(T)
 *     there + max(BALANCE_MARGIN, JOB_MARGIN × jobLoad(T) / cpus(T)) < load(F) / cpus(F)
 *   On equal nodes that is a difference of more than one and a half jobs: they end within one job
 *   of each other, and a noisy figure of half a job does not send a job back and forth. When F's
 *   figures are unknown, any target will do.
 * - By memory, when F is short of it (available below USHER_LOW of its total): T keeps at least
 *   USHER_KEEP of its own total available after taking the job, however loaded T is.
 * Of the targets, one of those within BALANCE_MARGIN of the least loaded per CPU (with the job) is
 * drawn at random, so that nodes placing jobs at the same time do not all pick the same one.
 * Loads are openMosix's (100 = one task always runnable on a reference-speed CPU, so a slower node
 * shows more load for the same tasks and sheds jobs, a faster one attracts them); jobLoad(T) is the
 * job's runnable tasks at T's speed (lib/info/measure.ts `loadAt`), a cpu job counting as one busy
 * task from the start.
 */
import type { JobPolicy } from "../jobs/table.ts";
import { loadAt } from "../info/measure.ts";

/**
 * The least a move by load must gain, and how close to the best target another one is equally
 * good. In load units per CPU: 10 is a tenth of one busy reference-speed CPU.
 */
export const BALANCE_MARGIN = 10;
/** The part of a job's own load per CPU that a move by load must gain beyond the job itself. */
export const JOB_MARGIN = 0.5;
/** Below this fraction of its total memory available, a node is short of memory (it ushers). */
export const USHER_LOW = 0.1;
/** A node taking a job for memory must keep this fraction of its total memory available. */
export const USHER_KEEP = 0.2;

/** A node as placement sees it. */
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

/** A job as placement (and the balancer) sees it. */
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

/** Where from, and what not to choose. */
export interface PlaceOptions {
  /** The node the job runs on. */
  readonly from: number;
  /** Nodes not to choose now. */
  readonly exclude?: ReadonlySet<number>;
  /** A number in [0, 1), for the draw among equally good targets; default Math.random. */
  readonly random?: () => number;
}

/** Where a job goes, and the figures that decided it. */
export interface Placement {
  readonly to: number;
  readonly reason: "load" | "memory";
  /** The job's load at its node (0 when that node's figures are unknown) and at `to`. */
  readonly loadHere: number;
  readonly loadThere: number;
  /** Load per CPU at the job's node now (Infinity when unknown), and at `to` with the job. */
  readonly here: number;
  readonly there: number;
}

/** The runnable tasks a job counts for: a cpu job counts as one busy task from the start. */
export function jobTasks(job: Pick<JobView, "tasks" | "policy">): number {
  return job.policy.kind === "cpu" ? Math.max(1, job.tasks) : job.tasks;
}

/** Whether a node is short of memory: available below USHER_LOW of its total. */
export function shortOfMemory(node: NodeView): boolean {
  return node.tmem > 0 && node.mem < USHER_LOW * node.tmem;
}

const perCpu = (node: NodeView, extra = 0) => (node.load + extra) / Math.max(1, node.cpus);

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

/** The targets whatever the job: up, not the job's node, not blocking, not excluded. */
function targetsOf(nodes: readonly NodeView[], options: PlaceOptions): NodeView[] {
  return nodes.filter((n) =>
    n.id !== options.from && n.up && !n.block && !options.exclude?.has(n.id)
  );
}

/** Draws among `scored` and describes the placement. */
function place(
  nodes: readonly NodeView[],
  job: JobView,
  options: PlaceOptions,
  reason: Placement["reason"],
  scored: readonly { id: number; score: number }[],
): Placement | undefined {
  const to = draw(scored, options.random ?? Math.random);
  if (to === undefined) return undefined;
  const from = nodes.find((n) => n.id === options.from);
  const target = nodes.find((n) => n.id === to)!;
  const loadThere = loadAt(jobTasks(job), target.speed);
  return {
    to,
    reason,
    loadHere: from ? loadAt(jobTasks(job), from.speed) : 0,
    loadThere,
    here: from ? perCpu(from) : Infinity,
    there: perCpu(target, loadThere),
  };
}

/** Where the job goes for memory (its node being short of it), or undefined: no node can take it. */
export function placeByMemory(
  nodes: readonly NodeView[],
  job: JobView,
  options: PlaceOptions,
): Placement | undefined {
  const scored = targetsOf(nodes, options)
    .filter((t) => t.mem - job.rss >= USHER_KEEP * t.tmem)
    .map((t) => ({ id: t.id, score: perCpu(t, loadAt(jobTasks(job), t.speed)) }));
  return place(nodes, job, options, "memory", scored);
}

/** Where the job goes for load, or undefined: no node is better by the margin. */
export function placeByLoad(
  nodes: readonly NodeView[],
  job: JobView,
  options: PlaceOptions,
): Placement | undefined {
  const from = nodes.find((n) => n.id === options.from);
  const here = from ? perCpu(from) : Infinity;
  const scored = targetsOf(nodes, options).filter((t) => t.mem >= job.rss).flatMap((t) => {
    const load = loadAt(jobTasks(job), t.speed);
    const score = perCpu(t, load);
    const margin = Math.max(BALANCE_MARGIN, JOB_MARGIN * load / Math.max(1, t.cpus));
    return score + margin < here ? [{ id: t.id, score }] : [];
  });
  return place(nodes, job, options, "load", scored);
}

/**
 * Where one job goes now, as the balancer would send it: for memory when its node is short of it
 * and a node can take it, else for load; undefined when it stays.
 */
export function placeJob(
  nodes: readonly NodeView[],
  job: JobView,
  options: PlaceOptions,
): Placement | undefined {
  const from = nodes.find((n) => n.id === options.from);
  return (from && shortOfMemory(from) ? placeByMemory(nodes, job, options) : undefined) ??
    placeByLoad(nodes, job, options);
}
