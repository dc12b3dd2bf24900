/**
 * The discovery daemon's loop: a thin shell around the membership state machine. It feeds the
 * table every datagram, turns events into map writes and log lines, answers joins with an
 * acknowledgement to the whole group, re-announces, expires, and relays between networks.
 * Nothing a datagram contains can throw out of the receive path.
 */
import type { Clock } from "./clock.ts";
import type { ClusterMap } from "./hpcmap.ts";
import { formatNodeId, sameNetwork } from "./ipv4.ts";
import type { Logger } from "./log.ts";
import { Membership, type MembershipEvent, type SelfIdentity } from "./membership.ts";
import type { NetInterface } from "./netif.ts";
import { RelayFilter } from "./relay.ts";
import type { DatagramHandler, Peer, Transport } from "./transport.ts";
import {
  type Announcement,
  decodeAnnouncement,
  type DropReason,
  encodeAnnouncement,
  type MessageKind,
  WireError,
} from "./wire.ts";

/** What the daemon needs to know about itself. */
export interface DaemonConfig {
  readonly self: SelfIdentity;
  /** Interfaces that send and receive (all of them, or only the first with -m). */
  readonly talk: readonly NetInterface[];
  /** Relay between the talking interfaces' networks (several -i, no -m). */
  readonly relay: boolean;
  readonly announceInterval: number;
  readonly expireAfter: number;
}

/** The daemon's outside world, injected. */
export interface DaemonDeps {
  openTransport(handler: DatagramHandler): Promise<Transport>;
  writeMap(self: number, map: ClusterMap): Promise<void>;
  writeStats(stats: DaemonStats): Promise<void>;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Random numbers in [0, 1) for the acknowledgement jitter (Math.random by default). */
  readonly random?: () => number;
}

/** Counters, written to `$OM_ROOT/omdiscd.stats` (PROTOCOL.md §3.5). */
export interface DaemonStats {
  received: number;
  accepted: number;
  own: number;
  dropped: Record<DropReason, number>;
  sent: number;
  sendErrors: number;
  relayed: number;
  relaySuppressed: number;
  joined: number;
  left: number;
  expired: number;
  conflicts: number;
  nodes: number;
}

function newStats(): DaemonStats {
  return {
    received: 0,
    accepted: 0,
    own: 0,
    dropped: { length: 0, magic: 0, type: 0, source: 0, netmask: 0, alias: 0 },
    sent: 0,
    sendErrors: 0,
    relayed: 0,
    relaySuppressed: 0,
    joined: 0,
    left: 0,
    expired: 0,
    conflicts: 0,
    nodes: 0,
  };
}

/** How long map changes are gathered before the map is written (see #writeLoop). */
export const WRITE_DELAY_MS = 10;

/** The longest an acknowledgement waits (see #scheduleAck). */
export const ACK_JITTER_MS = 50;

/** The window in which identical bytes are relayed only once (see lib/relay.ts). */
function relayWindow(announceInterval: number): number {
  return Math.min(1000, Math.floor(announceInterval / 2));
}

/** One running `om discover`. */
export class DiscoveryDaemon {
  readonly membership: Membership;
  readonly stats: DaemonStats = newStats();
  #config: DaemonConfig;
  readonly #deps: DaemonDeps;
  #transport?: Transport;
  #timers: (() => void)[] = [];
  #relayFilter: RelayFilter;
  #writing?: Promise<void>;
  #dirty = false;
  #statsDirty = true;
  #ackPending = false;
  #stopped = false;

  constructor(config: DaemonConfig, deps: DaemonDeps) {
    this.#config = config;
    this.#deps = deps;
    this.membership = new Membership(config.self, { expireAfter: config.expireAfter });
    this.#relayFilter = new RelayFilter(relayWindow(config.announceInterval));
  }

