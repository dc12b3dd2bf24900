/**
 * The nodes' daemons: starting `om discover -n` in a node (in its own session, its output in the
 * node's `discover.log`), telling whether it still runs, and stopping it gently (SIGTERM: it sends
 * a leave), as a crash (SIGKILL) or just signalling it. A daemon is recorded in lab.json by pid
 * and start time, since pids are reused: a later process with its pid is not mistaken for it. A
 * daemon this process started is also reaped by it.
 */
import { readStat } from "../base/procs.ts";
import { RetryTimeoutError, retryUntil } from "../base/retry.ts";
import type { WaitClock } from "../base/clock.ts";
import { omCommand } from "../base/selfexec.ts";
import { findNode, type Lab, type LabDaemon, saveLab } from "./record.ts";
import { enterScript, nodeEnv } from "./exec.ts";

/** Options of {@linkcode startDaemon}. */
export interface StartDaemonOptions {
  /** More flags for `om discover -n`, after the node's own. */
  readonly args?: readonly string[];
  /** More environment, over the node's. */
  readonly env?: Record<string, string>;
  /**
   * What runs in place of `om discover` (it is given the same arguments): a test runs a node
   * whose migrations suffer faults this way (tests/tools/faultnode.ts).
   */
  readonly program?: readonly string[];
}

/**
 * Starts `om discover -n` in node `index`: in its own session, in the node's cgroups and
 * namespace, with the node's environment, output appended to `<node dir>/discover.log`.
 * Records it in lab.json. Throws when the node's daemon is already running.
 */
export async function startDaemon(
  lab: Lab,
  index: number,
  options: StartDaemonOptions = {},
): Promise<LabDaemon> {
  const node = findNode(lab, index);
  if (node.daemon && await isAlive(node.daemon)) {
    throw new Error(`Cannot start the daemon of node ${index}: it runs as pid ${node.daemon.pid}`);
  }
  const argv = [
    ...(options.program ?? omCommand(["discover"])),
    "-n",
    ...node.discoverArgs,
    ...(options.args ?? []),
  ];
  const log = `${node.dir}/discover.log`;
  // setsid: a session of its own, so a terminal's signals do not reach it. Deno 2.9's
  // `detached` option does not call setsid on Linux (checked).
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", enterScript(node, { log }), "sh", ...argv],
    env: { ...nodeEnv(lab, index), ...options.env },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  lab.children.set(index, child);
  let startTime = 0;
  try {
    startTime = (await readStat(child.pid)).startTime ?? 0;
  } catch {
    // Already gone: isAlive says so, and the log says why.
  }
  node.daemon = { pid: child.pid, startTime, argv, log };
  await saveLab(lab);
  return node.daemon;
}

/** True when the process recorded as `daemon` still runs (not a zombie, not a later pid). */
export async function isAlive(daemon: LabDaemon): Promise<boolean> {
  try {
    const stat = await readStat(daemon.pid);
    return stat.startTime === daemon.startTime && stat.state !== "Z" && stat.state !== "X";
  } catch {
    return false;
  }
}

/** What became of a stopped daemon. */
export interface StopResult {
  readonly pid: number;
  /** It ended on SIGTERM within the grace time. */
  readonly graceful: boolean;
  /** Its exit status, when this process started it (and so could reap it). */
  readonly status?: Deno.CommandStatus;
}

/**
 * Stops node `index`'s daemon: SIGTERM (it sends a leave), SIGKILL if it is still there after
 * `graceMs` (default 3000), reaped when this process started it. Returns undefined when no
 * daemon was running.
 */
export async function stopDaemon(
  lab: Lab,
  index: number,
  options: { graceMs?: number; clock?: WaitClock } = {},
): Promise<StopResult | undefined> {
  return await endDaemon(lab, index, "SIGTERM", options.graceMs ?? 3000, options.clock);
}

/** Kills node `index`'s daemon with SIGKILL at once (a crash: no leave is sent) and reaps it. */
export async function killDaemon(
  lab: Lab,
  index: number,
  options: { clock?: WaitClock } = {},
): Promise<StopResult | undefined> {
  return await endDaemon(lab, index, "SIGKILL", 0, options.clock);
}

/** Sends `signal` to node `index`'s daemon and returns at once (SIGSTOP to make it silent). */
export async function signalDaemon(lab: Lab, index: number, signal: Deno.Signal): Promise<void> {
  const node = findNode(lab, index);
  if (!node.daemon || !await isAlive(node.daemon)) {
    throw new Error(`Cannot signal the daemon of node ${index}: it does not run`);
  }
  Deno.kill(node.daemon.pid, signal);
}

/**
 * Ends node `index`'s daemon with `signal`; unless that is SIGKILL, SIGKILL follows when it is
 * still there after `graceMs`. Reaps it when this process started it, and drops it from the record.
 */
async function endDaemon(
  lab: Lab,
  index: number,
  signal: Deno.Signal,
  graceMs: number,
  clock?: WaitClock,
): Promise<StopResult | undefined> {
  const node = findNode(lab, index);
  const daemon = node.daemon;
  if (!daemon) return undefined;
  const child = lab.children.get(index);
  let status: Deno.CommandStatus | undefined;
  child?.status.then((s) => status = s);
  const ended = async () => status !== undefined || !await isAlive(daemon);
  let graceful = false;
  if (await isAlive(daemon)) {
    trySignal(daemon.pid, signal);
    if (signal !== "SIGKILL") {
      try {
        await retryUntil(ended, graceMs, { clock, intervalMs: 20 });
        graceful = true;
      } catch (error) {
        if (!(error instanceof RetryTimeoutError)) throw error;
      }
    }
    if (!graceful && await isAlive(daemon)) trySignal(daemon.pid, "SIGKILL");
    await retryUntil(ended, 5000, { clock, what: `pid ${daemon.pid} to end` });
  }
  if (child) {
    status = await child.status;
    lab.children.delete(index);
  }
  delete node.daemon;
  await saveLab(lab);
  return { pid: daemon.pid, graceful, ...(status ? { status } : {}) };
}

/** Sends `signal` to `pid`; a process already gone is not an error. */
function trySignal(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
