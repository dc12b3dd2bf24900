/**
 * A guest's way home (PROTOCOL.md §11.2, "After the commit"): the node that runs a job for another
 * home node sends the job's output and end there (`job.push`, `job.exited`) through a HomeLink,
 * whose requests outlive a lost connection. A request that fails for any reason but an answer
 * (the connection reset or closed, the home daemon restarted, a timeout) is sent again over a new
 * connection until the home answers: `job.push` carries the byte offset of its data, so a chunk
 * that did arrive before its answer was lost is not appended twice.
 *
 * A connection can also die without a sound (a cable pulled, a partition): a pending request would
 * then wait for TCP to give up, many minutes. So, while a request waits, a watchdog pings the home
 * every `pingMs` over a connection of its own (a request waiting for room in the job's output, or
 * for a move to settle, holds its connection's turn: a ping there would wait behind it); when a
 * ping gets no answer within `pingMs` (a new ping connection's handshake has the connect's own
 * limit), the request's connection is dropped and the request is sent again once the home can be
 * reached. With no answer from the home at all (no request, no ping) for `giveUpMs`, `send`
 * rejects with a HomeUnreachableError: the job has nowhere to send its output, and its copy here
 * is ended by the caller (as an openMosix process died with its home node).
 */
import { type ChannelClient, RemoteError } from "../channel/client.ts";
import { Pinger } from "../channel/peerwatch.ts";
import { sleep } from "../base/time.ts";

/** Time between pings while a request waits, and a ping's limit. */
export const HOME_PING_MS = 5000;
/** How long a request is sent again while the home cannot be reached before `send` gives up. */
export const HOME_GIVE_UP_MS = 10 * 60_000;
/** Pause between two attempts after a failed one. */
const RETRY_MS = 500;

/**
 * The error text with which a home refuses `job.push`/`job.exited` of a job that it knows runs
 * elsewhere: at the home itself (its source went on with it), or at a node that says it runs it.
 */
export function disownedText(id: number, node: number): string {
  return `job ${id} does not run on node ${node}`;
}

/** Whether an error answer says that the home disowns this node's copy of the job. */
export function isDisowned(error: unknown): boolean {
  return error instanceof RemoteError && /^job \d+ does not run on node \d+$/.test(error.error);
}

/**
 * Whether an error answer says that the home has no such job (lib/jobs/table.ts NoSuchJobError): its
 * daemon restarted since (its jobs are gone with it, and so is the `om run` the output was for),
 * or the job ended there and its exit was collected.
 */
export function isUnknownJob(error: unknown): boolean {
  return error instanceof RemoteError && /^no job \d+ on this node$/.test(error.error);
}

/** The home could not be reached for `giveUpMs`. */
export class HomeUnreachableError extends Error {
  override name = "HomeUnreachableError";
}

export interface HomeLinkOptions {
  /** Connects to the home's channel (a new connection each call). */
  readonly connect: () => Promise<ChannelClient>;
  /** What the home is called in errors, e.g. "node 1". */
  readonly where: string;
  readonly pingMs?: number;
  readonly giveUpMs?: number;
  /** Told of a request's first failed attempt (for the log); it is sent again. */
  readonly onRetry?: (command: string, error: unknown) => void;
}

/** Requests to a job's home that are sent again until answered (see the module's text). */
export class HomeLink {
  readonly #options: HomeLinkOptions;
  readonly #pingMs: number;
  readonly #giveUpMs: number;
  #client: Promise<ChannelClient> | undefined;
  readonly #pinger: Pinger;
  #waiting = 0;
  /** When the home last answered anything (a request or a ping). */
  #lastAnswer = Date.now();
  #watch: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: HomeLinkOptions) {
    this.#options = options;
    this.#pingMs = options.pingMs ?? HOME_PING_MS;
    this.#pinger = new Pinger(options.connect, this.#pingMs);
    this.#giveUpMs = options.giveUpMs ?? HOME_GIVE_UP_MS;
  }

  /**
   * Sends `command` until the home answers; resolves with the reply's body. Rejects with the
   * RemoteError of an error answer ({@linkcode isDisowned} tells the home's refusal of this copy),
   * with a HomeUnreachableError after `giveUpMs` without any answer, or once the link is closed.
   */
  async send(command: string, body: Uint8Array): Promise<Uint8Array> {
    let failed = false;
    // The home's silence counts only while something waits for it.
    if (this.#waiting++ === 0) this.#lastAnswer = Date.now();
    this.#startWatch();
    try {
      for (;;) {
        if (this.#closed) throw new Error(`Cannot send "${command}" home: the link is closed`);
        let client: ChannelClient | undefined;
        try {
          client = await this.#connected();
          return await this.#heard(client.request(command, body, { timeoutMs: 0 }));
        } catch (error) {
          if (error instanceof RemoteError) throw error;
          if (client) this.#drop(client);
          if (this.#closed) throw new Error(`Cannot send "${command}" home: the link is closed`);
          if (!failed) this.#options.onRetry?.(command, error);
          failed = true;
        }
        if (!(await this.#reachable()) && Date.now() - this.#lastAnswer >= this.#giveUpMs) {
          throw new HomeUnreachableError(
            `Cannot send "${command}" home: ${this.#options.where} did not answer for ${this.#giveUpMs} ms`,
          );
        }
        await sleep(RETRY_MS);
      }
    } finally {
      if (--this.#waiting === 0) this.#stopWatch();
    }
  }

  /** Closes the connections; requests still waiting reject. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopWatch();
    const client = this.#client;
    this.#client = undefined;
    await client?.then((c) => c.close(), () => {});
    await this.#pinger.close();
  }

  /** `request`'s outcome, noting the time when it is the home's answer (a reply or an error). */
  async #heard<T>(request: Promise<T>): Promise<T> {
    try {
      const reply = await request;
      this.#lastAnswer = Date.now();
      return reply;
    } catch (error) {
      if (error instanceof RemoteError) this.#lastAnswer = Date.now();
      throw error;
    }
  }

  #connected(): Promise<ChannelClient> {
    if (this.#closed) return Promise.reject(new Error("the link is closed"));
    if (!this.#client) {
      const client = this.#options.connect();
      this.#client = client;
      client.catch(() => {
        if (this.#client === client) this.#client = undefined;
      });
    }
    return this.#client;
  }

  #drop(client: ChannelClient): void {
    void client.close().catch(() => {});
    void this.#client?.then((current) => {
      if (current === client) this.#client = undefined;
    }, () => {});
  }

  /** Whether the home answers a ping now (over the watchdog's connection). */
  async #reachable(): Promise<boolean> {
    if (this.#closed) return false;
    const answered = await this.#pinger.ping();
    if (answered) this.#lastAnswer = Date.now();
    return answered;
  }

  #startWatch(): void {
    if (this.#watch !== undefined) return;
    let busy = false;
    this.#watch = setInterval(async () => {
      if (busy || this.#closed) return;
      busy = true;
      try {
        // No answer to a ping: the request's connection is likely dead too; drop it, and the
        // waiting requests are sent again over a new one.
        if (!(await this.#reachable())) void this.#client?.then((c) => this.#drop(c), () => {});
      } finally {
        busy = false;
      }
    }, this.#pingMs);
  }

  #stopWatch(): void {
    clearInterval(this.#watch);
    this.#watch = undefined;
  }
}
