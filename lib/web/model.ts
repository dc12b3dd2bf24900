/**
 * What the status page and its JSON API show of the cluster (PROTOCOL.md §14): one object per
 * node, per job and per recent move, and the cluster view that holds them all. The collector
 * (collector.ts) builds views, the differ (diff.ts) turns two of them into a change event, the
 * server (server.ts) sends them, and the page (page.ts) shows them. Plain JSON values throughout:
 * what the API returns is exactly these objects.
 */

/** The admin flags of a node the page shows (PROTOCOL.md §3.8), in this order. */
export const NODE_FLAGS = ["stay", "lstay", "block", "quiet"] as const;
/** One of {@linkcode NODE_FLAGS}. */
export type NodeFlag = typeof NODE_FLAGS[number];
/** A node's admin flags. */
export type NodeFlags = Readonly<Record<NodeFlag, boolean>>;

/** One node, as `GET /api/nodes` lists it. */
export interface NodeView {
  readonly id: number;
  /** Its address in the map (its first interface's). */
  readonly address: string;
  /** "up" while its figures come (the node serving the page: always); "down" otherwise. */
  readonly status: "up" | "down";
  /** It is the node serving the page. */
  readonly self: boolean;
  /** It is in this node's cluster map now. */
  readonly inMap: boolean;
  readonly cpus: number;
  /** Relative speed, 10000 = a 1 GHz reference CPU. */
  readonly speed: number;
  /** openMosix load: 100 = one busy CPU of the reference speed. */
  readonly load: number;
  /** load / cpus, rounded (0 for a node that is down). */
  readonly loadPerCpu: number;
  /** Memory available for new work, bytes. */
  readonly mem: number;
  /** Raw free memory, bytes. */
  readonly rmem: number;
  /** Total memory, bytes. */
  readonly tmem: number;
  /** CPU utilisation, percent. */
  readonly util: number;
  /** Its admin flags; null while not known (not asked yet, or it did not answer). */
  readonly flags: NodeFlags | null;
  /** Bytes per second received on its cluster interfaces; null while not known. */
  readonly netIn: number | null;
  /** Bytes per second sent on its cluster interfaces; null while not known. */
  readonly netOut: number | null;
  /** Jobs of the cluster running on it now (of the homes whose jobs could be read). */
  readonly jobs: number;
}

/** One job of the cluster, as `GET /api/jobs` lists it; its home node reports it. */
export interface JobView {
  /** `HOME:PID`: a job's PID is unique at its home only. */
  readonly key: string;
  /** Its PID, given by its home node (what `om ps` and `om migrate` take). */
  readonly pid: number;
  readonly home: number;
  /** The node it runs on now. */
  readonly node: number;
  /** Its user's name (`uid N` when the home has no name for it). */
  readonly user: string;
  readonly uid: number;
  /** Its command line, words joined by spaces, at most MAX_COMMAND_CHARS characters. */
  readonly command: string;
  /** When it started, milliseconds since the epoch. */
  readonly started: number;
  /** How many times it moved. */
  readonly migrations: number;
  /** Locked: the balancer never moves it. */
  readonly locked: boolean;
  /** It ended; its exit waits to be collected by its `om run`. */
  readonly ended: boolean;
}

/** One recent move, as `GET /api/migrations` lists it; the job's home reports it. */
export interface MoveView {
  /** `HOME:EPOCH:SEQ`: the move's number in its home's log (PROTOCOL.md §14.4). */
  readonly key: string;
  /** When it began, milliseconds since the epoch. */
  readonly at: number;
  readonly pid: number;
  readonly home: number;
  readonly from: number;
  readonly to: number;
  /** Who asked: user, balancer, expel, bring, placement or node (lib/migration/movelog.ts). */
  readonly by: string;
  /** The user's name, when a user asked. */
  readonly user: string | null;
  /** The node that asked, when another node asked (balancer, expel, node). */
  readonly asker: number | null;
  readonly result: "moving" | "ok" | "failed";
  /** Frozen milliseconds (done moves). */
  readonly frozenMs: number | null;
  /** Total milliseconds (ended moves). */
  readonly totalMs: number | null;
  /** The failed step, when known. */
  readonly step: string | null;
  /** Why it failed. */
  readonly error: string | null;
}

/** The cluster as one node sees it at one moment: what the page shows. */
export interface ClusterView {
  /** The node serving it. */
  readonly self: number;
  /** Whether the cluster has a key (without one, other nodes' jobs are not shown). */
  readonly keyed: boolean;
  /** The information interval, milliseconds: the pace of the updates. */
  readonly interval: number;
  /** When it was taken, milliseconds since the epoch. */
  readonly at: number;
  /** Nodes that are up whose jobs and moves could not be read (keyless, no answer). */
  readonly unread: readonly number[];
  /** Every node, by id. */
  readonly nodes: readonly NodeView[];
  /** Every job, by home then PID. */
  readonly jobs: readonly JobView[];
  /** The recent moves, newest first (at most MAX_MOVES). */
  readonly moves: readonly MoveView[];
}

/** Each node's load over the last minutes (`GET /api/history`): `t[i]` is when `nodes[id][i]` was. */
export interface HistoryView {
  /** The times of the points, milliseconds since the epoch, oldest first. */
  readonly t: readonly number[];
  /** Per node id: its load at each time, null where it was not known. */
  readonly nodes: Readonly<Record<string, readonly (number | null)[]>>;
}

/** The longest command line a job shows, in characters. */
export const MAX_COMMAND_CHARS = 256;
/** The most jobs one node reports (`status.jobs`); the rest are left out. */
export const MAX_JOBS_PER_NODE = 1000;
/** The most jobs a view holds. */
export const MAX_JOBS = 5000;
/** The most moves a view holds (the newest). */
export const MAX_MOVES = 100;
/** The most moves kept per home node. */
export const MAX_MOVES_PER_NODE = 64;

/** The key of a job. */
export function jobKey(home: number, pid: number): string {
  return `${home}:${pid}`;
}

/** Orders jobs by home node, then PID. */
export function byJob(a: JobView, b: JobView): number {
  return a.home - b.home || a.pid - b.pid;
}

/** Orders moves newest first (then by key, for a stable order). */
export function byMove(a: MoveView, b: MoveView): number {
  return b.at - a.at || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0);
}
