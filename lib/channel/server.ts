/**
 * The channel's server (PROTOCOL.md §8): it listens, does the handshake (handshake.ts) with each
 * connection, then answers its REQUESTs one at a time, in order, each with a REPLY that carries
 * the same sequence number and an error string ("" for success), one dispatcher answering unknown
 * commands with a clear error, in the manner of serf's IPC. Protocol errors, handshake timeouts,
 * sealed frames that do not open and idle connections close the one connection; connections past
 * the limits (in all, and per address) are refused; each is counted in the server's stats
 * (PROTOCOL.md §8.8). The same protocol also runs on a unix
 * socket (`path`), the daemon's local control socket (PROTOCOL.md §10): there is no key and no
 * access list, the socket file's mode says who may connect, the peer's address is "local", and
 * its handlers tell users apart (lib/jobs/localauth.ts) by what they keep in the connection's
 * `session`.
 */
import { jsonBytes } from "../base/json.ts";
import { type Acl, makeAcl } from "./access.ts";
import { type Clock, systemClock } from "../base/clock.ts";
import { FrameConn } from "./conn.ts";
import {
  FrameError,
  FrameLengthError,
  MAX_FRAME_SIZE,
  PROTOCOL_VERSION,
  REPLY_OVERHEAD,
  UnsupportedVersionError,
} from "./frame.ts";
import {
  DEFAULT_CHANNEL_PORT,
  frameLabel,
  noDelay,
  type Peer,
  Refusal,
  serverHandshake,
} from "./handshake.ts";
import type { ClusterKey } from "../base/key.ts";
import type { Logger } from "../base/log.ts";
import { peerIPv4 } from "./access.ts";
import { SealError } from "./seal.ts";
import { VERSION } from "../base/version.ts";

/** How long a new connection has to finish its handshake. */
export const DEFAULT_HELLO_TIMEOUT_MS = 5000;
/** Connections one channel server (TCP, or the local socket) serves at once. */
export const DEFAULT_MAX_CONNECTIONS = 1000;
/**
 * How long a TCP connection may go without a request after its handshake (from the handshake or
 * its last reply) before the server closes it with CLOSING. A client of lib/channel/client.ts
 * connects again by itself at its next request.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/**
 * TCP connections one peer address may have open at once: one host cannot take every place.
 * A node's guests each keep up to two connections to their home (requests and pings,
 * lib/migration/homelink.ts), so this leaves room for 64 guests of one home on one node.
 */
export const DEFAULT_MAX_PER_ADDRESS = 128;

/**
 * Connections that may be in their handshake at once: one more closes the oldest of them, so that
 * peers who connect and say nothing (from many addresses, or a local user's loop) hold no place
 * for long, while a real client, which finishes its handshake in milliseconds, gets through.
 */
export const DEFAULT_MAX_HANDSHAKING = 64;

/** Refusals in flight at once (each reads the HELLO it answers): past it, a refused one just closes. */
const MAX_REFUSING = 64;
/**
 * How long the server goes on reading (and dropping) a connection it refuses or closes: closing a
 * socket with unread bytes resets the connection, and the peer could lose the last frame.
 */
const LINGER_MS = 1000;

/**
 * The body of an error reply: the JSON of the error's `details` (a plain object of strings, such
 * as a failed migration's step and log path, PROTOCOL.md §8.3 "Error details"), or nothing.
 */
export function errorDetails(error: unknown): Uint8Array {
  const details = (error as { details?: unknown } | null)?.details;
  if (typeof details !== "object" || details === null || Array.isArray(details)) return EMPTY;
  const fields = Object.entries(details).filter(([, v]) => typeof v === "string");
  if (fields.length === 0) return EMPTY;
  return jsonBytes(Object.fromEntries(fields));
}

/** Answers one command: the request's body in, the reply's body out; a throw is an error reply. */
export type Handler = (body: Uint8Array, peer: Peer) => Promise<Uint8Array>;

/** The body of the `version` reply, as JSON. */
export interface VersionInfo {
  readonly om: string;
  readonly protocol: number;
  readonly node: number;
}

