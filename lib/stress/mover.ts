/**
 * How om stress moves a job: the request `om migrate PID NODE` makes (`job.migrate` on this
 * node's local socket, PROTOCOL.md §10-11), sent by om stress itself so that it gets the move's
 * figures (frozen, total milliseconds) and, for a failure, its step and CRIU log as fields, not as
 * words to parse. One connection per move: moves of different jobs go on at the same time.
 */
import { jsonBytes, jsonOf } from "../base/json.ts";
import { connectLocal } from "../jobs/localauth.ts";
import { MigrationError, type MigrationReport } from "../migration/errors.ts";

/** Moves job `id` to node `to` (or home); throws a MigrationError (step and log when known). */
export type Migrate = (id: number, to: number | "home") => Promise<MigrationReport>;

/** The real {@linkcode Migrate}, through the om discover of state tree `root`. */
export function localMigrate(root: string): Migrate {
  return async (id, to) => {
    let client;
    try {
      client = await connectLocal(root, { timeoutMs: 5000 });
    } catch (error) {
      throw new MigrationError(
        `Cannot migrate job ${id}: cannot reach om discover: ${(error as Error).message}`,
        undefined,
      );
    }
    try {
      const reply = await client.request("job.migrate", jsonBytes({ id, to }), { timeoutMs: 0 });
      return jsonOf<MigrationReport>(reply);
    } catch (error) {
      throw MigrationError.from(error);
    } finally {
      await client.close().catch(() => {});
    }
  };
}
