/**
 * A node's figures as `mosctl` reads them: what nodes/<id>/ publishes (PROTOCOL.md §3.7), of a
 * node that is up. A node that is down or unknown has no figures to show, and saying so is an
 * error that names the figure asked for.
 */
import { type NodeInfo, readNodeInfo } from "../state/nodestate.ts";
import type { ClusterMap } from "../state/hpcmap.ts";

/** The figures of node `id`; throws, naming `what` ("load"), when it is unknown or down. */
export async function upFigures(nodesDir: string, id: number, what: string): Promise<NodeInfo> {
  const info = await readNodeInfo(nodesDir, id);
  if (info === undefined) {
    throw new Error(
      `Cannot read the ${what} of node ${id}: nothing is known about it ` +
        `(no "${nodesDir}/${id}")`,
    );
  }
  if (info.status !== "up") throw new Error(`Cannot read the ${what} of node ${id}: it is down`);
  return info;
}

/** Whether `map` lists node `id`: in an entry's range, or as an entry's alias. */
export function mapLists(map: ClusterMap, id: number): boolean {
  return map.entries.some((e) =>
    e.count === 0 ? e.base === id : e.base <= id && id < e.base + e.count
  );
}

/**
 * True when node `id` is up: its figures say so, or it has none yet and the map in force (`map`)
 * lists it. A node joins every map at its first announcement, a moment before its first
 * information message brings figures; in the map, it is up. Figures that say down win over the
 * map: a node that went quiet (`mosctl quiet`) or stopped reporting stays in the maps but is down.
 * False when nothing at all is known about it.
 */
export async function isUp(nodesDir: string, id: number, map?: ClusterMap): Promise<boolean> {
  const info = await readNodeInfo(nodesDir, id);
  if (info !== undefined) return info.status === "up";
  return map !== undefined && mapLists(map, id);
}
