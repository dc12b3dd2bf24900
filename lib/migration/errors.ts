/**
 * What a migration reports (PROTOCOL.md §11): its figures when it happened, a MigrationError with
 * the failed step and CRIU's log when it did not. A failure on another node arrives as a channel
 * error whose step and log path are fields of the reply (PROTOCOL.md §8.3, "Error details"), read
 * back here into the same MigrationError; nothing parses an error's text.
 */
import { RemoteError } from "../channel/client.ts";

/** Which step of a migration failed. */
export type MigrationStep =
  | "preflight"
  | "target check"
  | "pre-dump"
  | "dump"
  | "transfer"
  | "restore"
  | "commit";

const STEPS: readonly string[] = [
  "preflight",
  "target check",
  "pre-dump",
  "dump",
  "transfer",
  "restore",
  "commit",
];

/** Whether `value` names a step (for details that came over the wire). */
export function isMigrationStep(value: unknown): value is MigrationStep {
  return typeof value === "string" && STEPS.includes(value);
}

/** A migration that did not happen; the job goes on where it was. */
export class MigrationError extends Error {
  override name = "MigrationError";
  constructor(
    message: string,
    readonly step: MigrationStep | undefined,
    readonly logPath?: string,
  ) {
    super(message);
  }

  /** The fields that travel with this error's text in a channel reply (PROTOCOL.md §8.3). */
  get details(): { step?: MigrationStep; logPath?: string } {
    return {
      ...(this.step ? { step: this.step } : {}),
      ...(this.logPath ? { logPath: this.logPath } : {}),
    };
  }

  /**
   * The MigrationError another node answered with (its text, step and log path), or one with
   * `error`'s message and no step for any other failure (a lost connection, say).
   */
  static from(error: unknown): MigrationError {
    if (error instanceof MigrationError) return error;
    if (error instanceof RemoteError) {
      const { step, logPath } = error.details;
      return new MigrationError(
        error.error,
        isMigrationStep(step) ? step : undefined,
        typeof logPath === "string" ? logPath : undefined,
      );
    }
    return new MigrationError(error instanceof Error ? error.message : String(error), undefined);
  }
}

/** What a migration took, in milliseconds (`job.migrate`'s reply). */
export interface MigrationReport {
  readonly id: number;
  readonly from: number;
  readonly to: number;
  readonly frozenMs: number;
  readonly transferMs: number;
  readonly restoreMs: number;
  readonly totalMs: number;
  /** Image bytes sent. */
  readonly bytes: number;
}

/** Where a job is, as a node sees it (mig.status). */
export type MoveState = "running" | "restored" | "moving" | "none";

/** The text of any failure, for messages and logs. */
export const message = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
