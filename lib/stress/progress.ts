/**
 * The progress of a run in one line, for the live display on a terminal (redrawn in place) and
 * for the plain progress lines otherwise: elapsed and remaining time, jobs running, done and
 * failed, moves done and failed (and the balancer's), and the running jobs per node.
 */

/** What the run is told as it goes. */
export interface Progress {
  readonly phase: "calibrating" | "running" | "finishing" | "stopping";
  /** Milliseconds since the jobs started (0 while calibrating). */
  readonly elapsedMs: number;
  readonly durationMs: number;
  readonly running: number;
  /** Jobs that ended with the right result. */
  readonly done: number;
  /** Jobs that ended otherwise. */
  readonly failed: number;
  readonly movesDone: number;
  readonly movesFailed: number;
  readonly balancerMoves: number;
  /** Running jobs per node, by node id. */
  readonly perNode: readonly (readonly [number, number])[];
}

/** "12 s of 60 (48 left): jobs 6 running, 2 done, 0 failed; moves 3 done, 0 failed, ..." */
export function progressLine(progress: Progress): string {
  const elapsed = Math.floor(progress.elapsedMs / 1000);
  const total = Math.round(progress.durationMs / 1000);
  const time = progress.phase === "calibrating"
    ? "sizing the workloads"
    : progress.phase === "running"
    ? `${elapsed} s of ${total} (${Math.max(0, total - elapsed)} left)`
    : progress.phase === "finishing"
    ? `${elapsed} s, waiting for the last jobs`
    : `${elapsed} s, stopping the jobs`;
  const nodes = progress.perNode.length === 0
    ? "none"
    : progress.perNode.map(([node, count]) => `${node}:${count}`).join(" ");
  return `${time}: jobs ${progress.running} running, ${progress.done} done, ` +
    `${progress.failed} failed; moves ${progress.movesDone} done, ${progress.movesFailed} failed, ` +
    `${progress.balancerMoves} by the balancer; jobs per node ${nodes}`;
}
