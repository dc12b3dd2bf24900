/**
 * The channel's client (PROTOCOL.md §8): it connects, does the handshake (handshake.ts), then sends
 * REQUESTs, each with a command and a sequence number, without waiting for the replies, and
 * matches each REPLY to its request by that number. An error reply becomes a
 * {@linkcode RemoteError} carrying the peer's text word for word; a request without a reply in
 * time fails alone and leaves the connection usable; a connection that fails or closes rejects
 * every request still waiting. With a cluster key every frame is sealed (seal.ts), and a frame
 * that does not open fails the connection like any other error. A server that closes an idle
 * connection says CLOSING first; the client then connects again at its next request, and sends
 * again the requests the server had not read. Over TCP to a node, or over the daemon's local unix
 * socket.
 */
import { type Clock, systemClock } from "../base/clock.ts";
import { FrameConn } from "./conn.ts";
import { FrameError } from "./frame.ts";
import {
  ChannelRefusedError,
  clientHandshake,
  DEFAULT_CHANNEL_PORT,
  frameLabel,
  noDelay,
  plainRefusal,
} from "./handshake.ts";
import type { ClusterKey } from "../base/key.ts";
import { SealError } from "./seal.ts";

/** The client's default limit for connecting, the handshake, and each request. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;
/** How long the client reads (and drops) what the server still sends after refusing it. */
const LINGER_MS = 1000;

/**
 * The peer answered a request with an error; `error` is its text, word for word, and `details`
 * the fields the error reply's body carried (PROTOCOL.md §8.3 "Error details"; empty when none).
 */
export class RemoteError extends Error {
  override name = "RemoteError";
  constructor(
    readonly command: string,
    readonly error: string,
    peer: string,
    readonly details: Readonly<Record<string, string>> = {},
  ) {
    super(`Cannot run "${command}" on ${peer}: ${error}`);
  }
}

/** The fields of an error reply's body: a JSON object of strings, or nothing (anything else). */
export function readErrorDetails(body: Uint8Array): Record<string, string> {
  if (body.length === 0) return {};
  try {
    const value = JSON.parse(new TextDecoder().decode(body));
    if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
    return Object.fromEntries(
      Object.entries(value).filter((entry): entry is [string, string] =>
        typeof entry[1] === "string"
      ),
    );
  } catch {
    return {};
  }
}

const EMPTY = new Uint8Array(0);

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
  /**
   * The node this connection is meant for: a WELCOME from another node id is refused
   * (ChannelRefusedError "Cannot talk to node N: it answered as node M ..."). Without it, any;
   * a connection made again after CLOSING always expects the node of the first WELCOME.
   */
  readonly expectNodeId?: number;
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
  readonly body: Uint8Array;
  /** The link the request went out on, once it did. */
  link: FrameConn | undefined;
  resolve(body: Uint8Array): void;
  reject(error: Error): void;
  cancel(): void;
}

/**
 * Connects to a peer's channel and does the handshake. Throws ChannelRefusedError when the peer
 * refuses (version, key, access list), fails our key check or is not `expectNodeId`,
 * Deno.errors.TimedOut after `timeoutMs`, and the connection's own error (e.g.
 * Deno.errors.ConnectionRefused) otherwise.
 */
export async function connectChannel(options: ConnectChannelOptions): Promise<ChannelClient> {
  const port = options.port ?? DEFAULT_CHANNEL_PORT;
  const { path, hostname } = options;
  if ((path === undefined) === (hostname === undefined)) {
    throw new TypeError("Cannot connect the channel: give a hostname or a path, not both");
  }
  const where = path ?? `${hostname}:${port}`;
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  const first = await dial(options, where, options.expectNodeId);
  const again = () => dial(options, where, first.nodeId);
  return new Client(first, again, { where, timeoutMs, clock, hostname });
}

/** A connection after its handshake, and the node that answered. */
interface Dialled {
  readonly link: FrameConn;
  readonly nodeId: number;
}

/** Connects and does the handshake, within the options' time limit. */
async function dial(
  options: ConnectChannelOptions,
  where: string,
  expectNodeId: number | undefined,
): Promise<Dialled> {
  const { path, hostname, key } = options;
  const port = options.port ?? DEFAULT_CHANNEL_PORT;
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
    const nodeId = await Promise.race([
      clientHandshake(link, { where, key, nodeId: options.nodeId ?? 0, expectNodeId }),
      deadline,
    ]);
    return { link, nodeId };
  } catch (error) {
    link?.close();
    throw error;
  } finally {
    cancelTimer();
  }
}

class Client implements ChannelClient {
  readonly nodeId: number;
  readonly hostname?: string;
  readonly #again: () => Promise<Dialled>;
  readonly #where: string;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #pending = new Map<number, Pending>();
  readonly #abandoned = new Set<number>();
  /** The connection requests go out on; undefined after CLOSING, until one is made again. */
  #link: FrameConn | undefined;
  #dialling: Promise<FrameConn> | undefined;
  /** Requests go out in the order they were made (a request sent again after CLOSING aside). */
  #order: Promise<void> = Promise.resolve();
  #loop: Promise<void>;
  #seq = 0;
  #failure: Error | undefined;

