/**
 * A watch on a peer node while something waits on it (PROTOCOL.md §11): a migration's source, with
 * the job frozen, waits for the target's answers to `mig.begin`, `mig.file` and `mig.restore`,
 * whose limits must allow for a big job (a minute and more). A target that dies or is cut off
 * without a sound (power, cable) would keep the job frozen that long. So, once a wait has lasted
 * `afterMs`, the peer is pinged over a connection of its own (a request being served holds its
 * connection's turn), every `pingMs`, each ping with that limit; after `misses` pings in a row
 * without an answer the wait fails with a PeerSilentError. A short wait (every wait of a migration
 * that goes well, mostly) makes no connection at all.
 */
import { type ChannelClient, RemoteError } from "./client.ts";
import { withTimeout } from "../base/time.ts";

/** The default wait before the first ping: 1 s. */
export const WATCH_AFTER_MS = 1000;
/** The default time between pings, and each ping's limit: 3 s. */
export const WATCH_PING_MS = 3000;
/** The default number of pings in a row without an answer that fails the wait: the third. */
export const WATCH_MISSES = 3;

/** The peer answered none of `misses` pings in a row. */
export class PeerSilentError extends Error {
  override name = "PeerSilentError";
}

/** Options of {@linkcode watched}: how to reach the peer, and the watch's times. */
export interface PeerWatchOptions {
  /** Connects to the peer's channel (a new connection). */
  readonly connect: () => Promise<ChannelClient>;
  /** What the peer is called in errors, e.g. "node 2". */
  readonly where: string;
  /**
   * Called at each ping: sends something on the watched connection itself. A frame lost on the
   * way (a request or its answer dropped) is noticed only when the next frame comes (§8.7); this
   * one makes it come, so the connection ends now rather than at the request's limit.
   */
  readonly nudge?: () => void;
  /** Default WATCH_AFTER_MS. */
  readonly afterMs?: number;
  /** Default WATCH_PING_MS. */
  readonly pingMs?: number;
  /** Default WATCH_MISSES. */
  readonly misses?: number;
}

/**
 * Resolves or rejects as `work` does, unless the peer stops answering pings first (see the
 * module's text): then it rejects with a PeerSilentError, and `work` is left to its caller (who
 * closes the connection it waits on).
 */
export async function watched<T>(work: Promise<T>, options: PeerWatchOptions): Promise<T> {
  const afterMs = options.afterMs ?? WATCH_AFTER_MS;
  const pingMs = options.pingMs ?? WATCH_PING_MS;
  const misses = options.misses ?? WATCH_MISSES;
  let settled = false;
  const done = work.finally(() => settled = true);
  const ended = done.then(() => {}, () => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Waits `ms`, or less when `work` settles first. */
  const pause = (ms: number) =>
    Promise.race([new Promise((resolve) => timer = setTimeout(resolve, ms)), ended]).finally(() =>
      clearTimeout(timer)
    );
  const watch = async (): Promise<T> => {
    const pinger = new Pinger(options.connect, pingMs, { connectMs: pingMs });
    let missed = 0;
    try {
      await pause(afterMs);
      while (!settled) {
        const start = performance.now();
        options.nudge?.();
        if (await pinger.ping()) missed = 0;
        else if (++missed >= misses) {
          throw new PeerSilentError(
            `${options.where} stopped answering: ${missed} pings in a row got no answer within ${pingMs} ms`,
          );
        }
        await pause(Math.max(0, pingMs - (performance.now() - start)));
      }
    } finally {
      await pinger.close();
    }
    return await done; // settled: the race below has its outcome already
  };
  return await Promise.race([done, watch()]);
}

/**
 * Pings a peer over a connection of its own (made at the first ping, and again after a ping that
 * got no answer): the peer's liveness, apart from any request it is serving. Used by the watch
 * above and by a guest's way home (lib/migration/homelink.ts).
 */
export class Pinger {
  readonly #connect: () => Promise<ChannelClient>;
  readonly #limitMs: number;
  readonly #connectMs: number | undefined;
  #client: Promise<ChannelClient> | undefined;

  /**
   * `limitMs` bounds each ping's answer; `connectMs`, when given, a new connection's making
   * (else `connect`'s own limit).
   */
  constructor(
    connect: () => Promise<ChannelClient>,
    limitMs: number,
    options: { connectMs?: number } = {},
  ) {
    this.#connect = connect;
    this.#limitMs = limitMs;
    this.#connectMs = options.connectMs;
  }

  /**
   * Whether the peer answers a ping now; an error answer is an answer. A connection that brought
   * no answer is closed, and the next ping makes a new one.
   */
  async ping(): Promise<boolean> {
    try {
      if (!this.#client) {
        const connecting = this.#connect();
        this.#client = this.#connectMs === undefined
          ? connecting
          : within(connecting, this.#connectMs);
      }
      const client = await this.#client;
      await client.request("ping", new Uint8Array(), { timeoutMs: this.#limitMs });
      return true;
    } catch (error) {
      if (error instanceof RemoteError) return true;
      void this.close();
      return false;
    }
  }

  /** Closes the connection, if any. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.then((c) => c.close(), () => {}).catch(() => {});
  }
}

/** `connecting`, or a rejection after `ms` (a connection made later is closed). */
async function within(connecting: Promise<ChannelClient>, ms: number): Promise<ChannelClient> {
  try {
    return await withTimeout(connecting, ms, `no connection within ${ms} ms`);
  } catch (error) {
    void connecting.then((client) => client.close(), () => {});
    throw error;
  }
}