  /** Writes this node's own map, opens the transport, joins, and starts the timers. */
  async start(): Promise<void> {
    await this.#deps.writeMap(this.membership.selfId, this.membership.toMap());
    this.#transport = await this.#deps.openTransport((bytes, from, via) =>
      this.#onDatagram(bytes, from, via)
    );
    this.#startTimers();
    await this.#announce("join");
    this.#flushStats();
  }

  /** Applies new intervals (SIGHUP). */
  reconfigure(change: { announceInterval: number; expireAfter: number }): void {
    this.#config = { ...this.#config, ...change };
    this.membership.expireAfter = change.expireAfter;
    this.#relayFilter = new RelayFilter(relayWindow(change.announceInterval));
    for (const cancel of this.#timers) cancel();
    this.#startTimers();
  }

  /** Sends a leave, closes the transport, and leaves a map with only this node. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const cancel of this.#timers) cancel();
    this.#timers = [];
    await this.#announce("leave");
    await this.#transport?.close();
    this.membership.clear();
    this.#scheduleWrite();
    await this.idle();
    this.stats.nodes = 1;
    await this.#deps.writeStats(this.stats);
  }

  /** Resolves once every pending map write is done. */
  async idle(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  #startTimers(): void {
    const { clock } = this.#deps;
    const { announceInterval, expireAfter } = this.#config;
    this.#timers = [
      clock.every(announceInterval, () => void this.#announce("ack")),
      clock.every(Math.max(50, Math.min(1000, Math.floor(expireAfter / 5))), () => this.#expire()),
      clock.every(250, () => this.#flushStats()),
    ];
  }

  #flushStats(): void {
    if (!this.#statsDirty) return;
    this.#statsDirty = false;
    this.stats.nodes = this.membership.members().length + 1;
    this.#deps.writeStats({ ...this.stats }).catch((error) =>
      this.#deps.logger.warn("Cannot write statistics: {error}", { error: String(error) })
    );
  }

  async #announce(kind: MessageKind): Promise<void> {
    const transport = this.#transport;
    if (!transport) return;
    const { self } = this.membership;
    const bytes = encodeAnnouncement({
      kind,
      source: { address: self.address, netmask: self.netmask },
      aliases: self.aliases,
    });
    await Promise.all(this.#config.talk.map(async (nic) => {
      try {
        await transport.send(bytes, nic.name);
        this.stats.sent++;
      } catch (error) {
        this.stats.sendErrors++;
        this.#deps.logger.warn("Cannot send {kind} on {nic}: {error}", {
          kind,
          nic: nic.name,
          error: String(error),
        });
      }
    }));
    this.#statsDirty = true;
  }

  #onDatagram(bytes: Uint8Array, from: Peer, via: string): void {
    const { logger, clock } = this.#deps;
    this.stats.received++;
    this.#statsDirty = true;
    try {
      let message;
      try {
        message = decodeAnnouncement(bytes);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        this.stats.dropped[error.reason]++;
        logger.debug("Dropped datagram from {from} on {via}: {reason}", {
          from: `${from.address}:${from.port}`,
          via,
          reason: error.message,
        });
        return;
      }
      if (this.#stopped) return;
      const now = clock.now();
      const outcome = this.membership.receive(message, now);
      if (outcome.own) {
        this.stats.own++;
        return;
      }
      this.stats.accepted++;
      logger.debug("Heard {kind} from {source} via {from} on {via}", {
        kind: message.kind,
        source: message.source.address,
        from: from.address,
        via,
      });
      this.#apply(outcome.events);
      if (outcome.acknowledge) this.#scheduleAck();
      if (this.#config.relay) this.#relay(bytes, message, from.address, via, now);
    } catch (error) {
      logger.error("Unexpected error on datagram from {from}: {error}", {
        from: from.address,
        error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
  }

  /**
   * Answers after a random delay of up to ACK_JITTER_MS (capped at a tenth of the announce
   * interval), with one acknowledgement for all the joins heard meanwhile: when many nodes start
   * at once, N joins cost each node one or a few acknowledgements instead of N, and the answers
   * do not all arrive in the same instant.
   */
  #scheduleAck(): void {
    if (this.#ackPending) return;
    this.#ackPending = true;
    const jitter = Math.min(ACK_JITTER_MS, this.#config.announceInterval / 10);
    this.#deps.clock.after(Math.floor((this.#deps.random ?? Math.random)() * jitter), () => {
      this.#ackPending = false;
      if (!this.#stopped) void this.#announce("ack");
    });
  }

  #relay(bytes: Uint8Array, message: Announcement, sender: string, via: string, now: number): void {
    const source = message.source.address;
    // Heard from the node itself (not through another relay): it cannot be a looping copy, and a
    // node's repeated acknowledgements are byte-identical, so it is always relayed.
    const direct = sender === source || message.aliases.some((a) => a.address === sender);
    if (!this.#relayFilter.admit(bytes, now) && !direct) {
      this.stats.relaySuppressed++;
      return;
    }
    for (const nic of this.#config.talk) {
      if (nic.name === via || sameNetwork(source, nic.address, nic.netmask)) continue;
      this.stats.relayed++;
      this.#transport?.send(bytes, nic.name).catch((error) => {
        this.stats.sendErrors++;
        this.#deps.logger.warn("Cannot relay onto {nic}: {error}", {
          nic: nic.name,
          error: String(error),
        });
      });
    }
  }

  #expire(): void {
    const events = this.membership.expire(this.#deps.clock.now());
    if (events.length) this.#apply(events);
  }

  #apply(events: readonly MembershipEvent[]): void {
    const { logger } = this.#deps;
    let changed = false;
    for (const event of events) {
      switch (event.type) {
        case "joined":
          this.stats.joined++;
          changed = true;
          logger.info("Node {id} joined at {address}{aliases}", {
            id: formatNodeId(event.member.id),
            address: event.member.address,
            aliases: event.member.aliases.length
              ? ` (aliases ${event.member.aliases.map((a) => a.address).join(", ")})`
              : "",
          });
          break;
        case "updated":
          changed = true;
          logger.info("Node {id} at {address} changed its aliases to {aliases}", {
            id: formatNodeId(event.member.id),
            address: event.member.address,
            aliases: event.member.aliases.map((a) => a.address).join(", ") || "none",
          });
          break;
        case "left":
          changed = true;
          if (event.reason === "leave") this.stats.left++;
          else this.stats.expired++;
          logger.info("Node {id} at {address} {how}", {
            id: formatNodeId(event.member.id),
            address: event.member.address,
            how: event.reason === "leave" ? "left" : "expired (not heard from)",
          });
          break;
        case "conflict":
          this.stats.conflicts++;
          logger.warn(
            "Node id {id} is claimed by {claimant} but held by {holder}: ignoring {claimant}",
            { id: formatNodeId(event.id), claimant: event.claimant, holder: event.holder },
          );
          break;
      }
    }
    this.#statsDirty = true;
    if (changed) this.#scheduleWrite();
  }

  #scheduleWrite(): void {
    this.#dirty = true;
    if (!this.#writing) this.#writing = this.#writeLoop();
  }

  /**
   * Writes until nothing changed during the last write. The last look at #dirty and the reset
   * of #writing happen in one synchronous step (the finally of this async function), so a change
   * that lands in a microtask after the write is never left unwritten.
   */
  async #writeLoop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        // Let the other datagrams of a burst land first: one write for many joins. A stopping
        // daemon writes at once.
        if (this.#stopped) await Promise.resolve();
        else await new Promise<void>((resolve) => this.#deps.clock.after(WRITE_DELAY_MS, resolve));
        try {
          await this.#deps.writeMap(this.membership.selfId, this.membership.toMap());
        } catch (error) {
          this.#deps.logger.error("Cannot write the map: {error}", { error: String(error) });
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
