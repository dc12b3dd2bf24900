/**
 * The lab: a virtual cluster on one machine, for trying om and for om's own tests. Each node is
 * a network namespace with its own state tree and its own cgroups; the nodes of one network are
 * joined by a bridge in the lab's switch namespace, so the host's own namespace gets no
 * interface, address or route. Everything a lab makes is written to its `lab.json` before it is
 * made, and `destroyLab` undoes exactly that list, so a half-made lab can be removed too and
 * nothing else is ever touched. PROTOCOL.md ("The lab") documents the layout and the node
 * environment.
 *
 * Processes enter a node with `nsenter --net` rather than `ip netns exec`: the latter also
 * makes a mount namespace and remounts /sys, which hides /sys/fs/cgroup from the node (load
 * measuring reads its cgroup there) and gives CRIU a mount namespace to trip over.
 */
import type { ClusterMap } from "../state/hpcmap.ts";
import { isIPv4, nodeIdOf } from "../base/ipv4.ts";
import { realClock, RetryTimeoutError, retryUntil, type WaitClock } from "../base/retry.ts";
import { omCommand } from "../base/selfexec.ts";
import { readMap, resolveStatePaths, type StatePaths, writeFileAtomic } from "../state/tree.ts";

/** Where labs are kept unless `$OM_LAB_DIR` says otherwise. */
export const DEFAULT_LAB_DIR = "/run/om-lab";
/** The lab's name unless `--name` says otherwise. */
export const DEFAULT_LAB_NAME = "omlab";
/** Nodes of one lab: 1..250, so that `10.77.K.I` never reaches the broadcast address. */
export const MAX_NODES = 250;
/** Networks of one lab (bridges br0..br15; node 1 has an interface on each). */
export const MAX_NETS = 16;
/** The version of lab.json; bumped when a field changes meaning. */
export const LAB_FILE_VERSION = 1;

/** The cgroup v1 controllers a node gets its own group in. */
export const CGROUP_CONTROLLERS = ["cpu", "cpuacct", "memory"] as const;
/** One of {@linkcode CGROUP_CONTROLLERS}. */
export type CgroupController = typeof CGROUP_CONTROLLERS[number];

/** Where the host keeps named network namespaces (`ip netns`). */
const NETNS_DIR = "/run/netns";

/** One interface of a node to be: on network `net`, with this address. */
export interface NicSpec {
  readonly net: number;
  readonly address: string;
  /** Prefix length; default 24. */
  readonly prefix?: number;
}

/** One node to be: its number (1..250), its interfaces (eth0 first) and its discover flags. */
export interface NodeSpec {
  readonly index: number;
  readonly nics: readonly NicSpec[];
  /** Flags its `om discover -n` always gets, before any others (the gateway's `-i`). */
  readonly discoverArgs?: readonly string[];
}

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
  readonly nodes: LabNode[];
  made: Made[];
}

/** A lab in this process: its record, and the daemons this process started (to reap them). */
export interface Lab {
  readonly record: LabRecord;
  /** Daemons started by this process, by node index; others are only known by pid. */
  readonly children: Map<number, Deno.ChildProcess>;
}

/** `createLab` found the lab (or its directory) already there. */
export class LabExistsError extends Error {
  override name = "LabExistsError";
}

/** Progress and warnings from lab operations; lib/ never prints. */
export type LabLog = (message: string) => void;

// ---------------------------------------------------------------------------------------------
// Plans: pure.

/** The address of node `index` on network `net`: 10.77.net.index. */
export function labAddress(net: number, index: number): string {
  return `10.77.${net}.${index}`;
}

/**
 * The standard topology of `om lab up N --nets K`: node I on network (I-1) mod K with address
 * 10.77.((I-1) mod K).I, except node 1, the gateway, which has one interface per network (ethK on net K)
 * and is told to use them all (`-i eth0,eth1,...`) so it relays between them.
 */
