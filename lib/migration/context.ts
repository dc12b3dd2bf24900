/**
 * What every role of a migration (lib/migration/source.ts, target.ts, home.ts, guests.ts) is
 * handed by lib/migration/migration.ts: who this node is, where its migrations keep their files,
 * how to reach another node, CRIU, the log, and the faults a test asked for.
 */
import type { ChannelClient } from "../channel/client.ts";
import type { Criu } from "../criu/run.ts";
import { CriuError } from "../criu/criuerror.ts";
import { preflight } from "../criu/preflight.ts";
import type { Logger } from "../base/log.ts";
import type { MigrationFaults } from "./faults.ts";

/** Monotonic milliseconds, for the figures of a migration. */
export const now = (): number => performance.now();

/** CRIU as the roles use it: the binary, and a preflight remembered for a minute. */
export class CriuAccess {
  readonly #binary: string | undefined;
  #preflightUntil = 0;

  /** `binary`: `$OM_CRIU` or the one on PATH; undefined when there is none. */
  constructor(binary: string | undefined) {
    this.#binary = binary;
  }

  /** The driver's handle; throws the CriuError every step would when there is no CRIU. */
  get criu(): Criu {
    if (!this.#binary) {
      throw new CriuError("Cannot use CRIU: no criu on PATH and OM_CRIU not set", {
        step: "check",
        hint: "install CRIU 4 or later, or set OM_CRIU (scripts/install-criu does both)",
      });
    }
    return { binary: this.#binary, now };
  }

  /** `criu check` and version, remembered for a minute once they passed. */
  async preflight(logDir: string): Promise<{ version: string; memDirtyTrack: boolean }> {
    const found = await preflight(this.criu, this.#preflightUntil > now() ? {} : { logDir });
    this.#preflightUntil = now() + 60_000;
    return { version: found.version.text, memDirtyTrack: found.memDirtyTrack };
  }
}

/** What the roles share. */
export interface RoleContext {
  readonly nodeId: number;
  /** `$OM_ROOT`: guest records under `jobs/`. */
  readonly root: string;
  /** `$OM_ROOT/migrations`: `<id>-out` on a source, `<id>-in` on a target. */
  readonly dir: string;
  readonly logger: Logger;
  /** Opens the channel to node `id` (`address`: where it was last heard from, if known). */
  readonly connect: (id: number, address?: string) => Promise<ChannelClient>;
  readonly criu: CriuAccess;
  readonly faults: MigrationFaults;
}