  constructor(
    first: Dialled,
    again: () => Promise<Dialled>,
    options: {
      readonly where: string;
      readonly timeoutMs: number;
      readonly clock: Clock;
      readonly hostname?: string;
    },
  ) {
    this.nodeId = first.nodeId;
    this.hostname = options.hostname;
    this.#again = again;
    this.#where = options.where;
    this.#timeoutMs = options.timeoutMs;
    this.#clock = options.clock;
    this.#link = first.link;
    this.#loop = this.#read(first.link);
  }

  async #read(link: FrameConn): Promise<void> {
    try {
      while (true) {
        const frame = await link.next();
        if (this.#link !== link) return; // retired after CLOSING
        if (frame === null) throw new Error(`Cannot talk to ${this.#where}: connection closed`);
        if (frame.type === "refused") {
          throw new ChannelRefusedError(plainRefusal(frame.reason), this.#where);
        }
        if (frame.type === "closing") {
          this.#retire(link);
          return;
        }
        if (frame.type !== "reply") {
          throw new FrameError(`Cannot talk to ${this.#where}: unexpected ${frameLabel(frame)}`);
        }
        const waiting = this.#pending.get(frame.seq);
        if (!waiting) {
          if (this.#abandoned.delete(frame.seq)) continue;
          throw new FrameError(`Cannot talk to ${this.#where}: reply to unknown seq ${frame.seq}`);
        }
        this.#pending.delete(frame.seq);
        waiting.cancel();
        if (frame.error === "") waiting.resolve(frame.body);
        else {
          waiting.reject(
            new RemoteError(
              waiting.command,
              frame.error,
              this.#where,
              readErrorDetails(frame.body),
            ),
          );
        }
      }
    } catch (error) {
      if (this.#link !== link) return;
      if (error instanceof SealError || error instanceof FrameError) {
        // The server's frames do not make sense here: say so to it (sealed, our direction is
        // intact), so that it logs and counts it too.
        const failure = error instanceof SealError
          ? new Error(`Cannot talk to ${this.#where}: ${error.message}`, { cause: error })
          : error;
        this.#fail(failure, { keepLink: true });
        await link.refuse(`protocol error: ${error.message}`, this.#clock.sleep(LINGER_MS));
        return;
      }
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * The server closes `link` as idle (CLOSING): it read no request it did not answer, so those
   * still waiting on it go out again, over a new connection (after any request already queued for
   * the new one).
   */
  #retire(link: FrameConn): void {
    this.#link = undefined;
    link.close();
    const again = [...this.#pending].filter(([, waiting]) => waiting.link === link)
      .map(([seq]) => seq).sort((a, b) => a - b);
    for (const seq of again) {
      this.#pending.get(seq)!.link = undefined;
      this.#submit(seq);
    }
  }

  /** The connection to send on: the open one, or a new one (made once for all who wait). */
  #current(): Promise<FrameConn> {
    if (this.#link) return Promise.resolve(this.#link);
    this.#dialling ??= this.#again().then(({ link }) => {
      this.#dialling = undefined;
      if (this.#failure) {
        link.close();
        throw this.#failure;
      }
      this.#link = link;
      this.#loop = this.#read(link);
      return link;
    }, (error) => {
      this.#dialling = undefined;
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    });
    return this.#dialling;
  }

  /** Sends the pending request `seq`, after those made before it. */
  #submit(seq: number): void {
    this.#order = this.#order.then(async () => {
      const waiting = this.#pending.get(seq);
      if (!waiting) return;
      let link: FrameConn;
      try {
        link = await this.#current();
      } catch (error) {
        this.#failOne(seq, error);
        return;
      }
      if (this.#pending.get(seq) !== waiting) return;
      waiting.link = link;
      link.send({ type: "request", seq, command: waiting.command, body: waiting.body }).catch(
        (error) => {
          // Sent again over a new connection when this one was closed as idle.
          if (waiting.link === link) this.#failOne(seq, error);
        },
      );
    });
  }

  #failOne(seq: number, error: unknown): void {
    const waiting = this.#pending.get(seq);
    if (!waiting) return;
    this.#pending.delete(seq);
    waiting.cancel();
    waiting.reject(error instanceof Error ? error : new Error(String(error)));
  }

  /** Fails every request, waiting or to come; closes the connection unless `keepLink`. */
  #fail(error: Error, options: { readonly keepLink?: boolean } = {}): void {
    this.#failure ??= error;
    if (!options.keepLink) this.#link?.close();
    this.#link = undefined;
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
      this.#pending.set(seq, { command, body, link: undefined, resolve, reject, cancel });
      this.#submit(seq);
    });
  }

  async close(): Promise<void> {
    this.#fail(new Error(`Cannot talk to ${this.#where}: the channel was closed`));
    await this.#dialling?.catch(() => {});
    await this.#loop;
  }
}
