/**
 * Asking the other nodes for what the status page shows of them (lib/web/statuswire.ts's three
 * commands): one channel connection per node, kept while the page is watched and reused at every
 * information interval (a keyed handshake is not made every second), the three requests sent
 * together. A node that refuses a command (a keyless node and `status.jobs`) leaves that part
 * unknown; one that cannot be reached, or whose connection fails, is asked again later on a new
 * connection.
 */
import type { ChannelClient } from "../channel/client.ts";
import { RemoteError } from "../channel/client.ts";
import { jsonBytes } from "../base/json.ts";
import type { Logger } from "../base/log.ts";
import {
  type MovesReport,
  type NodeReport,
  readJobsReport,
  readMovesReport,
  readNodeReport,
} from "./statuswire.ts";
import type { JobView } from "./model.ts";

/** What one node answered; a part it did not answer is undefined. */
export interface PeerReport {
  readonly node?: NodeReport;
  readonly jobs?: JobView[];
  readonly moves?: MovesReport;
}

/** Options of {@linkcode PeerPoller}. */
export interface PeerPollerOptions {
  /** Opens the channel to node `id` at `address`. */
  readonly connect: (id: number, address: string) => Promise<ChannelClient>;
  /** How long each request may take, in ms. */
  readonly timeoutMs: () => number;
  readonly logger: Logger;
}

/** The connections to the other nodes, and the asking. */
export class PeerPoller {
  readonly #options: PeerPollerOptions;
  readonly #clients = new Map<number, Promise<ChannelClient>>();

  constructor(options: PeerPollerOptions) {
    this.#options = options;
  }

  /** Nodes with a connection open (or opening). */
  get connected(): number {
    return this.#clients.size;
  }

  /**
   * Asks node `id` for its flags and counters, its jobs, and its moves after revision `since` of
   * its log of `epoch`.
   */
  async poll(id: number, address: string, since: number, epoch: number): Promise<PeerReport> {
    let pending = this.#clients.get(id);
    if (!pending) {
      pending = this.#options.connect(id, address);
      this.#clients.set(id, pending);
    }
    let client: ChannelClient;
    try {
      client = await pending;
    } catch (error) {
      this.#drop(id, pending);
      this.#options.logger.debug("status: cannot reach node {id}: {error}", {
        id,
        error: String(error),
      });
      return {};
    }
    const timeoutMs = this.#options.timeoutMs();
    const ask = async <T>(command: string, body: unknown, read: (b: Uint8Array) => T) => {
      try {
        return read(await client.request(command, jsonBytes(body), { timeoutMs }));
      } catch (error) {
        // A refusal (keyless) or a reply of the wrong shape: the connection is fine.
        if (!(error instanceof RemoteError) && !(error instanceof TypeError)) {
          this.#drop(id, pending);
        }
        this.#options.logger.debug("status: {command} of node {id}: {error}", {
          command,
          id,
          error: String(error),
        });
        return undefined;
      }
    };
    const [node, jobs, moves] = await Promise.all([
      ask("status.node", {}, readNodeReport),
      ask("status.jobs", {}, (b) => readJobsReport(b, id)),
      ask("status.migrations", { since, epoch }, (b) => readMovesReport(b, id)),
    ]);
    return { node, jobs, moves };
  }

  /** Closes every connection (nobody watches). */
  async close(): Promise<void> {
    const all = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(all.map((p) => p.then((c) => c.close(), () => {}).catch(() => {})));
  }

  #drop(id: number, pending: Promise<ChannelClient>): void {
    if (this.#clients.get(id) === pending) this.#clients.delete(id);
    void pending.then((c) => c.close(), () => {}).catch(() => {});
  }
}
