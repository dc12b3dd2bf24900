/**
 * A lab's record and its file: what a lab is made of (its nodes, their interfaces, cgroups and
 * daemons, and the list of everything made), kept in `<lab dir>/NAME/lab.json`, which is replaced
 * atomically at every change. Everything a lab makes is written here before it is made, so that
 * `destroyLab` can undo exactly that list, also for a half-made lab, and touch nothing else.
 * PROTOCOL.md ("The lab") documents the file and the layout of the lab directory.
 */
import { nodeIdOf } from "../base/ipv4.ts";
import { exists } from "../base/fs.ts";
import { resolveStatePaths, type StatePaths, writeFileAtomic } from "../state/tree.ts";

/** Where labs are kept unless `$OM_LAB_DIR` says otherwise. */
export const DEFAULT_LAB_DIR = "/run/om-lab";
/** The lab's name unless `--name` says otherwise. */
export const DEFAULT_LAB_NAME = "omlab";
/** The version of lab.json; bumped when a field changes meaning. */
export const LAB_FILE_VERSION = 1;

/** The cgroup v1 controllers a node gets its own group in. */
export const CGROUP_CONTROLLERS = ["cpu", "cpuacct", "memory"] as const;
/** One of {@linkcode CGROUP_CONTROLLERS}. */
export type CgroupController = typeof CGROUP_CONTROLLERS[number];

/** An interface of a made node. */
export interface LabNic {
  /** Its name inside the node: eth0, eth1, ... */
  readonly name: string;
  readonly net: number;
  readonly address: string;
  readonly prefix: number;
  /** The other end of its veth pair, a port of the bridge in the switch namespace. */
  readonly port: string;
}

/** A node's cgroup directories, by controller; absent when that hierarchy is not mounted. */
export type LabCgroups = Partial<Record<CgroupController, string>>;

/** The running `om discover` of a node, identified by pid and start time (pids are reused). */
export interface LabDaemon {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: tells this process from a later one with the same pid. */
  readonly startTime: number;
  readonly argv: readonly string[];
  readonly log: string;
}

/** A made node. */
export interface LabNode {
  readonly index: number;
  readonly namespace: string;
  readonly nics: readonly LabNic[];
  /** The node's directory: its state tree, configuration file and daemon log are in it. */
  readonly dir: string;
  /** Its state tree, `$OM_ROOT` inside the node. */
  readonly root: string;
  /** Its configuration file, `$OM_CONFIG` inside the node (empty at first). */
  readonly config: string;
  readonly cgroups: LabCgroups;
  readonly discoverArgs: readonly string[];
  daemon?: LabDaemon;
}

/** One thing the lab made, in the order made; destroyLab undoes them in reverse. */
export type Made =
  | { readonly kind: "dir"; readonly path: string }
  | { readonly kind: "netns"; readonly name: string; inode?: number }
  | { readonly kind: "cgroup"; readonly path: string };

/** The contents of lab.json. */
export interface LabRecord {
  readonly version: number;
  readonly name: string;
  /** The lab's directory, `<lab dir>/<name>`. */
  readonly dir: string;
  /** ISO 8601 time of creation. */
  readonly created: string;
  /** The namespace holding the bridges. */
  readonly switchNamespace: string;
  /** Bridge of each network, in the switch namespace. */
  readonly networks: readonly { readonly net: number; readonly bridge: string }[];
  readonly cpus?: number;
  readonly memory?: number;
  /**
   * The cluster key every node uses (`key = FILE` in each node's om.conf), `<dir>/cluster.key`;
   * absent for a keyless lab, whose nodes do not move jobs.
   */
  readonly key?: string;
  /**
   * The CRIU every node moves jobs with, `OM_CRIU` of each node's processes (criu.ts provides it);
   * absent when none was given: the nodes then look for one on PATH.
   */
  readonly criu?: string;
  /**
   * The TCP port of every node's status page (`http = <its eth0 address>:<port>` in its om.conf);
   * absent when the lab's nodes serve none.
   */
  readonly http?: number;
  readonly nodes: LabNode[];
  made: Made[];
}

/** A lab in this process: its record, and the daemons this process started (to reap them). */
export interface Lab {
  readonly record: LabRecord;
  /** Daemons started by this process, by node index; others are only known by pid. */
  readonly children: Map<number, Deno.ChildProcess>;
}

/** Progress and warnings from lab operations; lib/ never prints. */
export type LabLog = (message: string) => void;

/** The file of the lab `name` in the lab directory `dir`. */
export function labFile(dir: string, name: string): string {
  return `${dir}/${name}/lab.json`;
}

/** The lab `name` in the lab directory `dir`, or undefined when there is none. */
export async function loadLab(dir: string, name: string): Promise<Lab | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(labFile(dir.replace(/\/$/, ""), name));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const record = JSON.parse(text) as LabRecord;
  if (record.version !== LAB_FILE_VERSION) {
    throw new RangeError(
      `Cannot read lab "${name}": lab.json version ${record.version}, expected ${LAB_FILE_VERSION}`,
    );
  }
  return { record, children: new Map() };
}

/** The names of the labs in the lab directory `dir`. */
export async function listLabs(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && await exists(labFile(dir, entry.name))) names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/** The last save of each lab, which the next one waits for. */
const saving = new WeakMap<Lab, Promise<void>>();

/** Writes lab.json atomically; saves of one lab run one after another, the last one wins. */
export function saveLab(lab: Lab): Promise<void> {
  const previous = saving.get(lab) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(async () => {
    const bytes = new TextEncoder().encode(JSON.stringify(lab.record, null, 2) + "\n");
    await writeFileAtomic(`${lab.record.dir}/lab.json`, bytes);
  });
  saving.set(lab, next);
  return next;
}

/** The node numbered `index`; throws RangeError when the lab has none. */
export function findNode(lab: Lab, index: number): LabNode {
  const node = lab.record.nodes.find((n) => n.index === index);
  if (!node) {
    throw new RangeError(
      `Cannot find node ${index} in lab "${lab.record.name}": it has nodes ${
        lab.record.nodes.map((n) => n.index).join(", ")
      }`,
    );
  }
  return node;
}

/** The state tree of node `index` (`$OM_ROOT` inside it). */
export function nodeRoot(lab: Lab, index: number): string {
  return findNode(lab, index).root;
}

/** Where node `index` keeps its map, as its daemon resolves it. */
export function nodeStatePaths(lab: Lab, index: number): StatePaths {
  return resolveStatePaths({ root: nodeRoot(lab, index), proc: "/proc", alpha: false });
}

/** The node ids of a lab: each node's first address, as `om discover` takes its id. */
export function labNodeIds(lab: Lab): number[] {
  return lab.record.nodes.map((node) => nodeIdOf(node.nics[0].address));
}
