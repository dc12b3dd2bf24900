/**
 * Where `om migrate PID balance` sends a job: the node least loaded per CPU among those that are
 * up and have the memory for it, when it is better than staying. Pure: it reads the figures every
 * node already knows (lib/state/nodestate.ts), and nothing else. PROTOCOL.md §11.
 */
import type { NodeInfo } from "../state/nodestate.ts";

/**
 * Candidates whose load per CPU is within this much of the best are equally good, and one of them
 * is drawn at random, so that jobs balanced at the same time do not all pile onto one node. In
 * load units per CPU: 10 is a tenth of one busy reference-speed CPU.
 */
export const BALANCE_MARGIN = 10;

/** What chooseTarget needs besides the nodes' figures. */
export interface PlacementOptions {
  /** The node the job runs on now. */
  readonly current: number;
  /** Nodes not to choose (for instance one that just refused). */
  readonly exclude?: readonly number[];
  /** Bytes of memory the job needs on its target (its resident memory); `mem` must reach it. */
  readonly needMem: number;
  /**
   * The job's own share of the current node's load, in load units (100 = one task always running
   * on a reference-speed CPU); default 0. It is taken off the current node's load before comparing.
   */
  readonly jobLoad?: number;
  /** A number in [0, 1), for the draw among equally good nodes; default Math.random. */
  readonly random?: () => number;
}

/** A node's load per CPU (load is already normalised to the reference speed). */
export function loadPerCpu(node: NodeInfo): number {
  return node.load / Math.max(1, node.cpus);
}

/**
 * The current node's load per CPU once the job has left it: (load − jobLoad) / cpus, at least 0.
 * Undefined when the current node's figures are unknown.
 */
export function loadAfterLeaving(
  nodes: readonly NodeInfo[],
  current: number,
  jobLoad = 0,
): number | undefined {
  const here = nodes.find((n) => n.id === current);
  if (!here) return undefined;
  return Math.max(0, here.load - jobLoad) / Math.max(1, here.cpus);
}

/**
 * The node to move the job to, or undefined when none qualifies. A candidate is up, is not the
 * current node nor excluded, has `mem` ≥ needMem, and is strictly less loaded per CPU than the
 * current node would be after the job leaves (when the current node's figures are unknown, any
 * candidate is better). Among the candidates, those within BALANCE_MARGIN of the least loaded per
 * CPU are drawn from at random.
 */
export function chooseTarget(
  nodes: readonly NodeInfo[],
  options: PlacementOptions,
): number | undefined {
  const exclude = new Set(options.exclude ?? []);
  const stay = loadAfterLeaving(nodes, options.current, options.jobLoad) ?? Infinity;
  const candidates = nodes.filter((n) =>
    n.status === "up" && n.id !== options.current && !exclude.has(n.id) &&
    n.mem >= options.needMem && loadPerCpu(n) < stay
  );
  if (candidates.length === 0) return undefined;
  const best = Math.min(...candidates.map(loadPerCpu));
  const good = candidates.filter((n) => loadPerCpu(n) <= best + BALANCE_MARGIN)
    .sort((a, b) => a.id - b.id);
  const draw = (options.random ?? Math.random)();
  const index = Math.min(good.length - 1, Math.max(0, Math.floor(draw * good.length)));
  return good[index].id;
}
