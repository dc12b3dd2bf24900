/**
 * Faults a test can make a node's migration suffer, to see that every failure leaves the job
 * running where it was. A test passes them to the node it builds (lib/node.ts `startNode`, or
 * {@linkcode Migration}'s options); the product never sets them and reads nothing to find them.
 */

/** Every fault is off when absent. */
export interface MigrationFaults {
  /** The target waits this long before storing each `mig.file` chunk (to be killed mid-copy). */
  readonly fileDelayMs?: number;
  /** The target's restore limit for every job, in place of restoreLimitMs(pages). */
  readonly restoreLimitMs?: number;
  /** The target holds its first answer to a job's mig.commit this long, after committing. */
  readonly commitDelayMs?: number;
  /** The node that moved a job (mig.move) answers with an error, as if its answer were lost. */
  readonly loseMoveReply?: boolean;
  /**
   * The source tells the target the wrong answer to whether the job has a mount namespace of its
   * own (mig.pages `restore.mounts`), so the early restore does not fit the images (§11.4).
   */
  readonly wrongPlan?: boolean;
  /**
   * The target's page listener listens on port `listen` and tells the source `announce` in its
   * place (mig.pages' answer), so that a man in the middle on `announce` carries the page link.
   */
  readonly pagePortVia?: { readonly listen: number; readonly announce: number };
}

/** Reads faults from JSON (a test tool's argument); throws TypeError on anything unknown. */
export function parseFaults(text: string): MigrationFaults {
  const value = JSON.parse(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot use faults ${text}: not an object`);
  }
  const numbers = ["fileDelayMs", "restoreLimitMs", "commitDelayMs"];
  const flags = ["loseMoveReply", "wrongPlan"];
  const isPort = (n: unknown) => Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
  for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
    const via = v as { listen?: unknown; announce?: unknown } | null;
    if (name === "pagePortVia" && isPort(via?.listen) && isPort(via?.announce)) continue;
    if (
      numbers.includes(name)
        ? typeof v === "number" && v >= 0
        : flags.includes(name) && typeof v === "boolean"
    ) continue;
    throw new TypeError(`Cannot use fault "${name}": ${JSON.stringify(v)}`);
  }
  return value as MigrationFaults;
}