export function planLab(nodes: number, options: { nets?: number } = {}): NodeSpec[] {
  const nets = options.nets ?? 1;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
    throw new RangeError(`Cannot plan a lab of ${nodes} nodes: from 1 to ${MAX_NODES}`);
  }
  if (!Number.isInteger(nets) || nets < 1 || nets > Math.min(nodes, MAX_NETS)) {
    throw new RangeError(
      `Cannot plan ${nets} networks for ${nodes} nodes: from 1 to ${Math.min(nodes, MAX_NETS)}`,
    );
  }
  const plan: NodeSpec[] = [];
  for (let index = 1; index <= nodes; index++) {
    if (index === 1 && nets > 1) {
      const nics = Array.from({ length: nets }, (_, net) => ({ net, address: labAddress(net, 1) }));
      plan.push({ index, nics, discoverArgs: ["-i", nics.map((_, i) => `eth${i}`).join(",")] });
    } else {
      const net = (index - 1) % nets;
      plan.push({ index, nics: [{ net, address: labAddress(net, index) }] });
    }
  }
  return plan;
}

/** Throws TypeError unless `name` can name a lab (it prefixes namespaces and cgroups). */
export function checkLabName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(name)) {
    throw new TypeError(
      `Cannot use lab name "${name}": 1 to 32 letters, digits, "-", "_" or ".", starting ` +
        `with a letter or digit`,
    );
  }
  return name;
}

/** Checks a topology: node numbers, networks, addresses, no address twice. */
export function checkTopology(nodes: readonly NodeSpec[]): void {
  if (nodes.length === 0) throw new RangeError("Cannot make a lab without nodes");
  const indices = new Set<number>();
  const addresses = new Set<string>();
  for (const node of nodes) {
    if (!Number.isInteger(node.index) || node.index < 1 || node.index > MAX_NODES) {
      throw new RangeError(`Cannot make node ${node.index}: numbers go from 1 to ${MAX_NODES}`);
    }
    if (indices.has(node.index)) throw new RangeError(`Cannot make node ${node.index} twice`);
    indices.add(node.index);
    if (node.nics.length < 1 || node.nics.length > MAX_NETS) {
      throw new RangeError(`Cannot make node ${node.index}: 1 to ${MAX_NETS} interfaces`);
    }
    const nets = new Set<number>();
    for (const nic of node.nics) {
      if (!Number.isInteger(nic.net) || nic.net < 0 || nic.net >= MAX_NETS) {
        throw new RangeError(
          `Cannot put node ${node.index} on network ${nic.net}: from 0 to ${MAX_NETS - 1}`,
        );
      }
      if (nets.has(nic.net)) {
        throw new RangeError(`Cannot put node ${node.index} on network ${nic.net} twice`);
      }
      nets.add(nic.net);
      if (!isIPv4(nic.address)) {
        throw new SyntaxError(`Cannot use address "${nic.address}": not a dotted quad`);
      }
      const prefix = nic.prefix ?? 24;
      if (!Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
        throw new RangeError(`Cannot use prefix /${prefix} for ${nic.address}: from 8 to 30`);
      }
      if (addresses.has(nic.address)) {
        throw new RangeError(`Cannot give address ${nic.address} twice`);
      }
      addresses.add(nic.address);
    }
  }
}

/** Parses a memory size: bytes, or a number with K, M, G or T (powers of 1024), e.g. 512M. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) {
    throw new SyntaxError(`Cannot parse size "${text}": expected a number and K, M, G or T`);
  }
  const power = " KMGT".indexOf(match[2].toUpperCase() || " ");
  const bytes = Math.round(Number(match[1]) * 1024 ** power);
  if (bytes < 4096) throw new RangeError(`Cannot use size "${text}": less than 4 KiB`);
  return bytes;
}

/** The node ids of a lab: each node's first address, as `om discover` takes its id. */
export function labNodeIds(lab: Lab): number[] {
  return lab.record.nodes.map((node) => nodeIdOf(node.nics[0].address));
}

/** The node ids a map lists, aliases aside, in ascending order. */
export function mapNodeIds(map: ClusterMap): number[] {
  const ids = new Set<number>();
  for (const entry of map.entries) {
    for (let i = 0; i < entry.count; i++) ids.add(entry.base + i);
  }
  return [...ids].sort((a, b) => a - b);
}

/**
 * Finds the cgroup v1 directory this process is in for `controller`, from the texts of
 * /proc/self/mountinfo and /proc/self/cgroup; undefined when that hierarchy is not mounted.
 * The lab's groups go below it, so a lab started from inside a group stays inside it.
 */
