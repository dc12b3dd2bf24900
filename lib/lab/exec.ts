/**
 * Running a command inside a node: the small sh script that joins the node's cgroups and then
 * enters its network namespace, and the environment a node's processes see (PROTOCOL.md, "The
 * lab", lists it). The daemons (`startDaemon`) and `om lab exec` both start their processes
 * through these.
 *
 * Processes enter a node with `nsenter --net` rather than `ip netns exec`: the latter also
 * makes a mount namespace and remounts /sys, which hides /sys/fs/cgroup from the node (load
 * measuring reads its cgroup there) and gives CRIU a mount namespace to trip over.
 */
import { findNode, type Lab, type LabNode } from "./record.ts";
import { NETNS_DIR } from "./netns.ts";

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

/**
 * The environment of a node's processes (PROTOCOL.md lists it), and OM_CRIU when the lab has a
 * CRIU (criu.ts): the daemon moves jobs with it, and `om doctor` in a node finds it.
 */
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
  if (lab.record.criu) env.OM_CRIU = lab.record.criu;
  return env;
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
