/**
 * What a restored job may be (PROTOCOL.md §11, "The restored job's credentials"): criu restores
 * each task with the ids and capabilities its images claim, and the target runs criu as root, so
 * images that claim root would give a user's job root. So after the restore, while the job is still
 * stopped (`--leave-stopped`), and before `mig.commit` lets it run, every thread of every restored
 * task is read from its `/proc/PID/task/TID/status` and checked against the job's user as
 * `mig.begin` named it ({@linkcode credentialFault}); one that holds more fails the restore, and
 * the target kills the copy before it runs an instruction of the job.
 *
 * The rule. A job of a user (uid not 0) runs here as that user and nothing more: its real,
 * effective, saved and filesystem uids are the user's uid, the four gids its gid, its
 * supplementary groups among the user's groups on this node, and it has no capabilities
 * (`CapEff`, `CapPrm` and `CapAmb` 0; `CapInh` within this daemon's, which a job it starts keeps;
 * `CapBnd` within this daemon's). A root job may have what root's jobs started here have: any ids,
 * and each capability set within this daemon's bounding set.
 */
import { capabilityNames } from "../criu/jobuser.ts";
import { descendants } from "../base/procs.ts";
import { groupsOf, type JobOwner } from "./jobowner.ts";

/** The capability sets of a task, as bitmasks. */
export interface CapabilitySets {
  readonly inh: bigint;
  readonly prm: bigint;
  readonly eff: bigint;
  readonly bnd: bigint;
  readonly amb: bigint;
}

/** The credentials of one task (a thread), from its `/proc/PID/status`. */
export interface TaskCredentials {
  /** Real, effective, saved and filesystem uids (`Uid:`). */
  readonly uids: readonly number[];
  /** Real, effective, saved and filesystem gids (`Gid:`). */
  readonly gids: readonly number[];
  /** Supplementary groups (`Groups:`). */
  readonly groups: readonly number[];
  readonly caps: CapabilitySets;
}

const CAP_FIELDS = { inh: "CapInh", prm: "CapPrm", eff: "CapEff", bnd: "CapBnd", amb: "CapAmb" };

/** The credentials of a `/proc/PID/status` text; throws SyntaxError when a line is missing. */
export function parseCredentials(status: string): TaskCredentials {
  const field = (name: string) => {
    const value = new RegExp(`^${name}:[ \\t]*(.*)$`, "m").exec(status)?.[1];
    if (value === undefined) throw new SyntaxError(`Cannot read credentials: no "${name}:" line`);
    return value.trim();
  };
  const ids = (name: string) => {
    const words = field(name).split(/\s+/);
    if (words.length !== 4 || !words.every((word) => /^\d{1,10}$/.test(word))) {
      throw new SyntaxError(`Cannot read credentials: "${name}:" is not four ids`);
    }
    return words.map(Number);
  };
  const groups = field("Groups");
  if (!/^(\d{1,10}(\s+\d{1,10})*)?$/.test(groups)) {
    throw new SyntaxError(`Cannot read credentials: "Groups:" is not a list of ids`);
  }
  const caps = Object.fromEntries(
    Object.entries(CAP_FIELDS).map(([key, name]) => {
      const mask = field(name);
      if (!/^[0-9a-f]{1,16}$/i.test(mask)) {
        throw new SyntaxError(`Cannot read credentials: "${name}:" is not a capability mask`);
      }
      return [key, BigInt(`0x${mask}`)];
    }),
  ) as unknown as CapabilitySets;
  return {
    uids: ids("Uid"),
    gids: ids("Gid"),
    groups: groups === "" ? [] : groups.split(/\s+/).map(Number),
    caps,
  };
}

/** What a restored task may hold here: the job's user, and what this node gives such a job. */
export interface CredentialRule {
  readonly owner: JobOwner;
  /** The groups the user has on this node (for a user's job; root's may have any). */
  readonly groups: ReadonlySet<number>;
  /** This daemon's own capability sets: a job started here gets no more. */
  readonly daemon: CapabilitySets;
}

/**
 * The rule for a copy of a job of `owner` restored here: the user's groups on this node (none
 * looked up for root's job) and this daemon's capabilities (`/proc/self/status`, or `self`).
 */
export async function credentialRule(owner: JobOwner, self?: string): Promise<CredentialRule> {
  const status = self ?? await Deno.readTextFile("/proc/self/status");
  return {
    owner,
    groups: owner.uid === 0 ? new Set() : await groupsOf(owner.name),
    daemon: parseCredentials(status).caps,
  };
}

/** A capability mask as names, the first three of them ("chown, kill, sys_admin and 3 more"). */
function describe(mask: bigint): string {
  const names = capabilityNames(mask.toString(16));
  let bits = 0;
  for (let rest = mask; rest !== 0n; rest >>= 1n) bits += Number(rest & 1n);
  // Bits beyond the capabilities jobuser.ts names count as more.
  const shown = names.slice(0, 3);
  const more = bits - shown.length;
  if (shown.length === 0) return `capabilities 0x${mask.toString(16)}`;
  return more > 0 ? `${shown.join(", ")} and ${more} more` : shown.join(", ");
}