const EMPTY = new Uint8Array(0);

/**
 * The built-in commands: `ping` echoes its body; `version` answers the JSON of a VersionInfo,
 * e.g. `{"om":"0.1.0","protocol":2,"node":7}`.
 */
export function builtinHandlers(nodeId: number): Map<string, Handler> {
  const info: VersionInfo = { om: VERSION, protocol: PROTOCOL_VERSION, node: nodeId };
  return new Map<string, Handler>([
    ["ping", (body) => Promise.resolve(body)],
    ["version", () => Promise.resolve(jsonBytes(info))],
  ]);
}

/**
 * Runs one request through the handlers and returns the reply's error and body. Never throws:
 * an unknown command, a handler's throw, or a result too large for a frame become error texts.
 */
export async function dispatch(
  handlers: ReadonlyMap<string, Handler>,
  request: { readonly command: string; readonly body: Uint8Array; readonly peer: Peer },
): Promise<{ error: string; body: Uint8Array }> {
  const { command } = request;
  const handler = handlers.get(command);
  if (!handler) return { error: `unknown command "${command}"`, body: EMPTY };
  try {
    const body = await handler(request.body, request.peer);
    if (!(body instanceof Uint8Array)) {
      return { error: `command "${command}" returned no bytes`, body: EMPTY };
    }
    if (REPLY_OVERHEAD + body.length > MAX_FRAME_SIZE) {
      return {
        error: `reply to "${command}" of ${body.length} bytes exceeds the frame limit of ` +
          `${MAX_FRAME_SIZE}`,
        body: EMPTY,
      };
    }
    return { error: "", body };
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    return { error: text || `command "${command}" failed`, body: errorDetails(error) };
  }
}

/** The server's counters, live. */
export interface ChannelStats {
  /** Connections taken from the listener. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Handshakes completed. */
  accepted: number;
  /**
   * Handshakes refused: version, key, access list, too many connections in all or from one
   * address (or the client refused us).
   */
  refused: number;
  /** Connections closed for not speaking the protocol, including handshake timeouts. */
  garbage: number;
  /** Requests answered (with or without an error). */
  requests: number;
  /**
   * Connections closed because a frame after a keyed handshake did not open (altered, replayed,
   * reordered, dropped or injected on the way) or was not sealed.
   */
  tampered: number;
  /** Connections closed after the idle timeout without a request. */
  idle: number;
  /** Connections refused because their address had `maxPerAddress` open (also in `refused`). */
  perAddress: number;
  /**
   * Connections refused before the end of the handshake for a frame longer than a handshake
   * frame may be (also in `garbage`).
   */
  oversized: number;
  /** Connections closed in their handshake to make room, `maxHandshaking` being in theirs. */
  crowded: number;
}

