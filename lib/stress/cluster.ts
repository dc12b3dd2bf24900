/**
 * What `om stress` reads of the node it runs on and of the cluster before it starts, for its
 * settings and its report: this node's id (the jobs' home), every node the map and the figures
 * know (id, address, CPUs, speed, memory, up or down), om's version, the kernel, and the CRIU the
 * node's om discover moves jobs with (its OM_CRIU, else criu on its PATH, read from /proc; ours
 * when its environment cannot be read) and that CRIU's version.
 */
import type { WaitClock } from "../base/clock.ts";
import { VERSION } from "../base/version.ts";
import { findCriu, parseVersion } from "../criu/preflight.ts";
import { runCriu } from "../criu/run.ts";
import type { ClusterMap } from "../state/hpcmap.ts";
import { listNodeInfo, type NodeInfo } from "../state/nodestate.ts";
import { readMap, type StatePaths } from "../state/tree.ts";
import { mapLists } from "../views/figures.ts";
import { addressesOf } from "../views/whois.ts";

/** One node, as the report lists it. */
export interface NodeFigures {
  readonly id: number;
  /** Its address in the map; undefined when the map does not list it. */
  readonly address?: string;
  readonly up: boolean;
  /** Whether its figures are known (a node that just joined has none yet: all 0). */
  readonly measured: boolean;
  readonly cpus: number;
  /** Relative speed (10000 = a 1 GHz reference CPU). */
  readonly speed: number;
  /** Memory available for new work, in bytes. */
  readonly mem: number;
  /** Total memory, in bytes. */
  readonly tmem: number;
}

/** The cluster as this node sees it. */
export interface ClusterView {
  /** This node: the home of every job om stress starts. */
  readonly self: number;
  /** Every node known, by id. */
  readonly nodes: readonly NodeFigures[];
}

/** The software a run happened on. */
export interface Software {
  readonly om: string;
  /** The kernel's release (uname -r). */
  readonly kernel: string;
  /** "4.1.1 (/usr/sbin/criu)", or why it is unknown. */
  readonly criu: string;
}

/** The ids of the nodes that are up. */
export function upIds(view: ClusterView): number[] {
  return view.nodes.filter((n) => n.up).map((n) => n.id);
}

/** Every node the map lists or that has figures, by id: up by its figures, or by the map alone. */
export function nodesOf(map: ClusterMap, figures: readonly NodeInfo[]): NodeFigures[] {
  const ids = new Set(figures.map((f) => f.id));
  for (const entry of map.entries) {
    if (entry.count === 0) ids.add(entry.base);
    for (let i = 0; i < entry.count; i++) ids.add(entry.base + i);
  }
  return [...ids].sort((a, b) => a - b).map((id) => {
    const info = figures.find((f) => f.id === id);
    const address = addressesOf(map.entries, id)[0];
    return {
      id,
      ...(address !== undefined ? { address } : {}),
      up: info ? info.status === "up" : mapLists(map, id),
      measured: info !== undefined && info.status === "up",
      cpus: info?.cpus ?? 0,
      speed: info?.speed ?? 0,
      mem: info?.mem ?? 0,
      tmem: info?.tmem ?? 0,
    };
  });
}

/**
 * Reads this node's id and the cluster's nodes. Throws an Error saying so when this node has no
 * map (om discover is not running here, or has not found the cluster yet).
 */
export async function readCluster(paths: StatePaths): Promise<ClusterView> {
  const state = await readMap(paths);
  if (!state || state.self === 0) {
    throw new Error(
      `Cannot run the stress test: this node has no cluster map in ${paths.config} ` +
        `(is om discover running?)`,
    );
  }
  return { self: state.self, nodes: nodesOf(state.map, await listNodeInfo(paths.nodes)) };
}

/**
 * Reads the cluster once every node that is up has its figures (a node joins the map a moment
 * before its first information message), or as it is after `timeoutMs`.
 */
export async function readMeasuredCluster(
  paths: StatePaths,
  clock: WaitClock,
  timeoutMs: number,
): Promise<ClusterView> {
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    const view = await readCluster(paths);
    if (view.nodes.every((n) => !n.up || n.measured) || clock.now() >= deadline) return view;
    await clock.sleep(200);
  }
}

/** The variables of a /proc/PID/environ text. */
function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}

/**
 * The environment of the om discover whose pid `<root>/omdiscd.pid` holds, when /proc lets it be
 * read; undefined otherwise.
 */
async function daemonEnv(root: string, proc: string): Promise<Map<string, string> | undefined> {
  try {
    const pid = Number((await Deno.readTextFile(`${root}/omdiscd.pid`)).trim());
    if (!Number.isInteger(pid) || pid < 1) return undefined;
    return parseEnviron(await Deno.readTextFile(`${proc}/${pid}/environ`));
  } catch {
    return undefined;
  }
}

/**
 * The software of this node: om's version, the kernel's release and the daemon's CRIU with its
 * version (`criu --version`). `env` is om stress's own environment, used when the daemon's cannot
 * be read; `now` times the CRIU run (milliseconds).
 */
export async function readSoftware(
  settings: { readonly root: string; readonly proc: string },
  env: (name: string) => string | undefined,
  now: () => number,
): Promise<Software> {
  const daemon = await daemonEnv(settings.root, settings.proc);
  const lookup = daemon ? (name: string) => daemon.get(name) : env;
  const binary = findCriu(lookup);
  const whose = daemon ? "om discover's" : "this process's";
  let criu: string;
  if (!binary) {
    criu = `none found (no OM_CRIU and no criu on ${whose} PATH)`;
  } else {
    try {
      const result = await runCriu({ binary, now }, {
        step: "version",
        what: "read CRIU's version",
        args: ["--version"],
      });
      const version = parseVersion(result.output);
      criu = version ? `${version.text} (${binary})` : `unknown version (${binary})`;
    } catch (error) {
      criu = `cannot run ${binary}: ${(error as Error).message}`;
    }
  }
  return { om: VERSION, kernel: Deno.osRelease(), criu };
}
