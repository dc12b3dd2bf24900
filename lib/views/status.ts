/**
 * The `mosctl status` listing: one view object (this node's flags and figures, and a summary of
 * the cluster in the map), read from the state tree and rendered as readable text or as JSON, so
 * the two never disagree.
 * `status ID` of another node shows that node's figures only: flags are known only here.
 */
import { ADMIN_FLAGS, type AdminFlag, readFlag } from "../state/admin.ts";
import type { MapEntry } from "../state/hpcmap.ts";
import { formatNodeId } from "../base/ipv4.ts";
import { listNodes } from "../state/mapfile.ts";
import { listNodeInfo, type NodeInfo, readNodeInfo } from "../state/nodestate.ts";
import type { Backend, StatePaths } from "../state/tree.ts";
import type { MapState } from "./thisnode.ts";
import { addressesOf } from "./whois.ts";

/** This node's side of the view: where its state is and its admin flags. */
export interface LocalState {
  readonly backend: Backend;
  /** The directory that holds admin/ and nodes/ (the state tree, or <proc>/hpc). */
  readonly state: string;
  readonly flags: Readonly<Record<AdminFlag, boolean>>;
}

/** The cluster in the map: nodes, how many are up, and the CPUs and memory of those up. */
export interface ClusterSummary {
  readonly nodes: number;
  readonly up: number;
  readonly down: number;
  readonly cpus: number;
  /** Memory available for new work on the nodes that are up (bytes). */
  readonly mem: number;
  /** Total memory of the nodes that are up (bytes). */
  readonly tmem: number;
}

/** What status shows. `local` and `cluster` are there for this node only. */
export interface StatusView {
  readonly id: number;
  readonly addresses: readonly string[];
  /** The node's figures; undefined when nothing was heard from it yet. */
  readonly node: NodeInfo | undefined;
  readonly local?: LocalState;
  readonly cluster?: ClusterSummary;
}

/** The node's figures in JSON: NodeInfo without the id, which the view carries. */
export type NodeJson = Omit<NodeInfo, "id">;

/** The `--json` form of the view (PROTOCOL.md documents it as a stable output). */
export interface StatusJson {
  readonly id: number;
  readonly idHex: string;
  readonly addresses: readonly string[];
  readonly node: NodeJson | null;
  readonly backend?: Backend;
  readonly state?: string;
  readonly flags?: Readonly<Record<AdminFlag, boolean>>;
  readonly cluster?: ClusterSummary;
}

/**
 * Sums up the nodes of the map from their information: a node is up when its status says so;
 * one never heard from counts as down. CPUs and memory are those of the nodes that are up.
 */
export function clusterSummary(
  entries: readonly MapEntry[],
  infos: readonly NodeInfo[],
): ClusterSummary {
  const ids = new Set(listNodes(entries).map((n) => n.id));
  const up = infos.filter((i) => ids.has(i.id) && i.status === "up");
  const sum = (key: "cpus" | "mem" | "tmem") => up.reduce((total, i) => total + i[key], 0);
  return {
    nodes: ids.size,
    up: up.length,
    down: ids.size - up.length,
    cpus: sum("cpus"),
    mem: sum("mem"),
    tmem: sum("tmem"),
  };
}

/** Bytes for people: `512 B`, `1.5 KiB`, `3.8 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The flags as the verbs that set them: `nostay nolstay block noquiet mfs; expel pending`. */
function flagWords(flags: Readonly<Record<AdminFlag, boolean>>): string {
  const words = [
    flags.stay ? "stay" : "nostay",
    flags.lstay ? "lstay" : "nolstay",
    flags.block ? "block" : "noblock",
    flags.quiet ? "quiet" : "noquiet",
    flags.nomfs ? "nomfs" : "mfs",
  ].join(" ");
  const pending = (["expel", "bring"] as const).filter((f) => flags[f]).map((f) => `${f} pending`);
  return pending.length ? `${words}; ${pending.join(", ")}` : words;
}

const LABEL_WIDTH = 13;

function line(label: string, value: string): string {
  return `${`${label}:`.padEnd(LABEL_WIDTH)}${value}`;
}

function nodeLines(node: NodeInfo | undefined): string[] {
  if (node === undefined) return [line("status", "no information yet")];
  if (node.status !== "up") return [line("status", "down")];
  return [
    line("status", "up"),
    line("speed", String(node.speed)),
    line("load", String(node.load)),
    line("cpus", String(node.cpus)),
    line(
      "memory",
      `${formatBytes(node.mem)} available, ${formatBytes(node.rmem)} free, ` +
        `${formatBytes(node.tmem)} total`,
    ),
    line("utilisation", `${node.util}%`),
  ];
}

/** The readable listing. */
export function renderStatus(view: StatusView): string {
  const [first, ...aliases] = view.addresses;
  const where = first === undefined
    ? ", not in the map"
    : ` at ${first}${aliases.length ? ` (also ${aliases.join(", ")})` : ""}`;
  const name = `om node #${view.id} (${formatNodeId(view.id)})${where}`;
  const lines = [view.local ? `This is ${name}` : name];
  if (view.local) {
    lines.push(line("state", `${view.local.backend}, ${view.local.state}`));
    lines.push(line("flags", flagWords(view.local.flags)));
  }
  lines.push(...nodeLines(view.node));
  if (view.cluster) {
    const c = view.cluster;
    lines.push(
      "",
      line(
        "cluster",
        `${c.nodes} node${c.nodes === 1 ? "" : "s"} in the map, ${c.up} up, ${c.down} down`,
      ),
      line("cpus", `${c.cpus} on the nodes that are up`),
      line(
        "memory",
        `${formatBytes(c.mem)} available of ${formatBytes(c.tmem)} on the nodes that are up`,
      ),
    );
  }
  return lines.join("\n") + "\n";
}

/** The JSON form: the same facts, numbers in bytes and plain units. */
export function statusJson(view: StatusView): StatusJson {
  let node: NodeJson | null = null;
  if (view.node) {
    const { id: _id, ...rest } = view.node;
    node = rest;
  }
  return {
    id: view.id,
    idHex: formatNodeId(view.id),
    addresses: [...view.addresses],
    node,
    ...(view.local
      ? { backend: view.local.backend, state: view.local.state, flags: { ...view.local.flags } }
      : {}),
    ...(view.cluster ? { cluster: { ...view.cluster } } : {}),
  };
}

/**
 * Reads what status shows of node `id`: its addresses in the map in force (`state`, when there is
 * one) and its figures; for this node also its admin flags and the cluster's summary. Throws when
 * neither the map nor nodes/ knows the node.
 */
export async function readStatus(
  paths: StatePaths,
  id: number,
  state: MapState | undefined,
): Promise<StatusView> {
  const entries = state?.map.entries ?? [];
  const addresses = addressesOf(entries, id);
  const node = await readNodeInfo(paths.nodes, id);
  if (addresses.length === 0 && node === undefined) {
    throw new Error(
      `Cannot show node ${id} (${formatNodeId(id)}): it is neither in the map in force ` +
        `nor in "${paths.nodes}"`,
    );
  }
  const view: StatusView = { id, addresses, node };
  if (!state || state.self !== id) return view;
  const flags = Object.fromEntries(
    await Promise.all(ADMIN_FLAGS.map(async (f) => [f, await readFlag(paths, f)])),
  ) as Record<AdminFlag, boolean>;
  const admin = paths.admin;
  return {
    ...view,
    local: { backend: paths.backend, state: admin.slice(0, admin.lastIndexOf("/")), flags },
    cluster: clusterSummary(entries, await listNodeInfo(paths.nodes)),
  };
}
