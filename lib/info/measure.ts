/**
 * Measuring this node for the node-information message: CPUs, load, utilisation and memory, of
 * the whole machine, or of the node's cgroup when the node is one (an `om lab` node: OM_CGROUP_*).
 * Lab nodes share one kernel, so without the cgroup a lab could never show one node busier than
 * another. PROTOCOL.md §2.10 defines the figures.
 *
 * Parsing is pure (tested on fixed texts); `Meter` reads the files and keeps the previous sample
 * to turn CPU time into rates. A task's state comes from lib/base/procs.ts `parseStat`, om's one
 * reader of `/proc/<pid>/stat`.
 */
import { parseStat } from "../base/procs.ts";

/** The reference speed: 10000 = a 1 GHz CPU (HOWTO: "speed relative to PIII/1GHz"). */
export const REFERENCE_SPEED = 10000;

/**
 * The load of `tasks` runnable tasks (on average) at a node of speed `speed`, in openMosix's load
 * units: 100 per task at REFERENCE_SPEED, less on a faster node, more on a slower one. A node's
 * load (figures) and a job's share of it (lib/balance/) are both this.
 */
export function loadAt(tasks: number, speed: number): number {
  return tasks * 100 * REFERENCE_SPEED / Math.max(1, speed);
}

/** Where a cgroup node's figures come from (cgroup v1 directories). */
export interface CgroupPaths {
  readonly cpu?: string;
  readonly cpuacct?: string;
  readonly memory?: string;
}

/** One reading. CPU time is cumulative; the rest are instantaneous. */
export interface Sample {
  /** When, in ms (the caller's clock). */
  readonly at: number;
  /** CPUs the node may use (fractional for a cgroup quota). */
  readonly cpus: number;
  /** Cumulative CPU time used by the node, in ms. */
  readonly cpuMs: number;
  /** Tasks runnable right now (not counting the measuring daemon itself). */
  readonly runnable: number;
  readonly tmem: number;
  readonly rmem: number;
  readonly mem: number;
}

/** The figures one information interval yields. */
export interface Figures {
  readonly cpus: number;
  readonly load: number;
  readonly util: number;
  readonly mem: number;
  readonly rmem: number;
  readonly tmem: number;
}

/** `/proc/meminfo` fields in bytes. */
export function parseMeminfo(text: string): Record<string, number> {
  const result: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const match = /^(\w+):\s+(\d+)(?: kB)?$/.exec(line.trim());
    if (match) result[match[1]] = Number(match[2]) * (line.includes("kB") ? 1024 : 1);
  }
  return result;
}

/** `/proc/stat`: cumulative busy CPU time in ms (USER_HZ 100) and procs_running. */
export function parseProcStat(text: string): { busyMs: number; running: number } {
  let busyMs = 0;
  let running = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("cpu ")) {
      const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1)
        .map(Number);
      busyMs = (user + nice + system + irq + softirq + (steal || 0)) * 10;
    } else if (line.startsWith("procs_running ")) {
      running = Number(line.split(/\s+/)[1]);
    }
  }
  return { busyMs, running };
}

/** The CPU count a cgroup's quota allows, or undefined for no quota. */
export function cpusOfQuota(quotaUs: number, periodUs: number): number | undefined {
  return quotaUs > 0 && periodUs > 0 ? quotaUs / periodUs : undefined;
}

/** The default speed from the CPU's clock: 1 GHz = REFERENCE_SPEED. */
export function speedOfCpuinfo(text: string): number {
  const match = /^cpu MHz\s*:\s*([\d.]+)/m.exec(text);
  return match ? Math.max(1, Math.round(Number(match[1]) * 10)) : REFERENCE_SPEED;
}

/**
 * The figures of an interval between two samples, at a given speed. load: the average number of
 * runnable tasks, times 100, scaled to the reference speed (a task on a CPU twice as fast loads
 * it half as much); util: CPU time used over what the node's CPUs could give, in percent.
 * Free and available memory are rounded down to whole MiB: byte counts change at every sample,
 * and every change is a file to rewrite on every node of the cluster.
 */
export function figures(
  previous: Sample,
  current: Sample,
  runnable: number,
  speed: number,
): Figures {
  const elapsed = Math.max(1, current.at - previous.at);
  const used = Math.max(0, current.cpuMs - previous.cpuMs);
  const util = Math.min(100, Math.round((used / (elapsed * current.cpus)) * 100));
  return {
    cpus: Math.max(1, Math.ceil(current.cpus - 1e-9)),
    load: Math.round(loadAt(runnable, speed)),
    util,
    mem: wholeMiB(current.mem),
    rmem: wholeMiB(current.rmem),
    tmem: current.tmem,
  };
}

