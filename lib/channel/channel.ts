/**
 * The node-to-node channel (PROTOCOL.md §8): a TCP connection per peer, versioned and boring in
 * the manner of serf's IPC. The client says HELLO with its protocol version and a nonce; the
 * server answers WELCOME (or REFUSED and closes); with a cluster key both sides then prove they
 * hold it (mutual challenge-response over fresh nonces, so a recorded conversation cannot be
 * replayed). After that the client sends REQUESTs (a command and a sequence number) and the
 * server answers each with a REPLY (the same sequence number and an error string, "" for
 * success), one dispatcher answering unknown commands with a clear error. Frames: lib/channel/frame.ts.
 *
 * The same protocol also runs on a unix socket (`path`), the daemon's local control socket
 * (PROTOCOL.md §10): there is no key and no access list, the socket file's mode says who may
 * connect, the peer's address is "local", and its handlers tell users apart (lib/jobs/localauth.ts)
 * by what they keep in the connection's `session`.
 */
import { type Acl, makeAcl, peerIPv4 } from "./access.ts";
import { type Clock, systemClock } from "../base/clock.ts";
import { Writer } from "../base/cursor.ts";
import {
  type Frame,
  FrameConn,
  FrameError,
  HelloFlags,
  MAX_FRAME_SIZE,
  NONCE_SIZE,
  PROOF_SIZE,
  PROTOCOL_VERSION,
  REPLY_OVERHEAD,
  UnsupportedVersionError,
} from "./frame.ts";
import { type ClusterKey, sameMac, sign } from "../base/key.ts";
import type { Logger } from "../base/log.ts";
import { VERSION } from "../base/version.ts";

/** The channel's TCP port (discovery's UDP port is 20301). */
export const DEFAULT_CHANNEL_PORT = 20302;
/** How long a new connection has to finish its handshake. */
export const DEFAULT_HELLO_TIMEOUT_MS = 5000;
/** Connections one channel server (TCP, or the local socket) serves at once. */
export const DEFAULT_MAX_CONNECTIONS = 1000;
/** The client's default limit for connecting, the handshake, and each request. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

/**
 * Who sent a request: its address (a dotted quad) and port, the node id its HELLO announced, and
 * whether it proved the cluster key.
 */
export interface Peer {
  readonly address: string;
  readonly port: number;
  readonly nodeId: number;
  readonly authenticated: boolean;
  /**
   * What the handlers keep about this connection (e.g. the local socket's user): empty at the
   * handshake, the same object for every request of the connection, gone with it.
   */
  readonly session?: Map<string, unknown>;
}

/** Answers one command: the request's body in, the reply's body out; a throw is an error reply. */
export type Handler = (body: Uint8Array, peer: Peer) => Promise<Uint8Array>;

/** The body of the `version` reply, as JSON. */
export interface VersionInfo {
  readonly om: string;
  readonly protocol: number;
  readonly node: number;
}

/** The peer answered a request with an error; `error` is its text, word for word. */
export class RemoteError extends Error {
  override name = "RemoteError";
  constructor(readonly command: string, readonly error: string, peer: string) {
    super(`Cannot run "${command}" on ${peer}: ${error}`);
  }
}

