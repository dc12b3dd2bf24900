/**
 * Making a lab: its directory and lab.json, then its namespaces (netns.ts) and cgroups
 * (cgroups.ts), then each node's state tree and configuration file. The name is claimed by making
 * the lab's directory (atomic), and nothing is made while a namespace or cgroup of that name is
 * already there. On any failure half-way, what was made is removed again (destroy.ts).
 */
import { exists } from "../base/fs.ts";
import { newKeyText } from "../base/key.ts";
import { checkLabName, checkTopology, type NodeSpec } from "./plan.ts";
import {
  CGROUP_CONTROLLERS,
  type Lab,
  LAB_FILE_VERSION,
  type LabCgroups,
  type LabLog,
  type LabNode,
  saveLab,
} from "./record.ts";
import { buildCgroups, cgroupParents } from "./cgroups.ts";
import { buildNamespaces, NETNS_DIR } from "./netns.ts";
import { destroyLab } from "./destroy.ts";

/** `createLab` found the lab (or its directory) already there. */
export class LabExistsError extends Error {
  override name = "LabExistsError";
}

/** Options of {@linkcode createLab}. */
export interface CreateLabOptions {
  /** The lab's name: namespaces NAME-sw, NAME-1, ...; cgroups .../NAME/nodeI. */
  readonly name: string;
  /** The directory of labs (`/run/om-lab`); this lab's is `<dir>/<name>`. */
  readonly dir: string;
  readonly nodes: readonly NodeSpec[];
  /** CPUs per node (cpu.cfs_quota_us = cpus x period); default no limit. */
  readonly cpus?: number;
  /** Memory per node in bytes (memory.limit_in_bytes); default no limit. */
  readonly memory?: number;
  /**
   * Whether the nodes share a cluster key (default true): a new key in `<dir>/cluster.key`, named
   * by every node's om.conf. Without one the lab's nodes find each other but move no jobs.
   */
  readonly key?: boolean;
  /** The CRIU the nodes use (OM_CRIU of their processes; criu.ts provides it); default none. */
  readonly criu?: string;
  /**
   * The TCP port every node serves its status page on, at its first address (`http` in its
   * om.conf); default none.
   */
  readonly http?: number;
  /** Milliseconds since the epoch, for the creation time. */
  readonly now?: () => number;
  readonly log?: LabLog;
}

/**
 * Makes a lab: its directory and lab.json, the switch namespace with one bridge per network,
 * a namespace per node with its veth interfaces, addresses, default route, the node's cgroups
 * and state tree. Starts no daemon (daemons.ts does). Throws LabExistsError when the
 * lab, one of its namespaces or cgroups is already there; on any other failure it removes what
 * it made and throws.
 */
