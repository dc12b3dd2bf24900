/**
 * The mounts of `/proc/self/mountinfo` (proc(5)): which file system a path is on (the state tree
 * should be on tmpfs) and which cgroup hierarchies are mounted (om lab's nodes use v1 cpu,
 * cpuacct and memory).
 */

/** One line of mountinfo. */
export interface Mount {
  /** Field 5: where it is mounted. */
  readonly point: string;
  /** The file system type, after the " - " separator. */
  readonly fstype: string;
  /** The super block's options (for a cgroup v1 mount, its controllers among them). */
  readonly superOptions: readonly string[];
}

/** Undoes mountinfo's octal escapes (`\040` for a space). */
function unescape(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses mountinfo text, in its order (a later mount on the same point hides an earlier one). */
export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const fields = left.split(" ");
    const [fstype, , options = ""] = right.split(" ");
    if (fields.length < 5 || !fstype) continue;
    mounts.push({ point: unescape(fields[4]), fstype, superOptions: options.split(",") });
  }
  return mounts;
}

/** The mount that holds the absolute path `path`: the longest mount point above it, the last such. */
export function mountOf(mounts: readonly Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const mount of mounts) {
    const point = mount.point === "/" ? "/" : mount.point.replace(/\/$/, "");
    const inside = point === "/" || path === point || path.startsWith(`${point}/`);
    if (inside && (!best || point.length >= best.point.length)) best = mount;
  }
  return best;
}

/** The cgroup v1 controllers among `wanted` that have a hierarchy mounted. */
export function cgroupV1Controllers(mounts: readonly Mount[], wanted: readonly string[]): string[] {
  return wanted.filter((controller) =>
    mounts.some((m) => m.fstype === "cgroup" && m.superOptions.includes(controller))
  );
}
