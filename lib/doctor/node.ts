/**
 * The rest of what a node needs: the cluster key (set, an om key file, readable by root alone:
 * without it no job moves), the programs a job starts with (perl, unshare, setsid:
 * lib/criu/startjob.ts), the state tree on tmpfs (a moved job's images land there), and cgroups
 * (only om lab uses them: v1 cpu, cpuacct and memory to limit and measure its nodes).
 */
import { parseKeyText } from "../base/key.ts";
import { type Check, missed, passed, unchecked } from "./report.ts";
import type { DoctorInputs, Environment } from "./inputs.ts";
import { cgroupV1Controllers, type Mount, mountOf } from "./mounts.ts";

/** The cluster key check. */
export async function checkKey(inputs: DoctorInputs): Promise<Check> {
  const { key, configFile } = inputs.settings;
  if (key === undefined) {
    return missed(
      "key",
      true,
      "no cluster key: no job moves between nodes (the daemon refuses every move without one)",
      `om keygen /etc/om/cluster.key on one node, copy it (mode 0600) to every node, and set ` +
        `key = /etc/om/cluster.key in ${configFile}`,
    );
  }
  let mode: number | null;
  let text: string;
  try {
    mode = (await Deno.stat(key)).mode;
    text = await Deno.readTextFile(key);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return missed("key", true, `no key file ${key} (named by ${configFile})`, `om keygen ${key}`);
    }
    return unchecked(
      "key",
      `cannot read ${key}: ${(error as Error).message}`,
      "run om doctor as root",
    );
  }
  try {
    parseKeyText(text, key);
  } catch (error) {
    return missed(
      "key",
      true,
      (error as Error).message,
      `om keygen ${key} (on one node, then copy it)`,
    );
  }
  if (mode !== null && (mode & 0o077) !== 0) {
    return missed(
      "key",
      true,
      `${key} is readable by others (mode ${(mode & 0o777).toString(8)}): om discover refuses it`,
      `chmod 600 ${key}`,
    );
  }
  return passed("key", `${key}, mode 600`);
}

/** The programs every job starts with, looked for on `env`'s PATH. */
export async function checkTools(env: Environment): Promise<Check> {
  const missing: string[] = [];
  for (const program of ["perl", "unshare", "setsid"]) {
    if (!await onPath(program, env.get("PATH") ?? "")) missing.push(program);
  }
  if (missing.length === 0) return passed("tools", "perl, unshare and setsid: jobs can start");
  return missed(
    "tools",
    true,
    `${missing.join(", ")} not on ${env.whose} PATH: om run cannot start jobs`,
    "install them: apt-get install perl-base util-linux (dnf install perl util-linux)",
  );
}

async function onPath(program: string, path: string): Promise<boolean> {
  for (const dir of path.split(":").filter(Boolean)) {
    try {
      const info = await Deno.stat(`${dir}/${program}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111)) return true;
    } catch { /* not here */ }
  }
  return false;
}

/** The nearest existing directory at or above `path`, its links resolved. */
async function existingReal(path: string): Promise<string> {
  for (let at = path;; at = at.slice(0, at.lastIndexOf("/")) || "/") {
    try {
      return await Deno.realPath(at);
    } catch {
      if (at === "/") return "/";
    }
  }
}

/** The state tree check: on tmpfs, a moved job's images never touch a disk. */
export async function checkStateTree(
  inputs: DoctorInputs,
  mounts: readonly Mount[],
): Promise<Check> {
  const { root, configFile } = inputs.settings;
  const mount = mountOf(mounts, await existingReal(root));
  if (!mount) {
    return unchecked("state-tree", `cannot tell which file system ${root} is on`, "none needed");
  }
  const where = `${root} is on ${mount.fstype} (mounted on ${mount.mountpoint})`;
  if (mount.fstype === "tmpfs" || mount.fstype === "ramfs") {
    return passed("state-tree", `${where}: a moved job's images stay in memory`);
  }
  return missed(
    "state-tree",
    false,
    `${where}: a moved job's images are written to disk, and moves are slower`,
    `mount a tmpfs on it (mount -t tmpfs -o mode=755 tmpfs ${root}), or set root = a directory ` +
      `on tmpfs (such as /run/om) in ${configFile}`,
  );
}

const LAB_CGROUPS = [
  ["OM_CGROUP_CPU", "cpu"],
  ["OM_CGROUP_CPUACCT", "cpuacct"],
  ["OM_CGROUP_MEMORY", "memory"],
] as const;

/**
 * The cgroups check. In a lab node (OM_CGROUP_* in `env`), the node's groups must exist: its
 * figures are theirs. Elsewhere, whether om lab could limit its nodes here.
 */
export async function checkCgroups(env: Environment, mounts: readonly Mount[]): Promise<Check> {
  const named = LAB_CGROUPS.filter(([variable]) => env.get(variable));
  if (named.length > 0) {
    const gone: string[] = [];
    for (const [variable] of named) {
      const dir = env.get(variable)!;
      if (!await Deno.stat(dir).then((i) => i.isDirectory, () => false)) {
        gone.push(`${variable}=${dir}`);
      }
    }
    if (gone.length) {
      return missed(
        "cgroups",
        false,
        `this lab node's cgroups are gone (${gone.join(", ")}): its figures cannot be measured`,
        "make the lab again: om lab down, om lab up",
      );
    }
    return passed(
      "cgroups",
      `a lab node: its figures are those of its cgroups (${named.map(([, c]) => c).join(", ")})`,
    );
  }
  const wanted = LAB_CGROUPS.map(([, controller]) => controller);
  const mounted = cgroupV1Controllers(mounts, wanted);
  if (mounted.length === wanted.length) {
    return passed(
      "cgroups",
      "cgroup v1 cpu, cpuacct and memory: om lab can limit and measure its nodes",
    );
  }
  const missing = wanted.filter((c) => !mounted.includes(c));
  const v2 = mounts.some((m) => m.fstype === "cgroup2") ? " (cgroup v2 is mounted)" : "";
  return missed(
    "cgroups",
    false,
    `no cgroup v1 ${missing.join(", ")} hierarchy${v2}: only om lab needs them, to limit its ` +
      "nodes (--cpus, --memory) and show each node's own load",
    "nothing for a real node; for om lab, a system with cgroup v1 (the kernel command line " +
      "systemd.unified_cgroup_hierarchy=0 gives it)",
  );
}
