/**
 * What the nodes' maps say: the ids in one node's map, and the wait until every node's map holds
 * exactly the lab's nodes (how `om lab up`, the integration tests and the benchmarks know that a
 * cluster has formed). The wait polls the map files the daemons write, and stops early when a
 * daemon has died, saying who saw what; a disagreement is a result, not an error.
 */
import type { ClusterMap } from "../state/hpcmap.ts";
import { RetryTimeoutError, retryUntil } from "../base/retry.ts";
import { systemClock, type WaitClock } from "../base/clock.ts";
import { readMap } from "../state/tree.ts";
import { findNode, type Lab, labNodeIds, nodeStatePaths } from "./record.ts";
import { isAlive } from "./daemons.ts";

/** The node ids a map lists, aliases aside, in ascending order. */
export function mapNodeIds(map: ClusterMap): number[] {
  const ids = new Set<number>();
  for (const entry of map.entries) {
    for (let i = 0; i < entry.count; i++) ids.add(entry.base + i);
  }
  return [...ids].sort((a, b) => a - b);
}

/** What one node sees: its id and the ids in its map, or why there is nothing to see. */
export interface NodeMapView {
  readonly index: number;
  /** Its id per `mospe`, once written. */
  readonly self?: number;
  /** The ids in its map, aliases aside, ascending. */
  readonly ids?: readonly number[];
  /** Aliases in its map. */
  readonly aliases?: number;
  readonly map?: ClusterMap;
  /** The map could not be read (e.g. a file of another version). */
  readonly error?: string;
}

/** Reads what node `index` sees. */
export async function readNodeMap(lab: Lab, index: number): Promise<NodeMapView> {
  try {
    const found = await readMap(nodeStatePaths(lab, index));
    if (!found) return { index };
    return {
      index,
      self: found.self,
      ids: mapNodeIds(found.map),
      aliases: found.map.entries.filter((e) => e.count === 0).length,
      map: found.map,
    };
  } catch (error) {
    return { index, error: (error as Error).message };
  }
}

/** The outcome of {@linkcode waitForAgreement}. */
export interface Agreement {
  /** Every node's map held exactly the expected ids. */
  readonly agreed: boolean;
  readonly elapsedMs: number;
  readonly expected: readonly number[];
  /** The last views read, one per node waited on. */
  readonly views: readonly NodeMapView[];
  /** Nodes whose daemon is recorded but no longer runs (the wait stops at the first). */
  readonly dead: readonly number[];
}

/** Options of {@linkcode waitForAgreement}. */
export interface AgreementOptions {
  /** The ids every map must hold, aliases aside; default each node's first address's. */
  readonly ids?: readonly number[];
  /** The nodes to read; default all. */
  readonly nodes?: readonly number[];
  /** Default 30000. */
  readonly timeoutMs?: number;
  /** Stop early when a waited-on node's daemon has died; default true. */
  readonly failOnDeadDaemon?: boolean;
  readonly clock?: WaitClock;
}

/**
 * Polls the nodes' maps every 20 ms until each holds exactly the expected node ids (aliases
 * aside), or time runs out, or (by default) a daemon dies. Never throws for a disagreement:
 * the result says who saw what.
 */
export async function waitForAgreement(
  lab: Lab,
  options: AgreementOptions = {},
): Promise<Agreement> {
  const expected = [...(options.ids ?? labNodeIds(lab))].sort((a, b) => a - b);
  const indices = options.nodes ?? lab.record.nodes.map((n) => n.index);
  const clock = options.clock ?? systemClock;
  const start = clock.now();
  let views: NodeMapView[] = [];
  let dead: number[] = [];
  const want = expected.join(",");
  try {
    const agreed = await retryUntil(
      async () => {
        views = await Promise.all(indices.map((index) => readNodeMap(lab, index)));
        if (views.every((v) => v.ids?.join(",") === want)) return "agreed";
        if (options.failOnDeadDaemon ?? true) {
          dead = [];
          for (const index of indices) {
            const daemon = findNode(lab, index).daemon;
            if (daemon && !await isAlive(daemon)) dead.push(index);
          }
          if (dead.length) return "dead";
        }
        return undefined;
      },
      options.timeoutMs ?? 30000,
      { what: "the maps to agree", clock: options.clock },
    );
    return { agreed: agreed === "agreed", elapsedMs: clock.now() - start, expected, views, dead };
  } catch (error) {
    if (!(error instanceof RetryTimeoutError)) throw error;
    return { agreed: false, elapsedMs: error.elapsedMs, expected, views, dead };
  }
}
