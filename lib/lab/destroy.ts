/**
 * Removing a lab: its daemons, whatever else runs in its nodes, its namespaces, its cgroups and
 * its directory, exactly as lab.json lists them and nothing else. When a step fails, the others
 * are still done and lab.json keeps what remains, so `om lab down` can be run again.
 */
import type { WaitClock } from "../base/clock.ts";
import { type Lab, type LabLog, saveLab } from "./record.ts";
import { killNodeProcesses, removeCgroups } from "./cgroups.ts";
import { removeNamespaces } from "./netns.ts";
import { stopDaemon } from "./daemons.ts";

/** Options of {@linkcode destroyLab}. */
export interface DestroyOptions {
  /** How long each daemon has to exit after SIGTERM before SIGKILL; default 3000 ms. */
  readonly graceMs?: number;
  readonly log?: LabLog;
  readonly clock?: WaitClock;
}

/**
 * Removes a lab: stops the daemons (SIGTERM, then SIGKILL after the grace time), kills what is
 * left in the nodes' cgroups, deletes the namespaces, the cgroups and the directory that
 * lab.json lists, and nothing else. A namespace that was replaced by another of the same name
 * is left alone. When a step fails, the rest is still done, lab.json keeps what remains (so
 * `om lab down` can be run again), and an Error naming every failure is thrown.
 */
export async function destroyLab(lab: Lab, options: DestroyOptions = {}): Promise<void> {
  const log = options.log ?? (() => {});
  const { record } = lab;
  const failures: string[] = [];

  await Promise.all(record.nodes.map(async (node) => {
    try {
      await stopDaemon(lab, node.index, { graceMs: options.graceMs, clock: options.clock });
    } catch (error) {
      failures.push(`node ${node.index}: ${(error as Error).message}`);
    }
  }));

  // Whatever else runs in the nodes' groups (om lab exec) goes too, or the groups stay busy.
  try {
    await killNodeProcesses(lab, options.clock);
  } catch (error) {
    failures.push((error as Error).message);
  }
  failures.push(...await removeNamespaces(lab, log));
  failures.push(...await removeCgroups(lab, options.clock));

  if (failures.length) {
    await saveLab(lab).catch(() => {});
    throw new Error(`Cannot remove lab "${record.name}" entirely: ${failures.join("; ")}`);
  }
  for (const entry of [...record.made].reverse()) {
    if (entry.kind === "dir") await Deno.remove(entry.path, { recursive: true }).catch(notFound);
  }
}

/** Lets a "not found" pass (it is gone already, as wanted) and throws anything else. */
function notFound(error: unknown): void {
  if (!(error instanceof Deno.errors.NotFound)) throw error;
}
