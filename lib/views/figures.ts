/**
 * A node's figures as `mosctl` reads them: what nodes/<id>/ publishes (PROTOCOL.md §3.7), of a
 * node that is up. A node that is down or unknown has no figures to show, and saying so is an
 * error that names the figure asked for.
 */
import { type NodeInfo, readNodeInfo } from "../state/nodestate.ts";

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

/** True when node `id` is up; false when it is down or nothing is known about it. */
export async function isUp(nodesDir: string, id: number): Promise<boolean> {
  return (await readNodeInfo(nodesDir, id))?.status === "up";
}
