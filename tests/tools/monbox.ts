/**
 * The state tree `om mon`'s tests look at: a map of three nodes, 1 and 2 up and 3 down, in a
 * sandbox (tests/tools/sandbox.ts) removed with it.
 */
import type { ClusterMap } from "../../lib/state/hpcmap.ts";
import { downInfo, type NodeInfo, writeNodeInfo } from "../../lib/state/nodestate.ts";
import { writeMap } from "../../lib/state/tree.ts";
import { sandbox as shared } from "./sandbox.ts";

const G = 1024 ** 3;

export const MAP: ClusterMap = {
  gateways: 0,
  entries: [{ base: 1, address: "10.77.0.1", count: 3 }],
};

/** Node `id`, up, with load `load`. */
export const node = (id: number, load: number): NodeInfo => ({
  id,
  status: "up",
  load,
  speed: 10000,
  cpus: 2,
  mem: 2 * G,
  rmem: G,
  tmem: 4 * G,
  util: 50,
});

/** A state tree with a map, nodes 1 and 2 up and 3 down, and an empty configuration file. */
export async function sandbox(options: { map?: boolean; nodes?: boolean } = {}) {
  const box = await shared("mon");
  const { paths } = box;
  if (options.map ?? true) await writeMap(paths, 1, MAP);
  if (options.nodes ?? true) {
    await writeNodeInfo(paths.nodes, node(1, 150));
    await writeNodeInfo(paths.nodes, node(2, 40));
    await writeNodeInfo(paths.nodes, downInfo(3));
  }
  return { ...box, root: box.env.OM_ROOT };
}