/** Rounds a byte count down to a whole number of MiB. */
function wholeMiB(bytes: number): number {
  return Math.floor(bytes / 2 ** 20) * 2 ** 20;
}

// Synchronous reads: a few dozen tiny /proc and cgroup files a second, where Deno's async reads
// would each be a hand-off to a worker thread (see replaceFile in lib/state/tree.ts).
const readText = (path: string) => Promise.resolve(Deno.readTextFileSync(path));
const readNumber = async (path: string) => Number((await readText(path)).trim());

/** Counts the runnable tasks among a cgroup's, leaving out this process's own threads. */
async function runnableIn(tasksFile: string): Promise<number> {
  const ids = (await readText(tasksFile)).split("\n").filter(Boolean);
  const own = new Set<string>();
  try {
    for (const entry of Deno.readDirSync("/proc/self/task")) own.add(entry.name);
  } catch { /* no /proc/self/task */ }
  let runnable = 0;
  await Promise.all(ids.map(async (id) => {
    if (own.has(id)) return;
    try {
      if (parseStat(await readText(`/proc/${id}/stat`)).state === "R") runnable++;
    } catch { /* the task ended (its stat unreadable, or empty) */ }
  }));
  return runnable;
}

/** Takes samples of the machine or of a cgroup. */
export class Meter {
  readonly #cgroup?: CgroupPaths;
  readonly #now: () => number;

  constructor(options: { cgroup?: CgroupPaths; now: () => number }) {
    this.#cgroup = options.cgroup?.cpuacct || options.cgroup?.memory ? options.cgroup : undefined;
    this.#now = options.now;
  }

  /** True when the figures are a cgroup's rather than the machine's. */
  get cgroup(): boolean {
    return this.#cgroup !== undefined;
  }

  async sample(): Promise<Sample> {
    const [meminfo, stat] = await Promise.all([readText("/proc/meminfo"), readText("/proc/stat")]);
    const machineMem = parseMeminfo(meminfo);
    const machine = parseProcStat(stat);
    const machineCpus = navigator.hardwareConcurrency || 1;
    const at = this.#now();
    const cgroup = this.#cgroup;
    if (!cgroup) {
      return {
        at,
        cpus: machineCpus,
        cpuMs: machine.busyMs,
        runnable: Math.max(0, machine.running - 1),
        tmem: machineMem.MemTotal ?? 0,
        rmem: machineMem.MemFree ?? 0,
        mem: machineMem.MemAvailable ?? machineMem.MemFree ?? 0,
      };
    }
    let cpus = machineCpus;
    if (cgroup.cpu) {
      const [quota, period] = await Promise.all([
        readNumber(`${cgroup.cpu}/cpu.cfs_quota_us`),
        readNumber(`${cgroup.cpu}/cpu.cfs_period_us`),
      ]);
      cpus = Math.min(machineCpus, cpusOfQuota(quota, period) ?? machineCpus);
    }
    const cpuMs = cgroup.cpuacct
      ? (await readNumber(`${cgroup.cpuacct}/cpuacct.usage`)) / 1e6
      : machine.busyMs;
    const runnable = cgroup.cpuacct
      ? await runnableIn(`${cgroup.cpuacct}/tasks`)
      : Math.max(0, machine.running - 1);
    let tmem = machineMem.MemTotal ?? 0;
    let rmem = machineMem.MemFree ?? 0;
    let mem = machineMem.MemAvailable ?? rmem;
    if (cgroup.memory) {
      const [limit, usage, memStat] = await Promise.all([
        readNumber(`${cgroup.memory}/memory.limit_in_bytes`),
        readNumber(`${cgroup.memory}/memory.usage_in_bytes`),
        readText(`${cgroup.memory}/memory.stat`),
      ]);
      const inactiveFile = Number(/^total_inactive_file (\d+)$/m.exec(memStat)?.[1] ?? 0);
      tmem = Math.min(limit, tmem);
      rmem = Math.max(0, tmem - usage);
      mem = Math.min(mem, Math.max(0, tmem - usage + inactiveFile));
    }
    return { at, cpus, cpuMs, runnable, tmem, rmem, mem };
  }
}
