/**
 * Which nodes `om exec` asks (PROTOCOL.md §13, "Which nodes"): without `-w`, the nodes of the
 * cluster map that are up; with `-w`, the nodes listed, each one that is down or not in the map
 * reported as such without being asked. Pure: the caller reads the map and the nodes' status
 * (`nodes/<id>/status`, PROTOCOL.md §3.7).
 */
import type { ClusterMap } from "../state/hpcmap.ts";
import { type ExecResult, notRun } from "./wire.ts";

/** The node ids a map lists, aliases aside, ascending. */
export function mapNodes(map: ClusterMap): number[] {
  const ids = new Set<number>();
  for (const entry of map.entries) {
    for (let i = 0; i < entry.count; i++) ids.add(entry.base + i);
  }
  return [...ids].sort((a, b) => a - b);
}

/** What `selectNodes` decides: the nodes to ask, and those reported without asking. */
export interface Selection {
  readonly ask: readonly number[];
  readonly notAsked: readonly ExecResult[];
}

/**
 * The nodes to ask: `wanted` (from `-w`), or every node of the map. A node is up when it is this
 * node, or it is in the map and its status is not "down" (a member whose figures have not come yet
 * counts as up: the map is who is there). Without `-w`, nodes that are not up are left out; with
 * it, each is reported down, with why.
 */
export function selectNodes(options: {
  readonly self: number;
  readonly members: readonly number[];
  /** A node's status as this node knows it (`nodes/<id>/status`); undefined when unknown. */
  readonly status: (node: number) => "up" | "down" | undefined;
  readonly wanted?: readonly number[];
}): Selection {
  const { self, status } = options;
  const members = new Set(options.members);
  const up = (node: number) => node === self || (members.has(node) && status(node) !== "down");
  if (options.wanted === undefined) {
    return {
      ask: [...members, ...(members.has(self) ? [] : [self])].filter(up).sort((a, b) => a - b),
      notAsked: [],
    };
  }
  const ask: number[] = [];
  const notAsked: ExecResult[] = [];
  for (const node of [...new Set(options.wanted)].sort((a, b) => a - b)) {
    if (up(node)) ask.push(node);
    else {
      notAsked.push(
        notRun(node, {
          kind: "down",
          reason: members.has(node)
            ? "its status is down (no figures from it lately)"
            : "it is not in the cluster map",
        }),
      );
    }
  }
  return { ask, notAsked };
}
