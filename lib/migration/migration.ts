/**
 * Moving a job between nodes (openMosix's migration, PROTOCOL.md §11) with CRIU: stop-and-copy,
 * or iterative pre-copy where the kernel tracks dirty memory (lib/migration/rounds.ts). Each node
 * plays four roles, each a class of its own, which this file builds and wires together:
 * - the home (lib/migration/home.ts): where `om run` waits; decides every move of its jobs and
 *   keeps their books (where each runs, its output from there);
 * - the source (lib/migration/source.ts): the node a job runs on, which dumps and sends it;
 * - the target (lib/migration/target.ts): the node it comes to, which receives, restores and
 *   lets it run at the commit;
 * - the guests' host (lib/migration/guests.ts): runs jobs of other homes, and sends them on
 *   when their home asks.
 * The channel's commands are a thin table over these (lib/migration/handlers.ts). Stdin across a
 * move is in lib/migration/stdio.ts, the image files in files.ts, the page link in pagelink.ts,
 * pagelistener.ts, pagerelay.ts and pageseal.ts (sealed records), and pagereceiver.ts, the time limits in limits.ts. Nothing here prints: errors and results go back
 * to the caller.
 */
import type { ChannelClient } from "../channel/client.ts";
import type { Handler } from "../channel/server.ts";
import type { Job } from "../jobs/table.ts";
import type { Logger } from "../base/log.ts";
import type { MigrationReport, MoveState } from "./errors.ts";
import type { MigrationFaults } from "./faults.ts";
import { CriuAccess, type RoleContext } from "./context.ts";
import { Source } from "./source.ts";
import { Target } from "./target.ts";
import { Home, type HomeDeputy } from "./home.ts";
import { Guests, type GuestView } from "./guests.ts";
import { channelHandlers, localHandlers } from "./handlers.ts";
import type { MoveCause, MoveLog } from "./movelog.ts";

/** Options of {@linkcode Migration}. */
export interface MigrationOptions {
  readonly nodeId: number;
  /** `$OM_ROOT`: images under `migrations/`, guest records under `jobs/`. */
  readonly root: string;
  /** The jobs of this home node (lib/jobs/deputy.ts). */
  readonly deputy: HomeDeputy;
  readonly logger: Logger;
  /** The criu binary (`$OM_CRIU` or PATH), undefined when there is none. */
  readonly criuBinary: string | undefined;
  /** Opens the channel to node `id` (`address`: where it was last heard from, if known). */
  readonly connect: (id: number, address?: string) => Promise<ChannelClient>;
  /** Whether this node refuses guests (admin/block). */
  readonly blocked: () => Promise<boolean>;
  readonly env?: (name: string) => string | undefined;
  /**
   * How long a job taken by mig.begin waits here for mig.restore before its images are dropped
   * (default STALE_INCOMING_MS); tests shorten it.
   */
  readonly staleMs?: number;
  /**
   * Whether the cluster has a key: without one this node moves no job anywhere and takes none
   * (lib/migration/keyless.ts); its moves fail with NEEDS_KEY before anything is frozen.
   */
  readonly keyed: boolean;
  /** Whether root's jobs from other nodes may come here (root_guests); default yes. */
  readonly rootGuests?: () => boolean;
  /** Faults a test makes this node's migrations suffer (lib/migration/faults.ts); none by default. */
  readonly faults?: MigrationFaults;
  /** Where the home enters the moves of this node's jobs (lib/migration/movelog.ts); optional. */
  readonly moves?: MoveLog;
}

/** Every role of this node in the moves of jobs, wired together. */
export class Migration {
  readonly #home: Home;
  readonly #target: Target;
  readonly #guests: Guests;

  constructor(options: MigrationOptions) {
    const context: RoleContext = {
      nodeId: options.nodeId,
      root: options.root,
      dir: `${options.root}/migrations`,
      logger: options.logger,
      connect: options.connect,
      criu: new CriuAccess(options.criuBinary),
      faults: options.faults ?? {},
    };
    const source = new Source(context);
    this.#guests = new Guests(context, source);
    this.#home = new Home(context, {
      keyed: options.keyed,
      deputy: options.deputy,
      source,
      stateHere: (id) => this.state(id),
      moves: options.moves,
    });
    this.#target = new Target(context, {
      env: options.env,
      rootGuests: options.rootGuests,
      staleMs: options.staleMs,
      links: {
        blocked: options.blocked,
        hosts: (id) => this.#guests.has(id) || this.#home.homecoming(id),
        runs: (id) => this.#guests.runs(id) || this.#home.homecoming(id),
        awaitsHome: (id) => this.#home.awaits(id),
        land: async (incoming, copy) => {
          if (incoming.home === options.nodeId) this.#home.welcome(incoming, copy);
          else await this.#guests.host(incoming, copy);
        },
      },
    });
  }

  /** How a job that runs elsewhere gets its stdin (the deputy's RemoteJobs). */
  input(job: Job, data: Uint8Array | undefined, eof: boolean): Promise<void> {
    return this.#home.input(job, data, eof);
  }

  /** How a job that runs elsewhere gets a signal (the deputy's RemoteJobs). */
  signal(job: Job, signal: Deno.Signal): Promise<Deno.Signal> {
    return this.#home.signal(job, signal);
  }

  /**
   * Moves job `id` (a job of this home node) to node `to`, or home; throws MigrationError
   * (lib/migration/home.ts). `cause`: who asked (the log of moves).
   */
  migrate(id: number, to: number | "home", cause?: MoveCause): Promise<MigrationReport> {
    return this.#home.migrate(id, to, cause);
  }

  /**
   * Asks the home of guest `id` to move it (lib/migration/guests.ts); `by`: this node's balancer
   * or expel, which the home enters in its log of moves.
   */
  requestMove(
    id: number,
    to: number | "home",
    by?: "balancer" | "expel",
  ): Promise<MigrationReport> {
    return this.#guests.requestMove(id, to, by);
  }

  /** The guests running here now. */
  guests(): GuestView[] {
    return this.#guests.list();
  }

  /** How many jobs are on their way here (past mig.begin, not yet let run). */
  arriving(): number {
    return this.#target.arriving();
  }

  /** Removes what migrations of an earlier daemon left; call it before serving (Target). */
  sweepLeftovers(): number {
    return this.#target.sweepLeftovers();
  }

  /** Where job `id` is as this node sees it (mig.status). */
  state(id: number): MoveState {
    if (this.#guests.moving(id)) return "moving";
    const arriving = this.#target.state(id);
    if (arriving === "restored") return "restored";
    if (arriving === "running" || this.#guests.runs(id) || this.#home.homecoming(id)) {
      return "running";
    }
    return "none";
  }

  /** The local socket's `job.migrate`. */
  localHandlers(): Map<string, Handler> {
    return localHandlers(this.#home);
  }

  /** The TCP channel's migration commands and the guest jobs' input and signals. */
  channelHandlers(): Map<string, Handler> {
    return channelHandlers({
      home: this.#home,
      target: this.#target,
      guests: this.#guests,
      state: (id) => this.state(id),
    });
  }

  /** Closes the relays; guest jobs go on. */
  async close(): Promise<void> {
    await this.#home.close();
  }
}