export function cgroupParent(
  controller: CgroupController,
  mountinfo: string,
  selfCgroup: string,
): string | undefined {
  let mount: { root: string; point: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const [fstype, , superOptions = ""] = right.split(" ");
    if (fstype !== "cgroup" || !superOptions.split(",").includes(controller)) continue;
    const fields = left.split(" ");
    mount = { root: unescapeMount(fields[3]), point: unescapeMount(fields[4]) };
    break;
  }
  if (!mount) return undefined;
  let own = "/";
  for (const line of selfCgroup.split("\n")) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (match && match[1].split(",").includes(controller)) own = match[2];
  }
  // Below the mount's root, the group's path is relative to it.
  const relative = own.startsWith(mount.root) ? own.slice(mount.root.length) : own;
  const parts = relative.split("/").filter(Boolean);
  return [mount.point.replace(/\/$/, ""), ...parts].join("/");
}

function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** Quotes a word for sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The sh script that moves itself into the node's cgroups, then becomes the node's command in
 * its network namespace (`"$@"`). With `log`, all its output goes there and stdin is /dev/null.
 */
export function enterScript(node: LabNode, options: { log?: string } = {}): string {
  const lines: string[] = [];
  if (options.log) lines.push(`exec >>${shellQuote(options.log)} 2>&1 </dev/null`);
  const groups = [...new Set(Object.values(node.cgroups))];
  for (const dir of groups) {
    lines.push(`echo $$ >${shellQuote(`${dir}/cgroup.procs`)} || exit 125`);
  }
  lines.push(`exec nsenter --net=${shellQuote(`${NETNS_DIR}/${node.namespace}`)} -- "$@"`);
  return lines.join("\n");
}

/** The environment of a node's processes (PROTOCOL.md lists it). */
export function nodeEnv(lab: Lab, index: number): Record<string, string> {
  const node = findNode(lab, index);
  const env: Record<string, string> = {
    OM_ROOT: node.root,
    OM_CONFIG: node.config,
    OM_LAB: lab.record.name,
    OM_LAB_NODE: String(node.index),
  };
  if (node.cgroups.cpu) env.OM_CGROUP_CPU = node.cgroups.cpu;
  if (node.cgroups.cpuacct) env.OM_CGROUP_CPUACCT = node.cgroups.cpuacct;
  if (node.cgroups.memory) env.OM_CGROUP_MEMORY = node.cgroups.memory;
  return env;
}

// ---------------------------------------------------------------------------------------------
// Making and removing.

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
  /** Milliseconds since the epoch, for the creation time. */
  readonly now?: () => number;
  readonly log?: LabLog;
}

/** The file of the lab `name` in the lab directory `dir`. */
export function labFile(dir: string, name: string): string {
  return `${dir}/${name}/lab.json`;
}

/**
 * Makes a lab: its directory and lab.json, the switch namespace with one bridge per network,
 * a namespace per node with its veth interfaces, addresses, default route, the node's cgroups
 * and state tree. Starts no daemon (see {@linkcode startDaemon}). Throws LabExistsError when the
 * lab, one of its namespaces or cgroups is already there; on any other failure it removes what
 * it made and throws.
 */
