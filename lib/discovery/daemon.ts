/**
 * The discovery daemon's loop: a thin shell around the membership state machine. It feeds the
 * table every datagram, turns events into map writes and log lines, answers joins with an
 * acknowledgement to the whole group, re-announces, expires, and relays between networks; it
 * runs the node-information exchange (lib/info/exchange.ts) over the same group, and with a
 * cluster key it seals every datagram it sends and refuses every one it cannot authenticate.
 * Nothing a datagram contains can throw out of the receive path.
 */
import { ReplayGuard, seal, Sequencer, unseal } from "./auth.ts";
import type { Clock } from "../base/clock.ts";
import type { InfoExchange } from "../info/exchange.ts";
import { decodeInfo, INFO_MAGIC, type InfoMessage } from "../info/message.ts";
import type { ClusterKey } from "../base/key.ts";
import type { ClusterMap } from "../state/hpcmap.ts";
import { formatNodeId, nodeIdOf, sameNetwork } from "../base/ipv4.ts";
import type { Logger } from "../base/log.ts";
import { Membership, type MembershipEvent, type SelfIdentity } from "./membership.ts";
import type { NetInterface } from "./interfaces.ts";
import { RelayFilter } from "./relay.ts";
import type { DatagramHandler, Peer, Transport } from "./transport.ts";
import {
  type Announcement,
  decodeAnnouncement,
  encodeAnnouncement,
  type MessageKind,
} from "./datagram.ts";
import { DROP_REASONS, type DropReason, WireError } from "../base/wireerror.ts";

/** What the daemon needs to know about itself. */
export interface DaemonConfig {
  readonly self: SelfIdentity;
  /** Interfaces that send and receive (all of them, or only the first with -m). */
  readonly talk: readonly NetInterface[];
  /** Relay between the talking interfaces' networks (several -i, no -m). */
  readonly relay: boolean;
  readonly announceInterval: number;
  readonly expireAfter: number;
  /** The cluster key: seal every datagram, refuse every one that is not sealed with it. */
  readonly key?: ClusterKey;
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
  /** The node-information exchange; absent on an openMosix kernel (the kernel does it). */
  readonly info?: InfoExchange;
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
  /** Node-information messages taken from members. */
  infos: number;
}

function newStats(): DaemonStats {
  return {
    received: 0,
    accepted: 0,
    own: 0,
    dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>,
    sent: 0,
    sendErrors: 0,
    relayed: 0,
    relaySuppressed: 0,
    joined: 0,
    left: 0,
    expired: 0,
    conflicts: 0,
    nodes: 0,
    infos: 0,
  };
}

/** How long map changes are gathered before the map is written (see #writeLoop). */
export const WRITE_DELAY_MS = 10;

/** The longest an acknowledgement waits (see #scheduleAck). */
export const ACK_JITTER_MS = 50;

/** The window in which identical bytes are relayed only once (see lib/discovery/relay.ts). */
function relayWindow(announceInterval: number): number {
  return Math.min(1000, Math.floor(announceInterval / 2));
}

/**
 * The discovered map as the daemon writes it: entries sorted by node id, each node's aliases after
 * it (a stable sort of the membership's map, where they already follow their node). The membership
 * keeps its members in the order it learnt them, which differs from node to node; sorted, every
 * node of a cluster writes the same map, and `om showmap` lists the others in the same order on
 * each. A map installed from a map file (`setpe`) keeps the file's order: it is not written here.
 */
