/**
 * This node, as the verbs of `mosctl` that are about it find it: its id is the one of the map in
 * force (written by om discover, or `setpe -w`), and 0 there means openMosix is off here.
 */
import type { ClusterMap } from "../state/hpcmap.ts";
import { readMap, type StatePaths } from "../state/tree.ts";

/** The node id and map in force, as readMap gives them. */
export type MapState = { readonly self: number; readonly map: ClusterMap };

/** Why nothing can be said without a map: where it was looked for, and what writes it. */
export function noMapInForce(paths: StatePaths): string {
  return `no map in force in "${paths.config}" (is om discover running, or setpe -w done?)`;
}

/** This node's id and the map; throws when no map is in force or openMosix is off. */
export function requireSelf(paths: StatePaths, state: MapState | undefined): MapState {
  if (!state) throw new Error(`Cannot tell this node's id: ${noMapInForce(paths)}`);
  if (state.self === 0) {
    throw new Error("Cannot tell this node's id: openMosix is off here (node id 0, setpe -off)");
  }
  return state;
}

/** This node's id from the map in force (see requireSelf). */
export async function selfId(paths: StatePaths): Promise<number> {
  return requireSelf(paths, await readMap(paths)).self;
}
