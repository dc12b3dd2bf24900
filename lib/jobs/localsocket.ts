/**
 * The daemon's local control socket, `<root>/omdiscd.sock` (PROTOCOL.md §10): the deputy's job
 * commands and any others the node adds, behind lib/jobs/localauth.ts's rule of who may do what,
 * with its limits: connections in all (LOCAL_MAX_CONNECTIONS) and per user (LocalGuard), jobs
 * and unread output per user (the deputy), token files (swept every TOKEN_MAX_AGE_MS).
 */
import { builtinHandlers, type Handler, serveChannel } from "../channel/server.ts";
import type { Clock } from "../base/clock.ts";
import type { Logger } from "../base/log.ts";
import { LocalGuard, type LocalGuardStats, localSocketPath } from "./localauth.ts";
import { prepareUsersDir, sweepTokens, TOKEN_MAX_AGE_MS, usersDirPath } from "./usertoken.ts";
import type { Deputy, DeputyStats } from "./deputy.ts";

/**
 * Connections the local socket serves at once, all users together. Above the channel's TCP
 * default: every `om run` holds three, and one user may hold MAX_CONNECTIONS_PER_USER
 * (lib/jobs/localauth.ts) without taking every place.
 */
export const LOCAL_MAX_CONNECTIONS = 4096;

/** The local socket's counters: what omdiscd.stats shows under `local` (PROTOCOL.md §10). */
export interface LocalSocketStats extends LocalGuardStats, DeputyStats {
  /** Connections open now. */
  readonly open: number;
  /** Connections refused by the socket: LOCAL_MAX_CONNECTIONS open, or a bad handshake. */
  readonly refused: number;
}

/** A running local socket. */
export interface LocalSocket {
  /** Its counters, now. */
  readonly stats: LocalSocketStats;
  /** Stops the socket and the deputy. */
  close(): Promise<void>;
}

/**
 * Opens the local control socket `<root>/omdiscd.sock` with the deputy's job commands: mode
 * 0666, every user may connect, and proves who they are with a token in `<root>/users`
 * (lib/jobs/localauth.ts says who may then do what). Closing stops both.
 */
export function serveLocal(
  options: {
    root: string;
    nodeId: number;
    logger: Logger;
    clock: Clock;
    /** The jobs the socket's job commands act on. */
    deputy: Deputy;
    /** More commands for the socket (job.migrate, the balancer's). */
    more?: ReadonlyMap<string, Handler>;
    /** Connections in all; default LOCAL_MAX_CONNECTIONS. */
    maxConnections?: number;
  },
): LocalSocket {
  const { deputy, clock } = options;
  let server;
  let guard: LocalGuard;
  let stopSweep = () => {};
  try {
    // Users must reach the socket: the state tree's root is searchable by all.
    Deno.mkdirSync(options.root, { recursive: true });
    const root = Deno.statSync(options.root);
    if (((root.mode ?? 0) & 0o011) !== 0o011) {
      Deno.chmodSync(options.root, ((root.mode ?? 0) & 0o7777) | 0o011);
    }
    // ... but not the migrations' images (CRIU writes them 0644: the jobs' memory).
    Deno.mkdirSync(`${options.root}/migrations`, { recursive: true });
    Deno.chmodSync(`${options.root}/migrations`, 0o700);
    const usersDir = usersDirPath(options.root);
    prepareUsersDir(usersDir);
    guard = new LocalGuard({
      usersDir,
      clock,
      ownerOf: (id) => deputy.jobs.find(id)?.uid,
    });
    server = serveChannel({
      path: localSocketPath(options.root),
      mode: 0o666,
      nodeId: options.nodeId,
      logger: options.logger,
      maxConnections: options.maxConnections ?? LOCAL_MAX_CONNECTIONS,
      onConnection: (peer, close) => guard.connected(peer, close),
      handlers: guard.wrap(
        new Map([
          ...builtinHandlers(options.nodeId),
          ...deputy.handlers(),
          ...(options.more ?? []),
        ]),
      ),
    });
    // Tokens nobody used (a client that died, a user filling the directory) go.
    stopSweep = clock.every(TOKEN_MAX_AGE_MS, () => {
      void sweepTokens(usersDir, { now: clock.now() }).catch((error) =>
        options.logger.warn("Cannot sweep {dir}: {error}", { dir: usersDir, error: String(error) })
      );
    });
  } catch (error) {
    void deputy.close();
    throw error;
  }
  return {
    get stats(): LocalSocketStats {
      return {
        open: server.stats.open,
        refused: server.stats.refused,
        ...guard.stats,
        ...deputy.stats,
      };
    },
    async close() {
      stopSweep();
      await server.close();
      await deputy.close();
    },
  };
}
