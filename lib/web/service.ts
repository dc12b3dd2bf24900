/**
 * The status page's part of a running node, built by lib/node.ts: this node's answers to the
 * read-only channel commands (statuswire.ts), the collector of the cluster's view (collector.ts)
 * with its connections to the other nodes (poller.ts), the local socket's `status.cluster` (what
 * `om status --html` writes), and, when `http` is set, the HTTP server (server.ts), loaded only
 * then: a node without the page pays nothing for `node:http`.
 */
import type { Clock } from "../base/clock.ts";
import { jsonBytes } from "../base/json.ts";
import type { Logger } from "../base/log.ts";
import type { ChannelClient } from "../channel/client.ts";
import type { Handler } from "../channel/server.ts";
import type { Job } from "../jobs/table.ts";
import type { MoveLog } from "../migration/movelog.ts";
import type { NodeInfo } from "../state/nodestate.ts";
import { ClusterCollector } from "./collector.ts";
import type { NodeFlags } from "./model.ts";
import { readNetCounters } from "./netdev.ts";
import { PeerPoller } from "./poller.ts";
import { cachedNames, NodeStatus, STATUS_COMMANDS } from "./statuswire.ts";
import type { WebServer } from "./server.ts";

/** The local socket's command that returns the view and history (`om status --html`). */
export const CLUSTER_COMMAND = "status.cluster";

/** What the status part of a node is built from. */
export interface StatusOptions {
  readonly nodeId: number;
  readonly address: string;
  readonly keyed: boolean;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The information interval now, ms. */
  readonly interval: () => number;
  /** The map's members now. */
  readonly members: () => readonly { readonly id: number; readonly address: string }[];
  /** The figures of the nodes that are up, this one's included. */
  readonly figures: () => Promise<readonly NodeInfo[]>;
  /** This node's admin flags. */
  readonly flags: () => Promise<NodeFlags>;
  /** The interfaces whose traffic is this node's network load. */
  readonly interfaces: readonly string[];
  /** The deputy's jobs (this node is their home). */
  readonly jobs: () => readonly Job[];
  readonly moves: MoveLog;
  /** A uid's name. */
  readonly userName: (uid: number) => Promise<string>;
  /** Opens the channel to node `id` at `address`. */
  readonly connect: (id: number, address: string) => Promise<ChannelClient>;
}

/** The status part of a running node. */
export class StatusService {
  readonly #options: StatusOptions;
  readonly #status: NodeStatus;
  readonly #poller: PeerPoller;
  readonly collector: ClusterCollector;
  #web: WebServer | undefined;

  constructor(options: StatusOptions) {
    this.#options = options;
    this.#status = new NodeStatus({
      nodeId: options.nodeId,
      flags: options.flags,
      net: () => readNetCounters(options.interfaces),
      jobs: options.jobs,
      moves: options.moves,
      userName: cachedNames(options.userName),
    });
    this.#poller = new PeerPoller({
      connect: options.connect,
      timeoutMs: () => Math.max(2000, 2 * options.interval()),
      logger: options.logger,
    });
    this.collector = new ClusterCollector({
      self: { id: options.nodeId, address: options.address },
      keyed: options.keyed,
      clock: options.clock,
      interval: options.interval,
      members: options.members,
      figures: options.figures,
      local: this.#status,
      poll: (id, address, since, epoch) => this.#poller.poll(id, address, since, epoch),
      idle: () => void this.#poller.close(),
    });
  }

  /** The channel's status commands (PROTOCOL.md §14.4). */
  channelHandlers(): [string, Handler][] {
    const handlers = this.#status.handlers(this.#options.keyed);
    return STATUS_COMMANDS.map((name) => [name, handlers.get(name)!]);
  }

  /** The local socket's `status.cluster`: the view (fresh) and the history, as JSON. */
  localHandlers(): [string, Handler][] {
    return [[
      CLUSTER_COMMAND,
      async () =>
        jsonBytes({ view: await this.collector.snapshot(), history: this.collector.history() }),
    ]];
  }

  /** Starts the collector's interval. */
  start(): void {
    this.collector.start();
  }

  /** Serves the page on `hostname:port` (lib/web/server.ts); throws when it cannot listen. */
  async serve(hostname: string, port: number, hostNames: readonly string[]): Promise<WebServer> {
    const { serveWeb } = await import("./server.ts");
    this.#web = await serveWeb({
      hostname,
      port,
      collector: this.collector,
      logger: this.#options.logger,
      hostNames,
    });
    return this.#web;
  }

  /** Stops the server, the collector and the connections. */
  async close(): Promise<void> {
    await this.#web?.close();
    this.collector.stop();
    await this.#poller.close();
  }
}
