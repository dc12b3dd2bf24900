/**
 * Who may do what on the local socket (PROTOCOL.md §10). Every connection starts with `auth`
 * (lib/jobs/usertoken.ts says how a token proves its user); the user is kept in the connection's
 * session, and every other command is refused until then. Then: anyone may run jobs and list
 * them; only a job's owner or root may follow it, write to it, signal or migrate it (openMosix
 * let users move their own processes, root any; the kernel refused others with EPERM); only
 * root may expel or bring jobs, and use any command not named here.
 *
 * Connections (LocalGuard): a user other than root may have at most `maxConnectionsPerUser`
 * connections authenticated at once (`om run` holds three per job); one more is refused at its
 * `auth`. A connection that has not authenticated within `authTimeoutMs` of its handshake is
 * closed, and at most `maxPending` wait to authenticate (one more closes the one that has waited
 * longest: a client that authenticates at once, as connectLocal does, is not caught by a flood),
 * so that connections nobody owns do not take the socket's places. Without SO_PEERCRED nothing
 * tells whose such a connection is. All this needs the server to say when a connection opens and
 * closes, and to close one on request (`connected`): without that, nothing is counted and nothing
 * closed.
 */
import { jsonBytes, jsonOf } from "../base/json.ts";
import { type ChannelClient, connectChannel } from "../channel/client.ts";
import type { Peer } from "../channel/handshake.ts";
import type { Handler } from "../channel/server.ts";
import type { Clock } from "../base/clock.ts";
import { checkToken, createToken, TokenLimitError, usersDirPath } from "./usertoken.ts";
import { userName } from "../base/users.ts";

/** Who may use a command: everyone who authenticated, a job's owner (or root), root. */
export type Access = "anyone" | "owner" | "root";

/** The local socket's commands and who may use them; any other is root's. */
export const LOCAL_ACCESS: Readonly<Record<string, Access>> = {
  "ping": "anyone",
  "version": "anyone",
  "job.run": "anyone",
  "job.list": "anyone",
  "job.output": "owner",
  "job.input": "owner",
  "job.signal": "owner",
  "job.migrate": "owner",
  "job.place": "owner",
  "status.cluster": "anyone",
  "node.expel": "root",
  "node.bring": "root",
};

/** What a refused command was about to do to a job, for its message. */
const VERBS: Readonly<Record<string, string>> = {
  "job.output": "follow",
  "job.input": "write to",
  "job.signal": "signal",
  "job.migrate": "migrate",
  "job.place": "place",
};

const UID = "uid";

/**
 * Connections one user other than root may have authenticated on the local socket at once: the
 * three of an `om run` (output, input, signals) for each of the jobs one user may have
 * (MAX_JOBS_PER_USER of lib/jobs/deputy.ts, 256).
 */
export const MAX_CONNECTIONS_PER_USER = 768;
/** How long a local connection has, after its handshake, to authenticate. */
export const AUTH_TIMEOUT_MS = 5000;
/** Local connections that may wait to authenticate at once; one more closes the oldest. */
export const MAX_PENDING = 256;

/** The daemon's local control socket in the state tree `root`. */
export function localSocketPath(root: string): string {
  return `${root}/omdiscd.sock`;
}

/** The uid a local connection authenticated as; undefined before `auth`. */
export function sessionUid(peer: Peer): number | undefined {
  const uid = peer.session?.get(UID);
  return typeof uid === "number" ? uid : undefined;
}

