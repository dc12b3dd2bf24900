/**
 * `/proc/PID/mountinfo` (proc(5)), one parser for all of om: `om doctor` asks which file system a
 * path is on and which cgroup hierarchies are mounted (lib/doctor/mounts.ts); the target checks a
 * user's job's mounts against its own (lib/migration/imagemounts.ts).
 */

/** One line of mountinfo. */
export interface MountInfo {
  /** Field 1: the mount's id. */
  readonly id: number;
  /** Field 2: its parent's id. */
  readonly parent: number;
  /** Field 3: the file system's device, `MAJOR:MINOR`. */
  readonly dev: string;
  /** Field 4: the directory of the file system that is the mount's root. */
  readonly root: string;
  /** Field 5: where it is mounted. */
  readonly mountpoint: string;
  /** Field 6: the per-mount options (`rw,nosuid,relatime`). */
  readonly options: readonly string[];
  /** The file system type, after the ` - ` separator. */
  readonly fstype: string;
  /** The mount's source (a device, `tmpfs`, `none`...). */
  readonly source: string;
  /** The super block's options (for a cgroup v1 mount, its controllers among them). */
  readonly superOptions: readonly string[];
}

/** Undoes mountinfo's octal escapes (`\040` for a space). */
function unescape(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Parses mountinfo text, in its order (a later mount on the same point hides an earlier one);
 * lines that do not parse are left out.
 */
export function parseMountinfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const separator = line.indexOf(" - ");
    if (separator < 0) continue;
    const fields = line.slice(0, separator).split(" ");
    const [fstype = "", source = "", superOptions = ""] = line.slice(separator + 3).split(" ");
    if (fields.length < 6 || !fstype) continue;
    const [id, parent, dev, root, mountpoint, options] = fields;
    if (!/^\d+$/.test(id) || !/^\d+$/.test(parent) || !/^\d+:\d+$/.test(dev)) continue;
    mounts.push({
      id: Number(id),
      parent: Number(parent),
      dev,
      root: unescape(root),
      mountpoint: unescape(mountpoint),
      options: options.split(","),
      fstype,
      source: unescape(source),
      superOptions: superOptions.split(","),
    });
  }
  return mounts;
}