/** The connection was refused (REFUSED from the peer, or the peer failed our key check). */
export class ChannelRefusedError extends Error {
  override name = "ChannelRefusedError";
  constructor(readonly reason: string, peer: string) {
    super(`Cannot talk to ${peer}: ${reason}`);
  }
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const LABELS = {
  server: encoder.encode("om-channel-server"),
  client: encoder.encode("om-channel-client"),
};

/**
 * A side's proof that it holds the key: HMAC-SHA-256(key, "om-channel-server" || client nonce ||
 * server nonce) for the server, HMAC-SHA-256(key, "om-channel-client" || server nonce || client
 * nonce) for the client. The labels and the order keep one side's proof from serving as the
 * other's.
 */
export function channelProof(
  key: ClusterKey,
  side: "server" | "client",
  nonces: { readonly client: Uint8Array; readonly server: Uint8Array },
): Promise<Uint8Array> {
  const label = LABELS[side];
  const [first, second] = side === "server"
    ? [nonces.client, nonces.server]
    : [nonces.server, nonces.client];
  return sign(
    key,
    new Writer(label.length + 2 * NONCE_SIZE).raw(label).raw(first).raw(second).done(),
  );
}

/**
 * The built-in commands: `ping` echoes its body; `version` answers the JSON of a VersionInfo,
 * e.g. `{"om":"0.1.0","protocol":1,"node":7}`.
 */
export function builtinHandlers(nodeId: number): Map<string, Handler> {
  const info: VersionInfo = { om: VERSION, protocol: PROTOCOL_VERSION, node: nodeId };
  return new Map<string, Handler>([
    ["ping", (body) => Promise.resolve(body)],
    ["version", () => Promise.resolve(encoder.encode(JSON.stringify(info)))],
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
    return { error: text || `command "${command}" failed`, body: EMPTY };
  }
}

const nonce = () => crypto.getRandomValues(new Uint8Array(NONCE_SIZE));

/**
 * Turns Nagle's algorithm off on a TCP connection: every frame is written whole, and with
 * several requests in flight Nagle held each small frame back until the previous one was
 * acknowledged, which the peer delays up to 40 ms (seen here: 8 small `mig.file` requests in
 * flight took 50 ms, one after the other 7 ms).
 */
function noDelay(conn: Deno.Conn): void {
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
}
const label = (frame: Frame) => frame.type.toUpperCase();

/** The server's counters, live. */
export interface ChannelStats {
  /** Connections taken from the listener. */
  connections: number;
  /** Connections open now. */
  open: number;
  /** Handshakes completed. */
  accepted: number;
  /** Handshakes refused: version, key, access list (or the client refused us). */
  refused: number;
  /** Connections closed for not speaking the protocol, including handshake timeouts. */
  garbage: number;
  /** Requests answered (with or without an error). */
  requests: number;
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
  /** The cluster key; with it, only peers that prove it are accepted. */
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
   * Connections served at once; one more is refused ("too many connections") and closed at
   * once. Default DEFAULT_MAX_CONNECTIONS.
   */
  readonly maxConnections?: number;
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

/** The handshake ended in a refusal; `sent` tells whether we send REFUSED or the peer did. */
class Refusal extends Error {
  constructor(readonly reason: string, readonly sent: "us" | "peer") {
    super(reason);
  }
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
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
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
  const links = new Set<FrameConn>();
  const tasks = new Set<Promise<void>>();
  let closed = false;
  let stopServing!: () => void;
  const closing = new Promise<undefined>((resolve) => stopServing = () => resolve(undefined));

  async function handshake(link: FrameConn, remote: Deno.Addr): Promise<Peer> {
    let hello: Frame | null;
    try {
      hello = await link.next();
    } catch (error) {
      if (error instanceof UnsupportedVersionError) throw new Refusal(error.message, "us");
      throw error;
    }
    if (hello === null) throw new FrameError("Cannot start: connection closed before HELLO");
    if (hello.type !== "hello") {
      throw new FrameError(`Cannot start: expected HELLO, got ${label(hello)}`);
    }
    const clientHasKey = (hello.flags & HelloFlags.key) !== 0;
    if (key && !clientHasKey) {
      throw new Refusal("authentication failed: this node requires the cluster key", "us");
    }
    if (!key && clientHasKey) {
      throw new Refusal("authentication failed: this node has no cluster key", "us");
    }
    const address = "hostname" in remote ? peerIPv4(remote.hostname) ?? remote.hostname : "local";
    if (acl && !acl(address)) {
      throw new Refusal(
        `not allowed: ${address} is not a cluster member nor in the allowed networks`,
        "us",
      );
    }
    const nonces = { client: hello.nonce, server: nonce() };
    await link.send({
      type: "welcome",
      version: PROTOCOL_VERSION,
      nodeId,
      nonce: nonces.server,
      proof: key ? await channelProof(key, "server", nonces) : new Uint8Array(PROOF_SIZE),
    });
    if (key) {
      const auth = await link.next();
      if (auth === null) throw new FrameError("Cannot start: connection closed before AUTH");
      if (auth.type === "refused") throw new Refusal(auth.reason, "peer");
      if (auth.type !== "auth") {
        throw new FrameError(`Cannot start: expected AUTH, got ${label(auth)}`);
      }
      if (!sameMac(auth.proof, await channelProof(key, "client", nonces))) {
        throw new Refusal("authentication failed", "us");
      }
    }
    const port = "port" in remote ? remote.port : 0;
    return {
      address,
      port,
      nodeId: hello.nodeId,
      authenticated: key !== undefined,
      session: new Map(),
    };
  }

  async function serve(link: FrameConn, remote: Deno.Addr): Promise<void> {
    const where = "hostname" in remote ? `${remote.hostname}:${remote.port}` : "local";
    let timedOut = false;
    const cancelTimer = clock.after(helloTimeoutMs, () => {
      timedOut = true;
      void link.refuse(`no handshake within ${helloTimeoutMs} ms`);
    });
    let open = false;
    try {
      const peer = await handshake(link, remote);
      cancelTimer();
      if (timedOut) throw new Error("timed out");
      open = true;
      stats.accepted++;
      logger.debug("channel: {where} (node {node}) connected", { where, node: peer.nodeId });
      while (true) {
        const frame = await link.next();
        if (frame === null) return;
        if (frame.type === "refused") {
          logger.debug("channel: {where} closed: {reason}", { where, reason: frame.reason });
          return;
        }
        if (frame.type !== "request") {
          throw new FrameError(`Cannot continue: unexpected ${label(frame)} after the handshake`);
        }
        const reply = await Promise.race([
          dispatch(handlers, { command: frame.command, body: frame.body, peer }),
          closing,
        ]);
        if (reply === undefined) return;
        stats.requests++;
        await link.send({ type: "reply", seq: frame.seq, ...reply });
      }
    } catch (error) {
      if (closed) return;
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
      } else if (error instanceof FrameError || error instanceof UnsupportedVersionError) {
        stats.garbage++;
        await link.refuse(`protocol error: ${error.message}`);
        logger.debug("channel: {where}: garbage: {why}", { where, why: error.message });
      } else {
        if (!open) stats.garbage++;
        logger.debug("channel: {where}: {why}", { where, why: String(error) });
      }
    } finally {
      cancelTimer();
      link.close();
    }
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
        const extra = new FrameConn(conn);
        links.add(extra);
        const task = (async () => {
          // Its HELLO is read first (1 s at most): closing a socket with unread bytes resets the
          // connection, and the client could lose the refusal.
          let cancel = () => {};
          await Promise.race([
            extra.next().catch(() => null),
            new Promise<void>((resolve) => cancel = clock.after(1000, resolve)),
          ]);
          cancel();
          await extra.refuse(`too many connections (${maxConnections} open)`);
        })().finally(() => {
          links.delete(extra);
          tasks.delete(task);
        });
        tasks.add(task);
        continue;
      }
      stats.open++;
      const link = new FrameConn(conn);
      links.add(link);
      const task = serve(link, conn.remoteAddr).finally(() => {
        stats.open--;
        full = false;
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

/** Options of {@linkcode connectChannel}: a `hostname` (TCP) or a `path` (unix socket). */
export interface ConnectChannelOptions {
  readonly hostname?: string;
  /** A unix socket to connect to instead of TCP (the daemon's local control socket). */
  readonly path?: string;
  /** Default DEFAULT_CHANNEL_PORT. */
  readonly port?: number;
  /** The cluster key, when the cluster uses one. */
  readonly key?: ClusterKey;
  /** This node's id for HELLO; 0 (the default) for a tool that is no node. */
  readonly nodeId?: number;
  /** Limit for connecting plus the handshake, and each request's default; 0 = none. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

/** An open channel to one peer. */
export interface ChannelClient {
  /** The peer's node id, from its WELCOME. */
  readonly nodeId: number;
  /** The address connected to (TCP); undefined on a unix socket. */
  readonly hostname?: string;
  /**
   * Sends a request and resolves to the reply's body. Rejects with RemoteError for an error
   * reply, ChannelRefusedError when the peer refuses, Deno.errors.TimedOut after the timeout (the
   * connection stays usable), RangeError for a command or body too large for a frame. Requests
   * may be issued without waiting; replies are matched by sequence number.
   */
  request(
    command: string,
    body?: Uint8Array,
    options?: { readonly timeoutMs?: number },
  ): Promise<Uint8Array>;
  /** Closes the connection; pending requests reject. */
  close(): Promise<void>;
}

interface Pending {
  readonly command: string;
  resolve(body: Uint8Array): void;
  reject(error: Error): void;
  cancel(): void;
}

/**
 * Connects to a peer's channel and does the handshake. Throws ChannelRefusedError when the peer
 * refuses (version, key, access list) or fails our key check, Deno.errors.TimedOut after
 * `timeoutMs`, and the connection's own error (e.g. Deno.errors.ConnectionRefused) otherwise.
 */
export async function connectChannel(options: ConnectChannelOptions): Promise<ChannelClient> {
  const port = options.port ?? DEFAULT_CHANNEL_PORT;
  const { path, hostname } = options;
  if ((path === undefined) === (hostname === undefined)) {
    throw new TypeError("Cannot connect the channel: give a hostname or a path, not both");
  }
  const where = path ?? `${hostname}:${port}`;
  const { key } = options;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  let link: FrameConn | undefined;
  let expire!: (error: Error) => void;
  const deadline = new Promise<never>((_, reject) => expire = reject);
  deadline.catch(() => {});
  const cancelTimer = timeoutMs > 0
    ? clock.after(timeoutMs, () => {
      expire(
        new Deno.errors.TimedOut(`Cannot talk to ${where}: no handshake within ${timeoutMs} ms`),
      );
      link?.close();
    })
    : () => {};
  let serverNodeId: number;
  try {
    const connecting: Promise<Deno.Conn> = path !== undefined
      ? Deno.connect({ transport: "unix", path })
      : Deno.connect({ hostname: hostname!, port, transport: "tcp" });
    connecting.catch(() => {});
    const conn = await Promise.race([connecting, deadline]).catch((error) => {
      connecting.then((late) => late.close(), () => {});
      throw error;
    });
    noDelay(conn);
    link = new FrameConn(conn);
    const handshake = async (link: FrameConn) => {
      const nonces: { client: Uint8Array; server: Uint8Array } = { client: nonce(), server: EMPTY };
      await link.send({
        type: "hello",
        version: PROTOCOL_VERSION,
        nodeId: options.nodeId ?? 0,
        flags: key ? HelloFlags.key : 0,
        nonce: nonces.client,
      });
      const welcome = await link.next();
      if (welcome === null) throw new Error(`Cannot talk to ${where}: closed during the handshake`);
      if (welcome.type === "refused") throw new ChannelRefusedError(welcome.reason, where);
      if (welcome.type !== "welcome") {
        throw new FrameError(`Cannot talk to ${where}: expected WELCOME, got ${label(welcome)}`);
      }
      if (welcome.version !== PROTOCOL_VERSION) {
        await link.refuse(new UnsupportedVersionError(welcome.version).message);
        throw new UnsupportedVersionError(welcome.version);
      }
      nonces.server = welcome.nonce;
      if (key) {
        if (!sameMac(welcome.proof, await channelProof(key, "server", nonces))) {
          await link.refuse("authentication failed");
          throw new ChannelRefusedError(
            "authentication failed (its proof does not match this node's cluster key)",
            where,
          );
        }
        await link.send({ type: "auth", proof: await channelProof(key, "client", nonces) });
      }
      return welcome.nodeId;
    };
    serverNodeId = await Promise.race([handshake(link), deadline]);
  } catch (error) {
    link?.close();
    throw error;
  } finally {
    cancelTimer();
  }
  return new Client(link, where, serverNodeId, timeoutMs, clock, hostname);
}

class Client implements ChannelClient {
  readonly #link: FrameConn;
  readonly #where: string;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #pending = new Map<number, Pending>();
  readonly #abandoned = new Set<number>();
  readonly #loop: Promise<void>;
  #seq = 0;
  #failure: Error | undefined;

  constructor(
    link: FrameConn,
    where: string,
    readonly nodeId: number,
    timeoutMs: number,
    clock: Clock,
    readonly hostname?: string,
  ) {
    this.#link = link;
    this.#where = where;
    this.#timeoutMs = timeoutMs;
    this.#clock = clock;
    this.#loop = this.#read();
  }

  async #read(): Promise<void> {
    try {
      while (true) {
        const frame = await this.#link.next();
        if (frame === null) throw new Error(`Cannot talk to ${this.#where}: connection closed`);
        if (frame.type === "refused") throw new ChannelRefusedError(frame.reason, this.#where);
        if (frame.type !== "reply") {
          throw new FrameError(`Cannot talk to ${this.#where}: unexpected ${label(frame)}`);
        }
        const waiting = this.#pending.get(frame.seq);
        if (!waiting) {
          if (this.#abandoned.delete(frame.seq)) continue;
          throw new FrameError(`Cannot talk to ${this.#where}: reply to unknown seq ${frame.seq}`);
        }
        this.#pending.delete(frame.seq);
        waiting.cancel();
        if (frame.error === "") waiting.resolve(frame.body);
        else waiting.reject(new RemoteError(waiting.command, frame.error, this.#where));
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#link.close();
    for (const waiting of this.#pending.values()) {
      waiting.cancel();
      waiting.reject(this.#failure);
    }
    this.#pending.clear();
  }

  request(
    command: string,
    body: Uint8Array = EMPTY,
    options: { readonly timeoutMs?: number } = {},
  ): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    const seq = this.#seq = (this.#seq + 1) >>> 0;
    return new Promise<Uint8Array>((resolve, reject) => {
      const ms = options.timeoutMs ?? this.#timeoutMs;
      const cancel = ms > 0
        ? this.#clock.after(ms, () => {
          this.#pending.delete(seq);
          this.#abandoned.add(seq);
          reject(
            new Deno.errors.TimedOut(
              `Cannot run "${command}" on ${this.#where}: no reply within ${ms} ms`,
            ),
          );
        })
        : () => {};
      this.#pending.set(seq, { command, resolve, reject, cancel });
      this.#link.send({ type: "request", seq, command, body }).catch((error) => {
        if (!this.#pending.delete(seq)) return;
        cancel();
        reject(error);
      });
    });
  }

  async close(): Promise<void> {
    this.#fail(new Error(`Cannot talk to ${this.#where}: the channel was closed`));
    await this.#loop;
  }
}
