/**
 * A process as om knows it: its PID AND the time the kernel says it started (field 22 of
 * `/proc/<pid>/stat`, in clock ticks since boot). A PID alone names whatever process holds it now:
 * once a job's PID 1 has ended and been reaped, the kernel may give its PID to any new process,
 * and a signal sent by root to that PID reaches a stranger. The start time does not come round
 * with the PID: two processes that hold the same PID one after the other started at different
 * times (10 ms apart at least, the clock tick; a PID is not reused that fast). So every signal and
 * kill of a job checks, right before it is sent, that the PID is still the process that started
 * at the recorded time, and sends nothing when it is not.
 *
 * Deno offers no pidfd (pidfd_open, pidfd_send_signal), which would close the gap between the
 * check and the kill altogether. Here the check reads `/proc/<pid>/stat` synchronously and the
 * signal follows with nothing in between on this thread: for the PID to change hands in that gap
 * the process would have to end, be reaped, and the kernel's PIDs to come round to it, within
 * microseconds.
 *
 * A process that has ended but not been reaped (a zombie, state Z or X) keeps its PID and start
 * time; it counts as ended here: there is nothing left of it to signal.
 */
import { parseStat } from "../base/procs.ts";

/** Who a process is: its PID and its start time (clock ticks since boot). */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: number;
}

/** States of `/proc/<pid>/stat` of a process that has ended (zombie, dead). */
const ENDED_STATES = new Set(["Z", "X", "x"]);

/**
 * Who process `pid` is now; undefined when there is no such process or it has ended (a zombie).
 * Synchronous, so that a caller can check and act with nothing in between.
 */
export function identifyProcess(pid: number): ProcessIdentity | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  try {
    const stat = parseStat(text);
    if (stat.startTime === undefined || ENDED_STATES.has(stat.state)) return undefined;
    return { pid: stat.pid, startTime: stat.startTime };
  } catch {
    return undefined;
  }
}

/** Whether `who.pid` is still the process that started at `who.startTime`, and has not ended. */
export function isSameProcess(who: ProcessIdentity): boolean {
  const now = identifyProcess(who.pid);
  return now !== undefined && now.startTime === who.startTime;
}

/**
 * Sends `signal` to process `who` (to its process group, which it leads, with `group`) if it is
 * still that process; returns false and sends nothing when it has ended or its PID now names
 * another process. Throws what Deno.kill throws other than NotFound (a process that ended between
 * the check and the kill counts as ended).
 */
export function signalProcess(
  who: ProcessIdentity,
  signal: Deno.Signal,
  options: { readonly group?: boolean } = {},
): boolean {
  if (!isSameProcess(who)) return false;
  try {
    Deno.kill(options.group ? -who.pid : who.pid, signal);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