export async function createLab(options: CreateLabOptions): Promise<Lab> {
  const name = checkLabName(options.name);
  checkTopology(options.nodes);
  if (options.cpus !== undefined && !(options.cpus > 0 && options.cpus <= 1024)) {
    throw new RangeError(`Cannot give ${options.cpus} CPUs to a node: more than 0, at most 1024`);
  }
  if (
    options.http !== undefined &&
    !(Number.isInteger(options.http) && options.http >= 1 && options.http <= 65535)
  ) {
    throw new RangeError(`Cannot serve the status page on port ${options.http}: 1 to 65535`);
  }
  const log = options.log ?? (() => {});
  const dir = `${options.dir.replace(/\/$/, "")}/${name}`;
  const switchNamespace = `${name}-sw`;
  const nets = [...new Set(options.nodes.flatMap((n) => n.nics.map((nic) => nic.net)))].sort(
    (a, b) => a - b,
  );
  const parents = await cgroupParents();
  for (const [controller, limit] of [["cpu", options.cpus], ["memory", options.memory]] as const) {
    if (limit !== undefined && !parents[controller]) {
      throw new Error(
        `Cannot limit ${controller} of the nodes: no cgroup v1 ${controller} hierarchy mounted`,
      );
    }
  }
  const nodes: LabNode[] = [...options.nodes].sort((a, b) => a.index - b.index).map((spec) => {
    const nodeDir = `${dir}/node${spec.index}`;
    const cgroups: LabCgroups = {};
    for (const controller of CGROUP_CONTROLLERS) {
      const parent = parents[controller];
      if (parent) cgroups[controller] = `${parent}/${name}/node${spec.index}`;
    }
    return {
      index: spec.index,
      namespace: `${name}-${spec.index}`,
      nics: spec.nics.map((nic, i) => ({
        name: `eth${i}`,
        net: nic.net,
        address: nic.address,
        prefix: nic.prefix ?? 24,
        port: `n${spec.index}e${i}`,
      })),
      dir: nodeDir,
      root: `${nodeDir}/root`,
      config: `${nodeDir}/om.conf`,
      cgroups,
      discoverArgs: [...(spec.discoverArgs ?? [])],
    };
  });
  const unmounted = CGROUP_CONTROLLERS.filter((controller) => !parents[controller]);
  if (unmounted.length) {
    log(`no cgroup v1 ${unmounted.join(", ")} hierarchy mounted: the nodes share the host's`);
  }

  // Claim the name: making the directory is atomic.
  await Deno.mkdir(options.dir, { recursive: true });
  try {
    await Deno.mkdir(dir);
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new LabExistsError(`Cannot make lab "${name}": ${dir} already exists`);
    }
    throw error;
  }
  const lab: Lab = {
    record: {
      version: LAB_FILE_VERSION,
      name,
      dir,
      created: new Date((options.now ?? Date.now)()).toISOString(),
      switchNamespace,
      networks: nets.map((net) => ({ net, bridge: `br${net}` })),
      ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
      ...(options.memory !== undefined ? { memory: options.memory } : {}),
      ...(options.key !== false ? { key: `${dir}/cluster.key` } : {}),
      ...(options.criu !== undefined ? { criu: options.criu } : {}),
      ...(options.http !== undefined ? { http: options.http } : {}),
      nodes,
      made: [{ kind: "dir", path: dir }],
    },
    children: new Map(),
  };
  await saveLab(lab);

  try {
    await checkNothingThere(lab);
    await buildNamespaces(lab, log);
    await buildCgroups(lab, options);
    const key = lab.record.key;
    // The key file is made with its mode, never readable by others even for a moment.
    if (key) await Deno.writeTextFile(key, newKeyText(), { mode: 0o600, createNew: true });
    for (const node of nodes) {
      await Deno.mkdir(node.root, { recursive: true });
      await Deno.writeTextFile(
        node.config,
        `# om configuration of lab ${name}, node ${node.index} ($OM_CONFIG inside the node).\n` +
          (key ? `key = ${key}\n` : "") +
          (options.http !== undefined ? `http = ${node.nics[0].address}:${options.http}\n` : ""),
      );
    }
  } catch (error) {
    try {
      await destroyLab(lab, { log });
    } catch (cleanup) {
      log(`Cannot remove the half-made lab: ${(cleanup as Error).message}`);
    }
    throw error;
  }
  return lab;
}

/** Throws LabExistsError when a namespace or a lab cgroup of the lab's names is already there. */
async function checkNothingThere(lab: Lab): Promise<void> {
  const { record } = lab;
  const namespaces = [record.switchNamespace, ...record.nodes.map((n) => n.namespace)];
  for (const namespace of namespaces) {
    if (await exists(`${NETNS_DIR}/${namespace}`)) {
      throw new LabExistsError(
        `Cannot make lab "${record.name}": network namespace ${namespace} already exists`,
      );
    }
  }
  for (const node of record.nodes) {
    for (const path of Object.values(node.cgroups)) {
      const labGroup = path.slice(0, path.lastIndexOf("/"));
      if (await exists(labGroup)) {
        throw new LabExistsError(`Cannot make lab "${record.name}": cgroup ${labGroup} exists`);
      }
    }
  }
}