/** The job id of an owner command's body; undefined when there is none (the handler says so). */
function jobIdOf(body: Uint8Array): number | undefined {
  try {
    const id: unknown = jsonOf<{ id?: unknown } | null>(body)?.id;
    return typeof id === "number" && Number.isInteger(id) && id > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@linkcode LocalGuard}. */
export interface LocalGuardOptions {
  /** The users directory (`$OM_ROOT/users`). */
  readonly usersDir: string;
  readonly clock: Clock;
  /** The uid of a job of this node, undefined for no such job. */
  readonly ownerOf: (id: number) => number | undefined;
  /** Default MAX_CONNECTIONS_PER_USER. */
  readonly maxConnectionsPerUser?: number;
  /** Default AUTH_TIMEOUT_MS. */
  readonly authTimeoutMs?: number;
  /** Default MAX_PENDING. */
  readonly maxPending?: number;
}

/** The guard's counters (the local socket's `stats`). */
export interface LocalGuardStats {
  /** `auth` refused: its user had maxConnectionsPerUser connections authenticated. */
  readonly connectionsRefused: number;
  /** Connections closed for not authenticating within authTimeoutMs. */
  readonly authTimeouts: number;
  /** `auth` refused for the bound on token files (lib/jobs/usertoken.ts). */
  readonly tokensRefused: number;
  /** Connections closed unauthenticated because maxPending others waited to authenticate. */
  readonly pendingClosed: number;
}

/** A connection the server told the guard of (`connected`). */
interface Tracked {
  readonly close: (reason: string) => void;
  readonly stopTimer: () => void;
  /** The user it authenticated as, once it did. */
  uid?: number;
}

/**
 * Who may do what on the local socket, and how many connections each user may hold (see the
 * header). `wrap` gives the handlers to serve; the server calls `connected` for each connection.
 */
export class LocalGuard {
  readonly #options: LocalGuardOptions;
  readonly #maxPerUser: number;
  readonly #authTimeoutMs: number;
  /** The connections the server told of, by their session. */
  readonly #tracked = new WeakMap<Map<string, unknown>, Tracked>();
  /** Authenticated connections per user (those the server told of). */
  readonly #perUser = new Map<number, number>();
  /** The connections waiting to authenticate, oldest first. */
  readonly #pending = new Set<Tracked>();
  readonly #maxPending: number;
  readonly #stats = { connectionsRefused: 0, authTimeouts: 0, tokensRefused: 0, pendingClosed: 0 };

  constructor(options: LocalGuardOptions) {
    this.#options = options;
    this.#maxPerUser = options.maxConnectionsPerUser ?? MAX_CONNECTIONS_PER_USER;
    this.#authTimeoutMs = options.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    this.#maxPending = options.maxPending ?? MAX_PENDING;
  }

  /** The guard's counters, now. */
  get stats(): LocalGuardStats {
    return { ...this.#stats };
  }

  /** Authenticated connections of user `uid` now (of those the server told of). */
  connectionsOf(uid: number): number {
    return this.#perUser.get(uid) ?? 0;
  }

  /**
   * The server's hook: a connection's handshake is done; `close` ends it (with a reason for the
   * peer). Starts its time to authenticate; returns what to call once it has closed.
   */
  connected(peer: Peer, close: (reason: string) => void): () => void {
    const session = peer.session;
    if (!session) return () => {};
    const ms = this.#authTimeoutMs;
    const tracked: Tracked = {
      close,
      stopTimer: this.#options.clock.after(ms, () => {
        if (tracked.uid !== undefined) return;
        this.#pending.delete(tracked);
        this.#stats.authTimeouts++;
        close(`Cannot serve this connection: no auth within ${ms} ms`);
      }),
    };
    this.#tracked.set(session, tracked);
    this.#pending.add(tracked);
    if (this.#pending.size > this.#maxPending) {
      const [oldest] = this.#pending;
      this.#pending.delete(oldest);
      oldest.stopTimer();
      this.#stats.pendingClosed++;
      oldest.close(
        `Cannot serve this connection: ${this.#maxPending} others wait to authenticate`,
      );
    }
    return () => {
      tracked.stopTimer();
      this.#pending.delete(tracked);
      this.#tracked.delete(session);
      if (tracked.uid === undefined) return;
      const left = this.connectionsOf(tracked.uid) - 1;
      if (left > 0) this.#perUser.set(tracked.uid, left);
      else this.#perUser.delete(tracked.uid);
    };
  }

  /**
   * Wraps the local socket's handlers (built-ins included: pass them all) in the rules of the
   * header and adds `auth`.
   */
  wrap(handlers: ReadonlyMap<string, Handler>): Map<string, Handler> {
    const guarded = new Map<string, Handler>();
    for (const [command, handler] of handlers) {
      const access = LOCAL_ACCESS[command] ?? "root";
      guarded.set(command, async (body, peer) => {
        await this.#check(command, access, body, peer);
        return await handler(body, peer);
      });
    }
    guarded.set("auth", (body, peer) => this.#auth(body, peer));
    return guarded;
  }

  async #check(command: string, access: Access, body: Uint8Array, peer: Peer): Promise<void> {
    const uid = sessionUid(peer);
    if (uid === undefined) {
      throw new Error(`Cannot run "${command}": not authenticated (send auth first)`);
    }
    if (uid !== 0 && access === "root") {
      throw new Error(`Cannot run "${command}": Operation not permitted (root only)`);
    }
    if (uid !== 0 && access === "owner") {
      const id = jobIdOf(body);
      const owner = id === undefined ? undefined : this.#options.ownerOf(id);
      if (owner !== undefined && owner !== uid) {
        throw new Error(
          `Cannot ${VERBS[command] ?? "use"} job ${id}: Operation not permitted ` +
            `(it belongs to user ${await userName(owner)})`,
        );
      }
    }
  }

  async #auth(body: Uint8Array, peer: Peer): Promise<Uint8Array> {
    if (!peer.session) throw new Error(`Cannot authenticate: this connection keeps no session`);
    const known = sessionUid(peer);
    if (known !== undefined) throw new Error(`Cannot authenticate: already uid ${known}`);
    let token: unknown;
    try {
      token = jsonOf<{ token?: unknown } | null>(body)?.token;
    } catch { /* below */ }
    if (typeof token !== "string") {
      throw new TypeError("Cannot read the body of auth: fields missing or of the wrong type");
    }
    let uid: number;
    try {
      ({ uid } = await checkToken(this.#options.usersDir, token, {
        now: this.#options.clock.now(),
      }));
    } catch (error) {
      if (error instanceof TokenLimitError) this.#stats.tokensRefused++;
      throw error;
    }
    const tracked = this.#tracked.get(peer.session);
    if (tracked) {
      // Refused, it stays unauthenticated: closed when its time to authenticate is up.
      if (uid !== 0 && this.connectionsOf(uid) >= this.#maxPerUser) {
        this.#stats.connectionsRefused++;
        throw new Error(
          `Cannot authenticate: user ${await userName(uid)} has ${this.#maxPerUser} ` +
            `connections open, the most one user may have`,
        );
      }
      this.#perUser.set(uid, this.connectionsOf(uid) + 1);
      tracked.uid = uid;
      tracked.stopTimer();
      this.#pending.delete(tracked);
    }
    peer.session.set(UID, uid);
    return jsonBytes({ uid });
  }
}

