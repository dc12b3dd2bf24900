/**
 * The channel's client (PROTOCOL.md §8): it connects, does the handshake (handshake.ts), then sends
 * REQUESTs, each with a command and a sequence number, without waiting for the replies, and
 * matches each REPLY to its request by that number. An error reply becomes a
 * {@linkcode RemoteError} carrying the peer's text word for word; a request without a reply in
 * time fails alone and leaves the connection usable; a connection that fails or closes rejects
 * every request still waiting. Over TCP to a node, or over the daemon's local unix socket.
 */
import { type Clock, systemClock } from "../base/clock.ts";
import { FrameConn, FrameError } from "./frame.ts";
import {
  ChannelRefusedError,
  clientHandshake,
  DEFAULT_CHANNEL_PORT,
  frameLabel,
  noDelay,
} from "./handshake.ts";
import type { ClusterKey } from "../base/key.ts";

/** The client's default limit for connecting, the handshake, and each request. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

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
    serverNodeId = await Promise.race([
      clientHandshake(link, { where, key, nodeId: options.nodeId ?? 0 }),
      deadline,
    ]);
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