/**
 * Why a task with `task`'s credentials may not run here as a copy of the job `rule` describes, or
 * undefined when it may (the rule is in this file's header).
 */
export function credentialFault(task: TaskCredentials, rule: CredentialRule): string | undefined {
  const { owner, daemon } = rule;
  const { caps } = task;
  for (const [key, name] of Object.entries(CAP_FIELDS) as [keyof CapabilitySets, string][]) {
    const beyond = caps[key] & ~daemon.bnd;
    if (beyond !== 0n) return `its ${name} holds ${describe(beyond)}, which no job here has`;
  }
  if (owner.uid === 0) return undefined;
  const who = `user ${owner.name} (uid ${owner.uid}, gid ${owner.gid})`;
  if (task.uids.some((uid) => uid !== owner.uid)) {
    return `it runs as uids ${task.uids.join(" ")}, not as ${who}`;
  }
  if (task.gids.some((gid) => gid !== owner.gid)) {
    return `it runs as gids ${task.gids.join(" ")}, not as ${who}`;
  }
  const stranger = task.groups.find((gid) => gid !== owner.gid && !rule.groups.has(gid));
  if (stranger !== undefined) return `it is in group ${stranger}, which ${who} is not in here`;
  for (const key of ["eff", "prm", "amb"] as const) {
    if (caps[key] !== 0n) {
      return `its ${CAP_FIELDS[key]} holds ${describe(caps[key])}, and a job of ${who} has none`;
    }
  }
  const inherited = caps.inh & ~daemon.inh;
  if (inherited !== 0n) {
    return `its CapInh holds ${describe(inherited)}, which a job of ${who} here does not`;
  }
  return undefined;
}

/** What {@linkcode checkRestoredTasks} found: how many threads it read, and the first fault. */
export interface TasksChecked {
  /** Threads read and checked. */
  readonly threads: number;
  /** The first thread that may not run here, and why; undefined when none. */
  readonly fault?: string;
}

/**
 * The tasks of a restored job: those below its `waiter` (criu restores them as the waiter's
 * children, and theirs; the waiter itself is om's), and `pid`, the job's PID 1 as criu's pidfile
 * names it, with the tasks below it.
 */
export async function restoredTasks(
  restored: { waiter: number; pid: number },
  procDir = "/proc",
): Promise<Set<number>> {
  const pids = new Set<number>([restored.pid]);
  for (const root of [restored.waiter, restored.pid]) {
    for (const pid of await descendants(root, procDir)) pids.add(pid);
  }
  return pids;
}

/**
 * Checks every thread of a restored job against `rule` ({@linkcode credentialFault}): the tasks
 * below its `waiter` (criu restores them as the waiter's children, and theirs; the waiter itself
 * is om's), and `pid`, the job's PID 1 as criu's pidfile names it, with the tasks below it. A task
 * whose status cannot be read or parsed is a fault too: a stopped task does not go away by itself,
 * and a check that cannot look must not pass.
 */
export async function checkRestoredTasks(
  restored: { waiter: number; pid: number },
  rule: CredentialRule,
  options: { procDir?: string; userNamespace?: string } = {},
): Promise<TasksChecked> {
  const procDir = options.procDir ?? "/proc";
  // A user's job stays in this node's own user namespace: in one of its own, restored by criu as
  // root with the images' uid_map, a task that looks unprivileged here could map host root.
  const hostNamespace = rule.owner.uid === 0
    ? undefined
    : options.userNamespace ?? await Deno.readLink("/proc/self/ns/user");
  const pids = await restoredTasks(restored, procDir);
  let threads = 0;
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = (await Array.fromAsync(Deno.readDir(`${procDir}/${pid}/task`)))
        .map((entry) => entry.name)
        .filter((name) => /^\d+$/.test(name))
        .sort((a, b) => Number(a) - Number(b));
    } catch {
      tids = [];
    }
    if (tids.length === 0) return { threads, fault: `task ${pid}: its threads cannot be read` };
    if (hostNamespace !== undefined) {
      const namespace = await Deno.readLink(`${procDir}/${pid}/ns/user`).catch(() => undefined);
      if (namespace !== hostNamespace) {
        return {
          threads,
          fault: `task ${pid}: it is in a user namespace of its own (${
            namespace ?? "unreadable"
          }), which a job of user ${rule.owner.name} may not bring`,
        };
      }
    }
    for (const tid of tids) {
      const where = tid === String(pid) ? `task ${pid}` : `task ${pid} (thread ${tid})`;
      let credentials: TaskCredentials;
      try {
        credentials = parseCredentials(
          await Deno.readTextFile(`${procDir}/${pid}/task/${tid}/status`),
        );
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        return { threads, fault: `${where}: ${why}` };
      }
      threads++;
      const fault = credentialFault(credentials, rule);
      if (fault) return { threads, fault: `${where}: ${fault}` };
    }
  }
  return { threads };
}
