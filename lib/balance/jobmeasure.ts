/**
 * Measuring one job, the one way om does it (PROTOCOL.md §12, "Sampling"): its whole process
 * tree, PID 1 and every descendant found through `/proc/<pid>/task/<tid>/children`, each task's
 * directory listed once; the threads in state R (read by lib/base/procs.ts `parseStat`, om's one
 * stat parser) and the sum of the processes' VmRSS. The balancer samples every job running here
 * with it four times per interval, and measures a job it has no history of yet when asked where it
 * would place it (`job.place`, for `om migrate PID balance`). A job's share of a node's load is
 * lib/info/measure.ts `loadAt` of its runnable tasks, the rule a node's own load follows.
 *
 * The reads are synchronous, as lib/info/measure.ts's are: a few small /proc files per job and
 * sample, where each asynchronous read would be a hand-off to a worker thread.
 */
import { parseStat } from "../base/procs.ts";

/** The most processes one measure reads: a job that forks without end is not walked to its end. */
export const MAX_JOB_PROCESSES = 10_000;

/** One measure of a job. */
export interface JobMeasure {
  /** Its threads in state R (running or runnable) now. */
  readonly runnable: number;
  /** The resident memory of its processes (VmRSS), bytes. */
  readonly rss: number;
}

function read(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Whether a task's stat says it runs; false when it is gone (unreadable, or empty). */
function running(stat: string | undefined): boolean {
  try {
    return stat !== undefined && parseStat(stat).state === "R";
  } catch {
    return false;
  }
}

/**
 * Measures the job whose PID 1 is `pid` (host PID). Processes that end while it reads count as far
 * as they were read; a job that is gone measures 0. `procDir` is the proc directory (tests point it
 * at a fake tree).
 */
export function measureJob(pid: number, procDir = "/proc"): JobMeasure {
  let runnable = 0;
  let rss = 0;
  const queue = [pid];
  for (let seen = 0; queue.length > 0 && seen < MAX_JOB_PROCESSES; seen++) {
    const process = queue.shift()!;
    const status = read(`${procDir}/${process}/status`) ?? "";
    rss += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`${procDir}/${process}/task`)].map((e) => e.name);
    } catch { /* gone */ }
    for (const tid of tasks) {
      if (running(read(`${procDir}/${process}/task/${tid}/stat`))) runnable++;
      for (const child of (read(`${procDir}/${process}/task/${tid}/children`) ?? "").split(/\s+/)) {
        if (/^\d+$/.test(child)) queue.push(Number(child));
      }
    }
  }
  return { runnable, rss };
}
