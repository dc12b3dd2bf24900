/**
 * What a task of a user's job may be given as criu restores it (PROTOCOL.md §11, "The images of a
 * user's job"): criu, as root, sets each task's scheduling, resource limits, OOM score adjustment
 * and login uid from its `core-N.img`, which a user could not raise itself. So
 * {@linkcode checkTaskCore} allows what a job started on this node could have: a normal policy
 * (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE) with no real-time priority, a nice value of 0 or more
 * (or this daemon's own, when lower), hard limits no higher than this daemon's own (a job started
 * here inherits them, and a user can only lower a hard limit), an OOM score adjustment of 0 or
 * more (or this daemon's, when lower: a user can only raise it), and a login uid that is unset,
 * the user's, or this daemon's (a job inherits it; only a privileged task may set it); and no
 * security label but this daemon's (criu writes it as root: AppArmor's "unconfined" would free a
 * confined job), no socket label, no AppArmor policy for criu to load.
 */
import type { TaskCore } from "../criu/images.ts";

/** What a job started on this node inherits from the daemon. */
export interface TaskFacts {
  /** The daemon's hard resource limits, by resource number (RLIM_INFINITY is 2^64 - 1). */
  readonly hardLimits: readonly bigint[];
  readonly nice: number;
  readonly oomScoreAdj: number;
  /** The daemon's login uid (4294967295: unset). */
  readonly loginuid: number;
  /** The daemon's security label (`/proc/self/attr/current`), when it has one. */
  readonly lsmProfile?: string;
}

/** RLIM_INFINITY. */
export const RLIM_INFINITY = 0xffffffffffffffffn;

/** The resource limits of Linux, by number, as /proc/PID/limits and getrlimit(2) name them. */
export const RLIMITS: readonly { readonly name: string; readonly label: string }[] = [
  { name: "RLIMIT_CPU", label: "Max cpu time" },
  { name: "RLIMIT_FSIZE", label: "Max file size" },
  { name: "RLIMIT_DATA", label: "Max data size" },
  { name: "RLIMIT_STACK", label: "Max stack size" },
  { name: "RLIMIT_CORE", label: "Max core file size" },
  { name: "RLIMIT_RSS", label: "Max resident set" },
  { name: "RLIMIT_NPROC", label: "Max processes" },
  { name: "RLIMIT_NOFILE", label: "Max open files" },
  { name: "RLIMIT_MEMLOCK", label: "Max locked memory" },
  { name: "RLIMIT_AS", label: "Max address space" },
  { name: "RLIMIT_LOCKS", label: "Max file locks" },
  { name: "RLIMIT_SIGPENDING", label: "Max pending signals" },
  { name: "RLIMIT_MSGQUEUE", label: "Max msgqueue size" },
  { name: "RLIMIT_NICE", label: "Max nice priority" },
  { name: "RLIMIT_RTPRIO", label: "Max realtime priority" },
  { name: "RLIMIT_RTTIME", label: "Max realtime timeout" },
];

/**
 * The hard limits of a `/proc/PID/limits` text, by resource number; throws a SyntaxError when one
 * of RLIMITS is missing or not a number.
 */
export function parseLimits(text: string): bigint[] {
  const hard = new Map<string, bigint>();
  for (const line of text.split("\n")) {
    const match = /^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = match[3];
    if (value === "unlimited") hard.set(match[1], RLIM_INFINITY);
    else if (/^\d+$/.test(value)) hard.set(match[1], BigInt(value));
  }
  return RLIMITS.map(({ label }) => {
    const value = hard.get(label);
    if (value === undefined) throw new SyntaxError(`Cannot read the limits: no "${label}" line`);
    return value;
  });
}

/** The nice value of a `/proc/PID/stat` text (its 19th field); throws when it has none. */
export function parseNice(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const nice = Number(fields[16]);
  if (!Number.isInteger(nice)) throw new SyntaxError("Cannot read the nice value of a stat line");
  return nice;
}

/** The policies of sched(7), by number. */
const POLICIES: Readonly<Record<number, string>> = {
  0: "SCHED_OTHER",
  1: "SCHED_FIFO",
  2: "SCHED_RR",
  3: "SCHED_BATCH",
  5: "SCHED_IDLE",
  6: "SCHED_DEADLINE",
};

/** Policies a user's task may have. */
const NORMAL = new Set([0, 3, 5]);

/** A flag sched_getscheduler(2) may add to the policy. */
const SCHED_RESET_ON_FORK = 0x40000000;

const UNSET_LOGINUID = 0xffffffff;

/**
 * Why a task with `core` may not be restored as a task of uid `uid` on a node with `facts` (the
 * rule in this file's header), as words after "a task": "of scheduling policy SCHED_FIFO..."; or
 * undefined when it may.
 */
export function checkTaskCore(
  core: TaskCore,
  node: { facts: TaskFacts; uid: number },
): string | undefined {
  const { facts, uid } = node;
  const { policy, prio, nice } = core.sched;
  if (policy !== undefined) {
    const base = (policy & ~SCHED_RESET_ON_FORK) >>> 0;
    if (!NORMAL.has(base)) {
      return `of scheduling policy ${POLICIES[base] ?? "unknown"} (${base}), which only a ` +
        "privileged task may set";
    }
  }
  if (prio !== undefined && prio !== 0) {
    return `of real-time priority ${prio}, which only a privileged task may set`;
  }
  const niceFloor = Math.min(0, facts.nice);
  if (nice !== undefined && nice < niceFloor) {
    return `of nice value ${nice}, below ${niceFloor}, which only a privileged task may set`;
  }
  const limits = core.rlimits ?? [];
  if (limits.length > RLIMITS.length) {
    return `with ${limits.length} resource limits, more than the ${RLIMITS.length} Linux has`;
  }
  for (const [i, limit] of limits.entries()) {
    const { name } = RLIMITS[i];
    if (limit.cur > limit.max) {
      return `whose ${name} soft limit ${limit.cur} is above its hard limit ${limit.max}`;
    }
    const here = facts.hardLimits[i];
    if (here !== undefined && limit.max > here) {
      return `whose hard ${name} is ${describe(limit.max)}, above this node's ` +
        `${describe(here)}, which only a privileged task may raise`;
    }
  }
  const oomFloor = Math.min(0, facts.oomScoreAdj);
  if (core.oomScoreAdj !== undefined && core.oomScoreAdj < oomFloor) {
    return `with oom_score_adj ${core.oomScoreAdj}, below ${oomFloor}, which only a privileged ` +
      "task may set";
  }
  const { loginuid } = core;
  if (
    loginuid !== undefined && loginuid !== UNSET_LOGINUID && loginuid !== uid &&
    loginuid !== facts.loginuid
  ) {
    return `with login uid ${loginuid}, neither unset, nor the user's, nor this daemon's, which ` +
      "only a privileged task may set";
  }
  const { profile, sockcreate, apparmorData } = core.lsm ?? { apparmorData: false };
  if (profile !== undefined && profile !== facts.lsmProfile) {
    return `with the security label ${JSON.stringify(profile)}, not this daemon's, which only a ` +
      "privileged task may set";
  }
  if (sockcreate) {
    return `with the socket label ${JSON.stringify(sockcreate)}, which om does not restore`;
  }
  if (apparmorData) return "with AppArmor policy data, which criu would load as root";
  return undefined;
}

function describe(limit: bigint): string {
  return limit === RLIM_INFINITY ? "unlimited" : String(limit);
}