/**
 * Wraps the local socket's handlers (built-ins included: pass them all) in the rules above and
 * adds `auth` (a LocalGuard's, for a server that does not tell of its connections).
 */
export function guardLocal(
  handlers: ReadonlyMap<string, Handler>,
  options: LocalGuardOptions,
): Map<string, Handler> {
  return new LocalGuard(options).wrap(handlers);
}

/** The local socket refused our token (the daemon's words in `message`). */
export class LocalAuthError extends Error {
  override name = "LocalAuthError";
}

/**
 * What a command says when {@linkcode connectLocal} to `root` failed with `error`: the daemon's
 * refusal, or that it cannot be reached.
 */
export function localFailure(error: unknown, root: string): string {
  return error instanceof LocalAuthError
    ? error.message
    : `Cannot reach om discover at ${localSocketPath(root)}: is it running?`;
}

/**
 * The client's side: connects to the local socket of the state tree `root` and authenticates
 * (a fresh token in `root/users`). Throws LocalAuthError when the token cannot be made or is
 * refused, and connectChannel's errors when the daemon cannot be reached.
 */
export async function connectLocal(
  root: string,
  options: { readonly timeoutMs?: number } = {},
): Promise<ChannelClient> {
  const client = await connectChannel({ path: localSocketPath(root), ...options });
  const dir = usersDirPath(root);
  let token: string | undefined;
  try {
    token = await createToken(dir);
    await client.request("auth", jsonBytes({ token }));
    return client;
  } catch (error) {
    if (token !== undefined) await Deno.remove(`${dir}/${token}`).catch(() => {});
    await client.close().catch(() => {});
    const why = error instanceof Error && "error" in error
      ? String((error as { error: unknown }).error)
      : error instanceof Error
      ? error.message
      : String(error);
    throw new LocalAuthError(`Cannot prove who you are to om discover (${dir}): ${why}`, {
      cause: error,
    });
  }
}
