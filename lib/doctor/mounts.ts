/**
 * The mounts of `/proc/self/mountinfo` (proc(5)): which file system a path is on (the state tree
 * should be on tmpfs) and which cgroup hierarchies are mounted (om lab's nodes use v1 cpu,
 * cpuacct and memory).
 */

import type { MountInfo } from "../base/mountinfo.ts";

export { parseMountinfo } from "../base/mountinfo.ts";

/** One line of mountinfo (lib/base/mountinfo.ts). */
export type Mount = MountInfo;

/** The mount that holds the absolute path `path`: the longest mount point above it, the last such. */
export function mountOf(mounts: readonly Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const mount of mounts) {
    const point = mount.mountpoint === "/" ? "/" : mount.mountpoint.replace(/\/$/, "");
    const inside = point === "/" || path === point || path.startsWith(`${point}/`);
    if (inside && (!best || point.length >= best.mountpoint.length)) best = mount;
  }
  return best;
}

/** The cgroup v1 controllers among `wanted` that have a hierarchy mounted. */
export function cgroupV1Controllers(mounts: readonly Mount[], wanted: readonly string[]): string[] {
  return wanted.filter((controller) =>
    mounts.some((m) => m.fstype === "cgroup" && m.superOptions.includes(controller))
  );
}
