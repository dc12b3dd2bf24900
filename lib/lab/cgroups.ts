/**
 * The nodes' cgroups (v1: cpu, cpuacct, memory): where the lab's groups go (below the group this
 * process is in, so a lab started from inside a group stays inside it), making them with the
 * nodes' CPU and memory limits, and, when the lab goes, ending what still runs in them and
 * removing them. Each group is recorded in lab.json before it is made; only recorded groups are
 * ever removed.
 */
import { retryUntil } from "../base/retry.ts";
import type { WaitClock } from "../base/clock.ts";
import {
  CGROUP_CONTROLLERS,
  type CgroupController,
  type Lab,
  type LabCgroups,
  saveLab,
} from "./record.ts";

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

/**
 * The directory this process is in for each cgroup v1 controller that is mounted (see
 * {@linkcode cgroupParent}), read from /proc/self: the parents of a new lab's groups.
 */
export async function cgroupParents(): Promise<LabCgroups> {
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

/** The pids in the cgroup at `path` (its cgroup.procs); none when the group is gone. */
async function cgroupPids(path: string): Promise<number[]> {
  try {
    const text = await Deno.readTextFile(`${path}/cgroup.procs`);
    return text.split("\n").filter(Boolean).map(Number);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * Makes the lab's groups (`.../NAME`) and each node's (`.../NAME/nodeI`), recording each in
 * lab.json before making it, and sets the nodes' limits: `cpus` CPUs (cpu.cfs_quota_us = cpus x
 * period, at least 1 ms) and `memory` bytes (memory.limit_in_bytes).
 */
export async function buildCgroups(
  lab: Lab,
  limits: { readonly cpus?: number; readonly memory?: number },
): Promise<void> {
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
    if (limits.cpus !== undefined && node.cgroups.cpu) {
      const period = Number(await Deno.readTextFile(`${node.cgroups.cpu}/cpu.cfs_period_us`));
      await Deno.writeTextFile(
        `${node.cgroups.cpu}/cpu.cfs_quota_us`,
        String(Math.max(1000, Math.round(limits.cpus * period))),
      );
    }
    if (limits.memory !== undefined && node.cgroups.memory) {
      await Deno.writeTextFile(
        `${node.cgroups.memory}/memory.limit_in_bytes`,
        String(limits.memory),
      );
    }
  }
}

/**
 * Kills (SIGKILL) whatever still runs in the nodes' groups (`om lab exec`), or the groups stay
 * busy, until they are empty; throws RetryTimeoutError when they are not empty within 3 s.
 */
export async function killNodeProcesses(lab: Lab, clock?: WaitClock): Promise<void> {
  const { record } = lab;
  const groups = record.made.filter((m) => m.kind === "cgroup").map((m) => m.path);
  const nodeGroups = groups.filter((path) =>
    record.nodes.some((node) => Object.values(node.cgroups).includes(path))
  );
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
    { what: "the nodes' processes to end", clock, intervalMs: 50 },
  );
}

/**
 * Removes the groups lab.json lists, the last made first, each retried for 2 s (a group stays
 * busy a moment after its last process ends), and drops each removed one from the record.
 * Returns why each group that could not be removed was not, in order; empty when all went.
 */
export async function removeCgroups(lab: Lab, clock?: WaitClock): Promise<string[]> {
  const { record } = lab;
  const failures: string[] = [];
  const groups = record.made.filter((m) => m.kind === "cgroup").map((m) => m.path);
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
        { what: `cgroup ${path} to be removed`, clock, intervalMs: 50 },
      );
      record.made = record.made.filter((m) => !(m.kind === "cgroup" && m.path === path));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  return failures;
}