/** Options of {@linkcode serveChannel}. */
export interface ServeChannelOptions {
  /**
   * A unix socket to listen on instead of TCP: a stale file there is removed first, the socket
   * is made mode `mode` and removed on close. No key, no access list.
   */
  readonly path?: string;
  /** The unix socket's mode; default 0600 (only its owner may connect). */
  readonly mode?: number;
  /** Address to listen on; default 0.0.0.0. */
  readonly hostname?: string;
  /** TCP port; default DEFAULT_CHANNEL_PORT, 0 for an ephemeral one. */
  readonly port?: number;
  /** The cluster key; with it, only peers that prove it are accepted, and every frame is sealed. */
  readonly key?: ClusterKey;
  /** This node's id, sent in WELCOME. */
  readonly nodeId: number;
  /** Who may connect. Applied whenever given; without it and without a key, loopback only. */
  readonly acl?: Acl;
  /** Commands besides (or replacing) the built-in ping and version. */
  readonly handlers?: ReadonlyMap<string, Handler>;
  readonly logger: Logger;
  /** Time a connection has to finish the handshake; default DEFAULT_HELLO_TIMEOUT_MS. */
  readonly helloTimeoutMs?: number;
  /**
   * Time a connection may go without a request after the handshake, then it gets CLOSING and is
   * closed; 0 for none. Default DEFAULT_IDLE_TIMEOUT_MS on TCP, none on a unix socket (whose
   * clients, such as `om run`, hold a connection for a job's whole life).
   */
  readonly idleTimeoutMs?: number;
  /**
   * Connections served at once; one more is refused ("too many connections") and closed at
   * once. Default DEFAULT_MAX_CONNECTIONS.
   */
  readonly maxConnections?: number;
  /**
   * TCP connections one peer address may have open at once; one more is refused ("too many
   * connections from ADDRESS"). Default DEFAULT_MAX_PER_ADDRESS; not applied on a unix socket.
   */
  readonly maxPerAddress?: number;
  /**
   * Connections in their handshake at once; one more closes the oldest of them. Default
   * DEFAULT_MAX_HANDSHAKING.
   */
  readonly maxHandshaking?: number;
  /**
   * Told of each connection once its handshake is done, with a way to refuse and close it; what it
   * returns is called when the connection ends. The local socket counts connections per user
   * with it (lib/jobs/localauth.ts LocalGuard).
   */
  readonly onConnection?: (peer: Peer, close: (reason: string) => void) => () => void;
  readonly clock?: Clock;
}

/** A running channel server. */
export interface ChannelServer {
  /** The port listened on (the real one when 0 was asked); 0 on a unix socket. */
  readonly port: number;
  readonly stats: Readonly<ChannelStats>;
  /** Stops listening and closes every connection; handlers still running are not awaited. */
  close(): Promise<void>;
}

/** The address a connection counts under: its dotted quad, or "local" on a unix socket. */
function addressOf(remote: Deno.Addr): string {
  return "hostname" in remote ? peerIPv4(remote.hostname) ?? remote.hostname : "local";
}

