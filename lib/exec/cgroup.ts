/**
 * A cgroup (v2) of its own for each command `om exec` runs (PROTOCOL.md §13, "Running"), so that
 * its time limit ends every process the command started, those that left its process group or
 * session (`setsid`, a daemon's double fork) too: a process cannot leave its cgroup, and
 * `cgroup.kill` kills all of it at once. The group is made below the daemon's own cgroup of the
 * unified hierarchy (found in /proc/self/cgroup and /proc/self/mountinfo), named
 * `om-exec-<daemon PID>-<N>`; the command's starter writes its own PID to the group's
 * `cgroup.procs` before it execs the command, so that nothing of it runs outside. A command that
 * ended on its own may leave processes behind on purpose (a service it started): they are moved
 * back to the daemon's group, and the group is removed. No cgroup2 mounted, or one om may not
 * write: undefined, and the process group alone is killed at the time limit, as before.
 */
import { parseMountinfo } from "../base/mountinfo.ts";
import { sleep } from "../base/time.ts";

/** One command's cgroup. */
export interface CommandCgroup {
  /** Its directory. */
  readonly path: string;
  /** Kills every process in it (SIGKILL), now. */
  kill(): Promise<void>;
  /** Moves what is left in it to the daemon's group and removes it; never throws. */
  release(): Promise<void>;
}

/** Where om's files of the kernel are: /proc/self by default (a test may give another). */
export interface CgroupPlaces {
  readonly self?: string;
}

/** How many rounds of listing and moving (or killing) a group's processes before giving up. */
const ROUNDS = 100;

let made = 0;

/**
 * The directory of this process's cgroup in the unified hierarchy, or undefined: none mounted,
 * or this process's group is not below the mount's root (another cgroup namespace's mount).
 */
export async function ownCgroupDir(places: CgroupPlaces = {}): Promise<string | undefined> {
  const self = places.self ?? "/proc/self";
  let cgroup: string;
  let mountinfo: string;
  try {
    [cgroup, mountinfo] = await Promise.all([
      Deno.readTextFile(`${self}/cgroup`),
      Deno.readTextFile(`${self}/mountinfo`),
    ]);
  } catch {
    return undefined;
  }
  const line = cgroup.split("\n").find((l) => l.startsWith("0::"));
  if (line === undefined) return undefined;
  const path = line.slice(3).replace(/ \(deleted\)$/, "");
  for (const mount of parseMountinfo(mountinfo)) {
    if (mount.fstype !== "cgroup2") continue;
    const root = mount.root === "/" ? "" : mount.root;
    if (path !== root && !path.startsWith(`${root}/`)) continue;
    const below = path.slice(root.length);
    return `${mount.mountpoint === "/" ? "" : mount.mountpoint}${below}` || "/";
  }
  return undefined;
}

/** Reads a cgroup's `cgroup.procs`: the PIDs in it now. */
async function procsOf(dir: string): Promise<number[]> {
  const text = await Deno.readTextFile(`${dir}/cgroup.procs`).catch(() => "");
  return text.split("\n").filter((w) => /^\d+$/.test(w)).map(Number);
}

/** Makes a cgroup for one command below the daemon's own, or undefined (see the header). */
export async function commandCgroup(places: CgroupPlaces = {}): Promise<CommandCgroup | undefined> {
  const parent = await ownCgroupDir(places);
  if (parent === undefined) return undefined;
  const path = `${parent === "/" ? "" : parent}/om-exec-${Deno.pid}-${++made}`;
  try {
    await Deno.mkdir(path);
  } catch {
    return undefined;
  }
  return {
    path,
    async kill() {
      try {
        await Deno.writeTextFile(`${path}/cgroup.kill`, "1");
        return;
      } catch { /* a kernel before 5.14: no cgroup.kill; one by one */ }
      for (let round = 0; round < ROUNDS; round++) {
        const pids = await procsOf(path);
        if (pids.length === 0) return;
        for (const pid of pids) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
        await sleep(10);
      }
    },
    async release() {
      for (let round = 0; round < ROUNDS; round++) {
        try {
          await Deno.remove(path);
          return;
        } catch { /* still populated (or dying): move what is left, and again */ }
        for (const pid of await procsOf(path)) {
          await Deno.writeTextFile(`${parent}/cgroup.procs`, `${pid}\n`).catch(() => {});
        }
        await sleep(10);
      }
    },
  };
}