export function byNodeId(map: ClusterMap): ClusterMap {
  return { ...map, entries: [...map.entries].sort((a, b) => a.base - b.base) };
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
  readonly #sequencer: Sequencer;
  readonly #guard = new ReplayGuard();

  constructor(config: DaemonConfig, deps: DaemonDeps) {
    this.#config = config;
    this.#deps = deps;
    this.membership = new Membership(config.self, { expireAfter: config.expireAfter });
    this.#relayFilter = new RelayFilter(relayWindow(config.announceInterval));
    this.#sequencer = new Sequencer(() => deps.clock.now());
  }

  /** Writes this node's own map, opens the transport, joins, and starts the timers. */
  async start(): Promise<void> {
    await this.#deps.writeMap(this.membership.selfId, byNodeId(this.membership.toMap()));
    this.#transport = await this.#deps.openTransport((bytes, from, via) =>
      this.#onDatagram(bytes, from, via)
    );
    this.#startTimers();
    await this.#announce("join");
    this.#flushStats();
  }

  /** Applies new intervals (SIGHUP). */
  reconfigure(
    change: { announceInterval: number; expireAfter: number; infoInterval?: number },
  ): void {
    this.#config = { ...this.#config, ...change };
    if (this.#deps.info && change.infoInterval) this.#deps.info.interval = change.infoInterval;
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
    await this.#deps.info?.stop().catch((error) =>
      this.#deps.logger.warn("Cannot mark the nodes down: {error}", { error: String(error) })
    );
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
    const info = this.#deps.info;
    if (info) this.#timers.push(clock.every(info.tickMs, () => void this.#infoTick(info)));
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
    const { self } = this.membership;
    await this.#sendAll(
      encodeAnnouncement({
        kind,
        source: { address: self.address, netmask: self.netmask },
        aliases: self.aliases,
      }),
      kind,
    );
  }

  /** Sends a message out of every talking interface, sealed when the cluster has a key. */
  async #sendAll(body: Uint8Array, what: string): Promise<void> {
    const transport = this.#transport;
    if (!transport) return;
    const key = this.#config.key;
    const bytes = key ? await seal(key, body, this.#sequencer.next()) : body;
    await Promise.all(this.#config.talk.map(async (nic) => {
      try {
        await transport.send(bytes, nic.name);
        this.stats.sent++;
      } catch (error) {
        this.stats.sendErrors++;
        this.#deps.logger.warn("Cannot send {what} on {nic}: {error}", {
          what,
          nic: nic.name,
          error: String(error),
        });
      }
    }));
    this.#statsDirty = true;
  }

  async #infoTick(info: InfoExchange): Promise<void> {
    if (this.#stopped) return;
    try {
      const bytes = await info.tick();
      if (bytes && !this.#stopped) await this.#sendAll(bytes, "node information");
    } catch (error) {
      this.#deps.logger.warn("Cannot measure this node: {error}", { error: String(error) });
    }
  }

  #onDatagram(bytes: Uint8Array, from: Peer, via: string): void {
    this.stats.received++;
    this.#statsDirty = true;
    const key = this.#config.key;
    if (!key) {
      this.#dispatch(bytes, bytes, from, via, undefined);
      return;
    }
    unseal(key, bytes).then(
      (opened) => this.#dispatch(opened.body, bytes, from, via, opened.seq),
      (error) => this.#drop(error, from, via),
    );
  }

  /** Counts and logs (at debug) a datagram that is refused; anything else is a bug, logged. */
  #drop(error: unknown, from: Peer, via: string): void {
    if (!(error instanceof WireError)) {
      this.#deps.logger.error("Unexpected error on datagram from {from}: {error}", {
        from: from.address,
        error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
      return;
    }
    this.stats.dropped[error.reason]++;
    this.#deps.logger.debug("Dropped datagram from {from} on {via}: {reason}", {
      from: `${from.address}:${from.port}`,
      via,
      reason: error.message,
    });
  }

  /**
   * Decodes a datagram's body by its magic number and hands it on. `raw` is what arrived (the
   * sealed bytes, relayed unchanged); `seq` is set when the datagram was authenticated.
   */
  #dispatch(body: Uint8Array, raw: Uint8Array, from: Peer, via: string, seq?: number): void {
    const { logger, clock } = this.#deps;
    try {
      if (this.#stopped) return;
      const now = clock.now();
      const magic = body.length >= 4
        ? ((body[0] << 24) | (body[1] << 16) | (body[2] << 8) | body[3]) >>> 0
        : 0;
      const message = magic === INFO_MAGIC ? decodeInfo(body) : decodeAnnouncement(body);
      const source = "kind" in message ? message.source.address : message.source;
      if (seq !== undefined && !this.#guard.admit(source, seq, now)) {
        throw new WireError("replay", `Cannot accept datagram from ${source}: replayed or stale`);
      }
      if ("kind" in message) this.#onAnnouncement(message, from, via, now);
      else this.#onInfo(message, from, via);
      if (this.#config.relay && source !== this.membership.self.address) {
        const aliases = "kind" in message ? message.aliases : [];
        this.#relay(raw, source, aliases, from.address, via, now);
      }
    } catch (error) {
      if (error instanceof WireError) return this.#drop(error, from, via);
      logger.error("Unexpected error on datagram from {from}: {error}", {
        from: from.address,
        error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
  }

  #onAnnouncement(message: Announcement, from: Peer, via: string, now: number): void {
    const outcome = this.membership.receive(message, now);
    if (outcome.own) {
      this.stats.own++;
      return;
    }
    this.stats.accepted++;
    this.#deps.logger.debug("Heard {kind} from {source} via {from} on {via}", {
      kind: message.kind,
      source: message.source.address,
      from: from.address,
      via,
    });
    this.#apply(outcome.events);
    if (outcome.acknowledge) this.#scheduleAck();
  }

  /** Node information is taken only from members of the map (a stranger's is dropped). */
  #onInfo(message: InfoMessage, from: Peer, via: string): void {
    if (message.source === this.membership.self.address) {
      this.stats.own++;
      return;
    }
    const id = nodeIdOf(message.source);
    const member = this.membership.members().find((m) => m.id === id);
    if (!member || member.address !== message.source) {
      throw new WireError(
        "stranger",
        `Cannot take node information from ${message.source}: not in the map`,
      );
    }
    this.stats.accepted++;
    this.stats.infos++;
    this.#deps.logger.debug("Node information from {source} via {from} on {via}", {
      source: message.source,
      from: from.address,
      via,
    });
    this.#deps.info?.receive(id, message, this.#deps.clock.now()).catch((error) =>
      this.#deps.logger.warn("Cannot write node {id}: {error}", { id, error: String(error) })
    );
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

  #relay(
    bytes: Uint8Array,
    source: string,
    aliases: readonly { address: string }[],
    sender: string,
    via: string,
    now: number,
  ): void {
    // Heard from the node itself (not through another relay): it cannot be a looping copy, and a
    // node's repeated acknowledgements are byte-identical, so it is always relayed.
    const direct = sender === source || aliases.some((a) => a.address === sender);
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
    const now = this.#deps.clock.now();
    const events = this.membership.expire(now);
    if (events.length) this.#apply(events);
    this.#deps.info?.expire(now).then(
      (stale) => {
        for (const id of stale) {
          this.#deps.logger.info("Node {id} stopped sending its information: shown as down", {
            id: formatNodeId(id),
          });
        }
      },
      (error) =>
        this.#deps.logger.warn("Cannot mark nodes down: {error}", { error: String(error) }),
    );
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
          this.#deps.info?.forget(event.member.id).catch((error) =>
            this.#deps.logger.warn("Cannot mark node down: {error}", { error: String(error) })
          );
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
          await this.#deps.writeMap(this.membership.selfId, byNodeId(this.membership.toMap()));
        } catch (error) {
          this.#deps.logger.error("Cannot write the map: {error}", { error: String(error) });
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }
}