export async function createLab(options: CreateLabOptions): Promise<Lab> {
  const name = checkLabName(options.name);
  checkTopology(options.nodes);
  if (options.cpus !== undefined && !(options.cpus > 0 && options.cpus <= 1024)) {
    throw new RangeError(`Cannot give ${options.cpus} CPUs to a node: more than 0, at most 1024`);
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
    for (const node of nodes) {
      await Deno.mkdir(node.root, { recursive: true });
      await Deno.writeTextFile(
        node.config,
        `# om configuration of lab ${name}, node ${node.index} ($OM_CONFIG inside the node).\n`,
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

async function buildNamespaces(lab: Lab, log: LabLog): Promise<void> {
  const { record } = lab;
  const namespaces = [record.switchNamespace, ...record.nodes.map((n) => n.namespace)];
  // Recorded before they are made: a crash in between leaves a name down can still remove.
  for (const name of namespaces) record.made.push({ kind: "netns", name });
  await saveLab(lab);
  await ip([], namespaces.map((name) => `netns add ${name}`));
  for (const made of record.made) {
    if (made.kind === "netns") made.inode = (await Deno.stat(`${NETNS_DIR}/${made.name}`)).ino!;
  }
  await saveLab(lab);
  log(`made ${namespaces.length} network namespaces`);

  const switchLines = ["link set lo up"];
  for (const { bridge } of record.networks) {
    switchLines.push(
      `link add ${bridge} type bridge mcast_snooping 0`,
      `link set ${bridge} up`,
    );
  }
  for (const node of record.nodes) {
    for (const nic of node.nics) {
      switchLines.push(
        `link add ${nic.port} type veth peer name ${nic.name} netns ${node.namespace}`,
        `link set ${nic.port} master br${nic.net}`,
        `link set ${nic.port} up`,
      );
    }
  }
  await ip(["-n", record.switchNamespace], switchLines);
  log(`made ${record.networks.length} bridges in ${record.switchNamespace}`);

  await parallel(record.nodes, 16, (node) => {
    const lines = ["link set lo up"];
    for (const nic of node.nics) {
      lines.push(
        `address add ${nic.address}/${nic.prefix} dev ${nic.name}`,
        `link set ${nic.name} up`,
      );
    }
    lines.push(`route add default dev ${node.nics[0].name}`);
    return ip(["-n", node.namespace], lines);
  });
  log(`configured ${record.nodes.length} nodes`);
}

async function buildCgroups(lab: Lab, options: CreateLabOptions): Promise<void> {
  const { record } = lab;
  const labGroups = new Set<string>();
  for (const node of record.nodes) {
    for (const path of Object.values(node.cgroups)) {
      labGroups.add(path.slice(0, path.lastIndexOf("/")));
    }
  }
  for (const path of labGroups) {
    record.made.push({ kind: "cgroup", path });
    await saveLab(lab);
    await Deno.mkdir(path);
  }
  for (const node of record.nodes) {
    for (const path of new Set(Object.values(node.cgroups))) {
      record.made.push({ kind: "cgroup", path });
      await saveLab(lab);
      await Deno.mkdir(path);
    }
    if (options.cpus !== undefined && node.cgroups.cpu) {
      const period = Number(await Deno.readTextFile(`${node.cgroups.cpu}/cpu.cfs_period_us`));
      await Deno.writeTextFile(
        `${node.cgroups.cpu}/cpu.cfs_quota_us`,
        String(Math.max(1000, Math.round(options.cpus * period))),
      );
    }
    if (options.memory !== undefined && node.cgroups.memory) {
      await Deno.writeTextFile(
        `${node.cgroups.memory}/memory.limit_in_bytes`,
        String(options.memory),
      );
    }
  }
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

/** Options of {@linkcode destroyLab}. */
export interface DestroyOptions {
  /** How long each daemon has to exit after SIGTERM before SIGKILL; default 3000 ms. */
  readonly graceMs?: number;
  readonly log?: LabLog;
  readonly clock?: WaitClock;
}

/**
 * Removes a lab: stops the daemons (SIGTERM, then SIGKILL after the grace time), kills what is
 * left in the nodes' cgroups, deletes the namespaces, the cgroups and the directory that
 * lab.json lists, and nothing else. A namespace that was replaced by another of the same name
 * is left alone. When a step fails, the rest is still done, lab.json keeps what remains (so
 * `om lab down` can be run again), and an Error naming every failure is thrown.
 */
export async function destroyLab(lab: Lab, options: DestroyOptions = {}): Promise<void> {
  const log = options.log ?? (() => {});
  const { record } = lab;
  const failures: string[] = [];

  await Promise.all(record.nodes.map(async (node) => {
    try {
      await stopDaemon(lab, node.index, { graceMs: options.graceMs, clock: options.clock });
    } catch (error) {
      failures.push(`node ${node.index}: ${(error as Error).message}`);
    }
  }));

  // Whatever else runs in the nodes' groups (om lab exec) goes too, or the groups stay busy.
  const made = record.made;
  const groups = made.filter((m) => m.kind === "cgroup").map((m) => m.path);
  const nodeGroups = groups.filter((path) =>
    record.nodes.some((node) => Object.values(node.cgroups).includes(path))
  );
  try {
    await retryUntil(
      async () => {
        let left = 0;
        for (const path of nodeGroups) {
          for (const pid of await cgroupPids(path)) {
            left++;
            try {
              Deno.kill(pid, "SIGKILL");
            } catch { /* gone already */ }
          }
        }
        return left === 0;
      },
      3000,
      { what: "the nodes' processes to end", clock: options.clock, intervalMs: 50 },
    );
  } catch (error) {
    failures.push((error as Error).message);
  }

  // Only namespaces that are still the ones made (same inode) are deleted.
  const namespaces: string[] = [];
  for (const entry of made) {
    if (entry.kind !== "netns") continue;
    const inode = await inodeOf(`${NETNS_DIR}/${entry.name}`);
    if (inode === undefined) continue;
    if (entry.inode !== undefined && inode !== entry.inode) {
      log(`network namespace ${entry.name} is not the one this lab made: left alone`);
      continue;
    }
    namespaces.push(entry.name);
  }
  if (namespaces.length) {
    try {
      await ip(["-force"], namespaces.map((name) => `netns delete ${name}`));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  const left = new Set<string>();
  for (const name of namespaces) if (await exists(`${NETNS_DIR}/${name}`)) left.add(name);
  record.made = made.filter((entry) => entry.kind !== "netns" || left.has(entry.name));

  for (const path of [...groups].reverse()) {
    try {
      await retryUntil(
        async () => {
          try {
            await Deno.remove(path);
          } catch (error) {
            if (error instanceof Deno.errors.NotFound) return true;
            throw error;
          }
          return true;
        },
        2000,
        { what: `cgroup ${path} to be removed`, clock: options.clock, intervalMs: 50 },
      );
      record.made = record.made.filter((m) => !(m.kind === "cgroup" && m.path === path));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }

  if (failures.length) {
    await saveLab(lab).catch(() => {});
    throw new Error(`Cannot remove lab "${record.name}" entirely: ${failures.join("; ")}`);
  }
  for (const entry of [...record.made].reverse()) {
    if (entry.kind === "dir") await Deno.remove(entry.path, { recursive: true }).catch(notFound);
  }
}

// ---------------------------------------------------------------------------------------------
// Nodes and their daemons.

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

/** Options of {@linkcode startDaemon}. */
export interface StartDaemonOptions {
  /** More flags for `om discover -n`, after the node's own. */
  readonly args?: readonly string[];
  /** More environment, over the node's. */
  readonly env?: Record<string, string>;
}

/**
 * Starts `om discover -n` in node `index`: in its own session, in the node's cgroups and
 * namespace, with the node's environment, output appended to `<node dir>/discover.log`.
 * Records it in lab.json. Throws when the node's daemon is already running.
 */
export async function startDaemon(
  lab: Lab,
  index: number,
  options: StartDaemonOptions = {},
): Promise<LabDaemon> {
  const node = findNode(lab, index);
  if (node.daemon && await isAlive(node.daemon)) {
    throw new Error(`Cannot start the daemon of node ${index}: it runs as pid ${node.daemon.pid}`);
  }
  const argv = omCommand(["discover", "-n", ...node.discoverArgs, ...(options.args ?? [])]);
  const log = `${node.dir}/discover.log`;
  // setsid: a session of its own, so a terminal's signals do not reach it. Deno 2.9's
  // `detached` option does not call setsid on Linux (checked).
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", enterScript(node, { log }), "sh", ...argv],
    env: { ...nodeEnv(lab, index), ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  lab.children.set(index, child);
  let startTime = 0;
  try {
    startTime = await processStartTime(child.pid);
  } catch {
    // Already gone: isAlive says so, and the log says why.
  }
  node.daemon = { pid: child.pid, startTime, argv, log };
  await saveLab(lab);
  return node.daemon;
}

/** True when the process recorded as `daemon` still runs (not a zombie, not a later pid). */
export async function isAlive(daemon: LabDaemon): Promise<boolean> {
  try {
    const stat = await readStat(daemon.pid);
    return stat.startTime === daemon.startTime && stat.state !== "Z" && stat.state !== "X";
  } catch {
    return false;
  }
}

/** What became of a stopped daemon. */
export interface StopResult {
  readonly pid: number;
  /** It ended on SIGTERM within the grace time. */
  readonly graceful: boolean;
  /** Its exit status, when this process started it (and so could reap it). */
  readonly status?: Deno.CommandStatus;
}

/**
 * Stops node `index`'s daemon: SIGTERM (it sends a leave), SIGKILL if it is still there after
 * `graceMs` (default 3000), reaped when this process started it. Returns undefined when no
 * daemon was running.
 */
export async function stopDaemon(
  lab: Lab,
  index: number,
  options: { graceMs?: number; clock?: WaitClock } = {},
): Promise<StopResult | undefined> {
  return await endDaemon(lab, index, "SIGTERM", options.graceMs ?? 3000, options.clock);
}

/** Kills node `index`'s daemon with SIGKILL at once (a crash: no leave is sent) and reaps it. */
export async function killDaemon(
  lab: Lab,
  index: number,
  options: { clock?: WaitClock } = {},
): Promise<StopResult | undefined> {
  return await endDaemon(lab, index, "SIGKILL", 0, options.clock);
}

/** Sends `signal` to node `index`'s daemon and returns at once (SIGSTOP to make it silent). */
export async function signalDaemon(lab: Lab, index: number, signal: Deno.Signal): Promise<void> {
  const node = findNode(lab, index);
  if (!node.daemon || !await isAlive(node.daemon)) {
    throw new Error(`Cannot signal the daemon of node ${index}: it does not run`);
  }
  Deno.kill(node.daemon.pid, signal);
}

async function endDaemon(
  lab: Lab,
  index: number,
  signal: Deno.Signal,
  graceMs: number,
  clock?: WaitClock,
): Promise<StopResult | undefined> {
  const node = findNode(lab, index);
  const daemon = node.daemon;
  if (!daemon) return undefined;
  const child = lab.children.get(index);
  let status: Deno.CommandStatus | undefined;
  child?.status.then((s) => status = s);
  const ended = async () => status !== undefined || !await isAlive(daemon);
  let graceful = false;
  if (await isAlive(daemon)) {
    trySignal(daemon.pid, signal);
    if (signal !== "SIGKILL") {
      try {
        await retryUntil(ended, graceMs, { clock, intervalMs: 20 });
        graceful = true;
      } catch (error) {
        if (!(error instanceof RetryTimeoutError)) throw error;
      }
    }
    if (!graceful && await isAlive(daemon)) trySignal(daemon.pid, "SIGKILL");
    await retryUntil(ended, 5000, { clock, what: `pid ${daemon.pid} to end` });
  }
  if (child) {
    status = await child.status;
    lab.children.delete(index);
  }
  delete node.daemon;
  await saveLab(lab);
  return { pid: daemon.pid, graceful, ...(status ? { status } : {}) };
}

function trySignal(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Options of {@linkcode execInNode}. */
export interface ExecOptions {
  readonly env?: Record<string, string>;
  readonly stdin?: "inherit" | "piped" | "null";
  readonly stdout?: "inherit" | "piped" | "null";
  readonly stderr?: "inherit" | "piped" | "null";
  readonly cwd?: string;
}

/**
 * Starts `argv` in node `index`: its network namespace and cgroups, its environment (OM_ROOT,
 * OM_CONFIG, OM_CGROUP_*, OM_LAB, OM_LAB_NODE) over this process's. Standard streams are
 * inherited unless told otherwise; the caller awaits `status` or `output()` (and so reaps it).
 * Exit status 125: it could not join the node's cgroups.
 */
export function execInNode(
  lab: Lab,
  index: number,
  argv: readonly string[],
  options: ExecOptions = {},
): Deno.ChildProcess {
  const node = findNode(lab, index);
  if (argv.length === 0) throw new TypeError("Cannot run an empty command line");
  return new Deno.Command("sh", {
    args: ["-c", enterScript(node), "sh", ...argv],
    env: { ...nodeEnv(lab, index), ...options.env },
    stdin: options.stdin ?? "inherit",
    stdout: options.stdout ?? "inherit",
    stderr: options.stderr ?? "inherit",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
}

/** What one node sees: its id and the ids in its map, or why there is nothing to see. */
export interface NodeMapView {
  readonly index: number;
  /** Its id per `mospe`, once written. */
  readonly self?: number;
  /** The ids in its map, aliases aside, ascending. */
  readonly ids?: readonly number[];
  /** Aliases in its map. */
  readonly aliases?: number;
  readonly map?: ClusterMap;
  /** The map could not be read (e.g. a file of another version). */
  readonly error?: string;
}

/** Reads what node `index` sees. */
export async function readNodeMap(lab: Lab, index: number): Promise<NodeMapView> {
  try {
    const found = await readMap(nodeStatePaths(lab, index));
    if (!found) return { index };
    return {
      index,
      self: found.self,
      ids: mapNodeIds(found.map),
      aliases: found.map.entries.filter((e) => e.count === 0).length,
      map: found.map,
    };
  } catch (error) {
    return { index, error: (error as Error).message };
  }
}

/** The outcome of {@linkcode waitForAgreement}. */
export interface Agreement {
  /** Every node's map held exactly the expected ids. */
  readonly agreed: boolean;
  readonly elapsedMs: number;
  readonly expected: readonly number[];
  /** The last views read, one per node waited on. */
  readonly views: readonly NodeMapView[];
  /** Nodes whose daemon is recorded but no longer runs (the wait stops at the first). */
  readonly dead: readonly number[];
}

/** Options of {@linkcode waitForAgreement}. */
export interface AgreementOptions {
  /** The ids every map must hold, aliases aside; default each node's first address's. */
  readonly ids?: readonly number[];
  /** The nodes to read; default all. */
  readonly nodes?: readonly number[];
  /** Default 30000. */
  readonly timeoutMs?: number;
  /** Stop early when a waited-on node's daemon has died; default true. */
  readonly failOnDeadDaemon?: boolean;
  readonly clock?: WaitClock;
}

/**
 * Polls the nodes' maps every 20 ms until each holds exactly the expected node ids (aliases
 * aside), or time runs out, or (by default) a daemon dies. Never throws for a disagreement:
 * the result says who saw what.
 */
export async function waitForAgreement(
  lab: Lab,
  options: AgreementOptions = {},
): Promise<Agreement> {
  const expected = [...(options.ids ?? labNodeIds(lab))].sort((a, b) => a - b);
  const indices = options.nodes ?? lab.record.nodes.map((n) => n.index);
  const clock = options.clock ?? realClock;
  const start = clock.now();
  let views: NodeMapView[] = [];
  let dead: number[] = [];
  const want = expected.join(",");
  try {
    const agreed = await retryUntil(
      async () => {
        views = await Promise.all(indices.map((index) => readNodeMap(lab, index)));
        if (views.every((v) => v.ids?.join(",") === want)) return "agreed";
        if (options.failOnDeadDaemon ?? true) {
          dead = [];
          for (const index of indices) {
            const daemon = findNode(lab, index).daemon;
            if (daemon && !await isAlive(daemon)) dead.push(index);
          }
          if (dead.length) return "dead";
        }
        return undefined;
      },
      options.timeoutMs ?? 30000,
      { what: "the maps to agree", clock: options.clock },
    );
    return { agreed: agreed === "agreed", elapsedMs: clock.now() - start, expected, views, dead };
  } catch (error) {
    if (!(error instanceof RetryTimeoutError)) throw error;
    return { agreed: false, elapsedMs: error.elapsedMs, expected, views, dead };
  }
}

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

// ---------------------------------------------------------------------------------------------
// Small helpers.

/** Runs `ip [flags] -batch -` with `lines` on its standard input. */
async function ip(flags: readonly string[], lines: readonly string[]): Promise<void> {
  const child = new Deno.Command("ip", {
    args: [...flags, "-batch", "-"],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
  } catch {
    // ip gave up before reading all of it (a bad namespace): its stderr says why.
  }
  const { code, stderr } = await child.output();
  if (code !== 0) {
    const why = new TextDecoder().decode(stderr).trim().split("\n").slice(0, 4).join("; ");
    throw new Error(`Cannot run "ip ${[...flags, "-batch"].join(" ")}": ${why || `exit ${code}`}`);
  }
}

async function parallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

async function cgroupParents(): Promise<LabCgroups> {
  const [mountinfo, self] = await Promise.all([
    Deno.readTextFile("/proc/self/mountinfo"),
    Deno.readTextFile("/proc/self/cgroup"),
  ]);
  const parents: LabCgroups = {};
  for (const controller of CGROUP_CONTROLLERS) {
    const parent = cgroupParent(controller, mountinfo, self);
    if (parent) parents[controller] = parent;
  }
  return parents;
}

async function cgroupPids(path: string): Promise<number[]> {
  try {
    const text = await Deno.readTextFile(`${path}/cgroup.procs`);
    return text.split("\n").filter(Boolean).map(Number);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function readStat(pid: number): Promise<{ state: string; startTime: number }> {
  const text = await Deno.readTextFile(`/proc/${pid}/stat`);
  // The command name may hold spaces and parentheses: fields start after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], startTime: Number(fields[19]) };
}

async function processStartTime(pid: number): Promise<number> {
  return (await readStat(pid)).startTime;
}

async function inodeOf(path: string): Promise<number | undefined> {
  try {
    return (await Deno.lstat(path)).ino ?? undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function notFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