/** Listens for channel connections and serves each until it closes (PROTOCOL.md §8). */
export function serveChannel(options: ServeChannelOptions): ChannelServer {
  const hostname = options.hostname ?? "0.0.0.0";
  const { key, nodeId, logger, path } = options;
  if (path !== undefined && (key || options.acl)) {
    throw new TypeError("Cannot serve the channel on a unix socket with a key or access list");
  }
  const clock = options.clock ?? systemClock;
  const helloTimeoutMs = options.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
  const idleTimeoutMs = options.idleTimeoutMs ??
    (path === undefined ? DEFAULT_IDLE_TIMEOUT_MS : 0);
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const maxPerAddress = path === undefined
    ? options.maxPerAddress ?? DEFAULT_MAX_PER_ADDRESS
    : Infinity;
  const acl = path !== undefined
    ? undefined
    : options.acl ?? (key ? undefined : makeAcl({ members: () => new Set(), allowed: [] }));
  const handlers = new Map([...builtinHandlers(nodeId), ...(options.handlers ?? [])]);
  const stats: ChannelStats = {
    connections: 0,
    open: 0,
    accepted: 0,
    refused: 0,
    garbage: 0,
    requests: 0,
    tampered: 0,
    idle: 0,
    perAddress: 0,
    oversized: 0,
    crowded: 0,
  };
  let listener: Deno.Listener;
  try {
    listener = path !== undefined
      ? listenUnix(path, options.mode ?? 0o600)
      : Deno.listen({ hostname, port: options.port ?? DEFAULT_CHANNEL_PORT });
  } catch (error) {
    throw new Error(
      `Cannot listen for the channel on ${
        path ?? `${hostname}:${options.port ?? DEFAULT_CHANNEL_PORT}`
      }: ` + (error as Error).message,
      { cause: error },
    );
  }
  const maxHandshaking = options.maxHandshaking ?? DEFAULT_MAX_HANDSHAKING;
  const links = new Set<FrameConn>();
  const tasks = new Set<Promise<void>>();
  /** Connections in their handshake, oldest first. */
  const handshaking = new Set<FrameConn>();
  let refusing = 0;
  /** Connections open per peer address, and the addresses whose refusal was logged. */
  const perAddress = new Map<string, number>();
  const crowdedLogged = new Set<string>();
  let closed = false;
  let stopServing!: () => void;
  const closing = new Promise<undefined>((resolve) => stopServing = () => resolve(undefined));

  async function serve(link: FrameConn, remote: Deno.Addr): Promise<void> {
    const where = "hostname" in remote ? `${remote.hostname}:${remote.port}` : "local";
    let timedOut = false;
    const cancelTimer = clock.after(helloTimeoutMs, () => {
      timedOut = true;
      void link.refuse(`no handshake within ${helloTimeoutMs} ms`);
    });
    // After the handshake: closed when idle. Once CLOSING is sent, no request is read any more
    // (the client may send them again elsewhere); the link lingers, then closes.
    let idled = false;
    let cancelIdle = () => {};
    let cancelLinger = () => {};
    const watchIdle = () => {
      if (idleTimeoutMs <= 0) return;
      cancelIdle = clock.after(idleTimeoutMs, () => {
        idled = true;
        stats.idle++;
        logger.debug("channel: {where}: idle for {ms} ms, closing", { where, ms: idleTimeoutMs });
        void link.send({ type: "closing", reason: `idle for ${idleTimeoutMs} ms` })
          .catch(() => {});
        cancelLinger = clock.after(LINGER_MS, () => link.close());
      });
    };
    let open = false;
    let node: number | undefined;
    let ended = () => {};
    try {
      const peer = await serverHandshake(link, { remote, key, acl, nodeId });
      handshaking.delete(link);
      cancelTimer();
      if (timedOut) throw new Error("timed out");
      open = true;
      node = peer.nodeId;
      stats.accepted++;
      ended = options.onConnection?.(peer, (reason) => void link.refuse(reason)) ?? ended;
      logger.debug("channel: {where} (node {node}) connected", { where, node: peer.nodeId });
      watchIdle();
      while (true) {
        const frame = await link.next();
        if (idled) {
          if (frame === null) return;
          continue;
        }
        cancelIdle();
        if (frame === null) return;
        if (frame.type === "refused") {
          if (link.sealed) {
            // After a keyed handshake a client refuses only a frame of ours that did not open.
            stats.tampered++;
            logger.warn("channel: {where} (node {node}) closed: {reason}", {
              where,
              node,
              reason: frame.reason,
            });
          } else {
            logger.debug("channel: {where} closed: {reason}", { where, reason: frame.reason });
          }
          return;
        }
        if (frame.type !== "request") {
          throw new FrameError(
            `Cannot continue: unexpected ${frameLabel(frame)} after the handshake`,
          );
        }
        const reply = await Promise.race([
          dispatch(handlers, { command: frame.command, body: frame.body, peer }),
          closing,
        ]);
        if (reply === undefined) return;
        stats.requests++;
        await link.send({ type: "reply", seq: frame.seq, ...reply });
        watchIdle();
      }
    } catch (error) {
      if (closed || idled) return;
      if (timedOut) {
        stats.garbage++;
        logger.debug("channel: {where}: no handshake within {ms} ms", {
          where,
          ms: helloTimeoutMs,
        });
      } else if (error instanceof Refusal) {
        stats.refused++;
        if (error.sent === "us") await link.refuse(error.reason);
        logger.info("channel: {where} refused: {reason}{by}", {
          where,
          reason: error.reason,
          by: error.sent === "peer" ? " (by the peer)" : "",
        });
      } else if (error instanceof SealError) {
        // The peer's direction is broken; ours still seals, so the peer may learn why.
        stats.tampered++;
        await link.refuse(`protocol error: ${error.message}`, clock.sleep(LINGER_MS));
        logger.warn("channel: {where} (node {node}): {why}", { where, node, why: error.message });
      } else if (error instanceof FrameError || error instanceof UnsupportedVersionError) {
        stats.garbage++;
        if (!open && error instanceof FrameLengthError) stats.oversized++;
        await link.refuse(
          `protocol error: ${error.message}`,
          open ? clock.sleep(LINGER_MS) : undefined,
        );
        logger.debug("channel: {where}: garbage: {why}", { where, why: error.message });
      } else {
        if (!open) stats.garbage++;
        logger.debug("channel: {where}: {why}", { where, why: String(error) });
      }
    } finally {
      handshaking.delete(link);
      ended();
      cancelTimer();
      cancelIdle();
      cancelLinger();
      link.close();
    }
  }

  /**
   * Refuses a connection with `reason` at once: its HELLO is read first (LINGER_MS at most), as
   * closing a socket with unread bytes resets the connection and the client could lose the
   * refusal.
   */
  function refuseSoon(conn: Deno.Conn, reason: string): void {
    if (refusing >= MAX_REFUSING) {
      // A flood: no more buffers and tasks for it; the peer sees its connection close.
      conn.close();
      return;
    }
    refusing++;
    const extra = new FrameConn(conn);
    links.add(extra);
    const task = (async () => {
      let cancel = () => {};
      await Promise.race([
        extra.next().catch(() => null),
        new Promise<void>((resolve) => cancel = clock.after(LINGER_MS, resolve)),
      ]);
      cancel();
      await extra.refuse(reason);
    })().finally(() => {
      refusing--;
      links.delete(extra);
      tasks.delete(task);
    });
    tasks.add(task);
  }

  let full = false;
  const acceptLoop = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed) return;
        logger.warn("channel: cannot accept: {error}", { error: String(error) });
        await new Promise<void>((resolve) => clock.after(100, resolve));
        continue;
      }
      if (closed) {
        conn.close();
        return;
      }
      stats.connections++;
      noDelay(conn);
      const address = addressOf(conn.remoteAddr);
      if (stats.open >= maxConnections) {
        // Each connection holds a descriptor: past the limit, none is served. Logged once until
        // a place frees up, so that a flood does not flood the log too.
        stats.refused++;
        if (!full) {
          full = true;
          logger.warn("channel: {max} connections open: refusing more until one closes", {
            max: maxConnections,
          });
        }
        refuseSoon(conn, `too many connections (${maxConnections} open)`);
        continue;
      }
      const fromAddress = perAddress.get(address) ?? 0;
      if (fromAddress >= maxPerAddress) {
        // One host may not take every place; logged once per address until one of its closes.
        stats.refused++;
        stats.perAddress++;
        if (!crowdedLogged.has(address)) {
          crowdedLogged.add(address);
          logger.warn(
            "channel: {max} connections open from {address}: refusing more from it until one closes",
            { max: maxPerAddress, address },
          );
        }
        refuseSoon(conn, `too many connections from ${address} (${maxPerAddress} open)`);
        continue;
      }
      stats.open++;
      perAddress.set(address, fromAddress + 1);
      const link = new FrameConn(conn);
      links.add(link);
      if (handshaking.size >= maxHandshaking) {
        const oldest = handshaking.values().next().value!;
        handshaking.delete(oldest);
        stats.crowded++;
        oldest.close();
      }
      handshaking.add(link);
      const task = serve(link, conn.remoteAddr).finally(() => {
        stats.open--;
        full = false;
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left > 0) perAddress.set(address, left);
        else perAddress.delete(address);
        crowdedLogged.delete(address);
        links.delete(link);
        tasks.delete(task);
      });
      tasks.add(task);
    }
  })();

  return {
    port: "port" in listener.addr ? listener.addr.port : 0,
    stats,
    async close() {
      if (closed) return;
      closed = true;
      stopServing();
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const link of links) link.close();
      await acceptLoop;
      await Promise.allSettled([...tasks]);
      if (path !== undefined) await Deno.remove(path).catch(() => {});
    },
  };
}

/** Removes a stale socket file, listens on `path`, and gives the socket `mode`. */
function listenUnix(path: string, mode: number): Deno.Listener {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const listener = Deno.listen({ transport: "unix", path });
  try {
    Deno.chmodSync(path, mode);
  } catch (error) {
    listener.close();
    throw error;
  }
  return listener;
}
