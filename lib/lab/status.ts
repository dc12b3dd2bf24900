/**
 * A lab's status, the one view both the table and the `--json` of `om lab status` are made from:
 * per node its namespace, addresses, daemon (alive or not) and the size of its map.
 */
import type { Lab } from "./record.ts";
import { isAlive } from "./daemons.ts";
import { readNodeMap } from "./maps.ts";

/** One node in `om lab status`. */
export interface NodeStatus {
  readonly index: number;
  readonly namespace: string;
  readonly addresses: readonly string[];
  readonly pid?: number;
  readonly alive: boolean;
  /** Ids in its map, aliases aside; undefined before its first map. */
  readonly mapNodes?: number;
  readonly self?: number;
}

/** A lab's status: the view both the table and `--json` of `om lab status` are made from. */
export interface LabStatus {
  readonly name: string;
  readonly dir: string;
  readonly created: string;
  readonly switchNamespace: string;
  readonly cpus?: number;
  readonly memory?: number;
  readonly nodes: readonly NodeStatus[];
}

/** Reads the status of every node of a lab. */
export async function labStatus(lab: Lab): Promise<LabStatus> {
  const { record } = lab;
  const nodes = await Promise.all(record.nodes.map(async (node): Promise<NodeStatus> => {
    const view = await readNodeMap(lab, node.index);
    return {
      index: node.index,
      namespace: node.namespace,
      addresses: node.nics.map((nic) => `${nic.name}=${nic.address}/${nic.prefix}`),
      ...(node.daemon ? { pid: node.daemon.pid } : {}),
      alive: node.daemon ? await isAlive(node.daemon) : false,
      ...(view.ids ? { mapNodes: view.ids.length } : {}),
      ...(view.self !== undefined ? { self: view.self } : {}),
    };
  }));
  return {
    name: record.name,
    dir: record.dir,
    created: record.created,
    switchNamespace: record.switchNamespace,
    ...(record.cpus !== undefined ? { cpus: record.cpus } : {}),
    ...(record.memory !== undefined ? { memory: record.memory } : {}),
    nodes,
  };
}
