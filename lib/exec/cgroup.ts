/**
 * A cgroup (v2) of its own for each command `om exec` runs (PROTOCOL.md §13, "Running"), so that
 * its time limit ends every process the command started, those that left its process group or
 * session (`setsid`, a daemon's double fork) too: `cgroup.kill` kills all of the group and the
 * groups below it at once, and a process cannot leave its group unless it writes to another
 * group's `cgroup.procs` (root can: a command run as root that means to escape can, which om does
 * not try to prevent; it only makes sure that nothing escapes by accident).
 *
 * The group is made below the daemon's own cgroup of the unified hierarchy (found in
 * /proc/self/cgroup and /proc/self/mountinfo), named `om-exec-<daemon PID>-<its start time>-<N>`
 * (the start time tells a daemon's groups from those of an earlier daemon that had its PID); the
 * command's starter writes its own PID to the group's `cgroup.procs` before it execs the command,
 * so that nothing of it runs outside. A command that ended on its own may leave processes behind on
 * purpose (a service it started): they are moved back to the daemon's group, and the group (and
 * any the command made below it) is removed. A command killed at its limit leaves nothing: its
 * groups are removed once empty, nothing moved out. The groups of a daemon that died (its PID gone
 * or another process's) are killed and removed when the next daemon makes its first group. No
 * cgroup2 mounted, or one om may not write: undefined, and the process group alone is killed at
 * the time limit.
 */
import { parseMountinfo } from "../base/mountinfo.ts";
import { readProcess } from "../base/procs.ts";
import { sleep } from "../base/time.ts";

/** One command's cgroup. */
export interface CommandCgroup {
  /** Its directory. */
  readonly path: string;
  /**
   * Kills every process in it and in the groups below it (SIGKILL), waits until they are gone,
   * and removes the groups; never throws.
   */
  kill(): Promise<void>;
  /**
   * Moves what is left in it and below it to the daemon's group, and removes the groups; never
   * throws.
   */
  release(): Promise<void>;
}

/** Where om's files of the kernel are: /proc/self by default (a test may give another). */
export interface CgroupPlaces {
  readonly self?: string;
}

/** How many rounds of listing and moving (or killing) a group's processes before giving up. */
const ROUNDS = 200;

/** The prefix of every group `om exec` makes. */
export const GROUP_PREFIX = "om-exec-";

let made = 0;
let swept: Promise<void> | undefined;
/** This process's start time, read once: it names every group it makes. */
let ownStart: number | undefined;

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
    const joined = `${mount.mountpoint}${path.slice(root.length)}`.replace(/\/+$/, "");
    return joined || "/";
  }
  return undefined;
}

/** `dir`/`name`, without a doubled slash when `dir` is `/`. */
const join = (dir: string, name: string) => `${dir === "/" ? "" : dir}/${name}`;

/** Reads a cgroup's `cgroup.procs`: the PIDs in it now. */
async function procsOf(dir: string): Promise<number[]> {
  const text = await Deno.readTextFile(`${dir}/cgroup.procs`).catch(() => "");
  return text.split("\n").filter((w) => /^\d+$/.test(w)).map(Number);
}

/** The groups below `dir`, deepest first, then `dir` itself. */
async function groupsBelow(dir: string): Promise<string[]> {
  const below: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) below.push(...await groupsBelow(`${dir}/${entry.name}`));
    }
  } catch { /* gone */ }
  return [...below, dir];
}

/** Removes `dir` and the groups below it, deepest first; true when all are gone. */
async function removeGroups(dir: string): Promise<boolean> {
  let all = true;
  for (const group of await groupsBelow(dir)) {
    await Deno.remove(group).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) all = false;
    });
  }
  return all;
}

/** Kills every process of `dir` and below, until they are gone, and removes the groups. */
async function killGroups(dir: string): Promise<void> {
  for (let round = 0; round < ROUNDS; round++) {
    try {
      await Deno.writeTextFile(`${dir}/cgroup.kill`, "1", { create: false });
    } catch {
      // A kernel before 5.14 (no cgroup.kill), or gone: one by one.
      for (const group of await groupsBelow(dir)) {
        for (const pid of await procsOf(group)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    }
    if (await removeGroups(dir)) return;
    await sleep(10);
  }
}

/** The start time of process `pid` (field 22 of its stat), or undefined when it is gone. */
async function startTimeOf(pid: number): Promise<number | undefined> {
  return (await readProcess("/proc", pid).catch(() => undefined))?.startTime;
}

/**
 * Kills and removes the groups of daemons that are gone (their PID no longer theirs): what their
 * commands left when they died. Done once per process, before its first group.
 */
export async function sweepStale(parent: string): Promise<void> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      if (entry.isDirectory && entry.name.startsWith(GROUP_PREFIX)) names.push(entry.name);
    }
  } catch {
    return;
  }
  for (const name of names) {
    const match = /^om-exec-(\d+)-(\d+)-\d+$/.exec(name);
    if (!match) continue;
    const [pid, start] = [Number(match[1]), Number(match[2])];
    if (pid === Deno.pid || await startTimeOf(pid) === start) continue; // a live daemon's
    await killGroups(join(parent, name));
  }
}

/** Makes a cgroup for one command below the daemon's own, or undefined (see the header). */
export async function commandCgroup(places: CgroupPlaces = {}): Promise<CommandCgroup | undefined> {
  const parent = await ownCgroupDir(places);
  if (parent === undefined) return undefined;
  const start = ownStart ??= await startTimeOf(Deno.pid);
  if (start === undefined) return undefined;
  await (swept ??= sweepStale(parent));
  let path: string | undefined;
  for (let tries = 0; tries < 16 && path === undefined; tries++) {
    const candidate = join(parent, `${GROUP_PREFIX}${Deno.pid}-${start}-${++made}`);
    try {
      await Deno.mkdir(candidate);
      path = candidate;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) return undefined;
    }
  }
  if (path === undefined) return undefined;
  // A directory that is not a cgroup (the kernel makes cgroup.procs in every group) is none.
  try {
    await Deno.stat(`${path}/cgroup.procs`);
  } catch {
    await Deno.remove(path).catch(() => {});
    return undefined;
  }
  const group = path;
  return {
    path: group,
    kill: () => killGroups(group),
    async release() {
      for (let round = 0; round < ROUNDS; round++) {
        if (await removeGroups(group)) return;
        // Still populated: what is left goes back to the daemon's group, and again.
        for (const each of await groupsBelow(group)) {
          for (const pid of await procsOf(each)) {
            await Deno.writeTextFile(`${parent}/cgroup.procs`, `${pid}\n`, { create: false })
              .catch(() => {});
          }
        }
        await sleep(10);
      }
    },
  };
}
