/**
 * The membership table of `om discover` as a pure state machine (memberlist's state.go): it is
 * fed decoded announcements and the current time, and returns what happened. The daemon turns
 * these events into map writes, log lines and acknowledgements; nothing here does I/O.
 */
import type { ClusterMap, MapEntry } from "../state/hpcmap.ts";
import { nodeIdOf } from "../base/ipv4.ts";
import type { Announcement, Interface } from "./datagram.ts";

/** A node this node knows of. */
export interface Member {
  readonly id: number;
  readonly address: string;
  readonly netmask: string;
  readonly aliases: readonly Interface[];
  /** When it was first and last heard from (ms). */
  readonly firstHeard: number;
  readonly lastHeard: number;
}

/** What a transition did. */
export type MembershipEvent =
  | { readonly type: "joined"; readonly member: Member }
  | { readonly type: "updated"; readonly member: Member }
  | { readonly type: "left"; readonly member: Member; readonly reason: "leave" | "expired" }
  | {
    readonly type: "conflict";
    readonly id: number;
    readonly holder: string;
    readonly claimant: string;
  };

/** The result of feeding one announcement. */
export interface Outcome {
  readonly events: readonly MembershipEvent[];
  /**
   * Answer with an acknowledgement to the whole group: for a join, and for the first announcement
   * heard from a node (it may have missed our acknowledgement, e.g. when both started at once).
   */
  readonly acknowledge: boolean;
  /** The announcement came from this node itself (a loop or an echo). */
  readonly own: boolean;
}

/** This node's own identity: the address its id comes from, and its aliases. */
export interface SelfIdentity {
  readonly address: string;
  readonly netmask: string;
  readonly aliases: readonly Interface[];
}

function sameAliases(a: readonly Interface[], b: readonly Interface[]): boolean {
  return a.length === b.length &&
    a.every((x, i) => x.address === b[i].address && x.netmask === b[i].netmask);
}

/**
 * The table. Members are kept in the order they were learnt; the daemon sorts the map it writes
 * by node id (daemon.ts byNodeId), so every node of a cluster writes the same map. An id claimed by a second address is reported (at most once per expiry period for each
 * claimant) and never overwrites the node that holds it.
 */
export class Membership {
  #self: SelfIdentity;
  readonly #members = new Map<number, Member>();
  readonly #reported = new Map<string, number>();
  #expireAfter: number;

  constructor(self: SelfIdentity, options: { expireAfter: number }) {
    this.#self = self;
    this.#expireAfter = options.expireAfter;
  }

  /** This node's id. */
  get selfId(): number {
    return nodeIdOf(this.#self.address);
  }

  get self(): SelfIdentity {
    return this.#self;
  }

  /** Replaces this node's identity (aliases re-read on SIGHUP); the id stays. */
  setSelf(self: SelfIdentity): void {
    if (nodeIdOf(self.address) !== this.selfId) {
      throw new RangeError(`Cannot change this node's id from ${this.selfId}`);
    }
    this.#self = self;
  }

  set expireAfter(ms: number) {
    this.#expireAfter = ms;
  }

  /** The other members, in the order they were learnt. */
  members(): readonly Member[] {
    return [...this.#members.values()];
  }

  #isOwn(address: string): boolean {
    return address === this.#self.address || this.#self.aliases.some((a) => a.address === address);
  }

  #conflict(id: number, holder: string, claimant: string, now: number): MembershipEvent[] {
    const key = `${id}/${claimant}`;
    const last = this.#reported.get(key);
    if (last !== undefined && now - last < this.#expireAfter) return [];
    this.#reported.set(key, now);
    return [{ type: "conflict", id, holder, claimant }];
  }

  /** Feeds one announcement heard at `now`. */
  receive(message: Announcement, now: number): Outcome {
    const { address, netmask } = message.source;
    if (this.#isOwn(address)) return { events: [], acknowledge: false, own: true };
    const id = nodeIdOf(address);
    const acknowledge = message.kind === "join";
    if (id === this.selfId) {
      return {
        events: this.#conflict(id, this.#self.address, address, now),
        acknowledge,
        own: false,
      };
    }
    const known = this.#members.get(id);
    if (known && known.address !== address) {
      // Another address claims a held id; a leave from it must not remove the holder.
      if (message.kind === "leave") return { events: [], acknowledge: false, own: false };
      return { events: this.#conflict(id, known.address, address, now), acknowledge, own: false };
    }
    if (message.kind === "leave") {
      if (!known) return { events: [], acknowledge: false, own: false };
      this.#members.delete(id);
      return {
        events: [{ type: "left", member: known, reason: "leave" }],
        acknowledge: false,
        own: false,
      };
    }
    const member: Member = {
      id,
      address,
      netmask,
      aliases: message.aliases,
      firstHeard: known?.firstHeard ?? now,
      lastHeard: now,
    };
    this.#members.set(id, member);
    if (!known) return { events: [{ type: "joined", member }], acknowledge: true, own: false };
    const changed = known.netmask !== netmask || !sameAliases(known.aliases, message.aliases);
    return { events: changed ? [{ type: "updated", member }] : [], acknowledge, own: false };
  }

  /** Removes the members not heard from for longer than the expiry period. */
  expire(now: number): MembershipEvent[] {
    const events: MembershipEvent[] = [];
    for (const [id, member] of this.#members) {
      if (now - member.lastHeard > this.#expireAfter) {
        this.#members.delete(id);
        events.push({ type: "left", member, reason: "expired" });
      }
    }
    for (const [key, at] of this.#reported) {
      if (now - at >= this.#expireAfter) this.#reported.delete(key);
    }
    return events;
  }

  /** Forgets every member (the daemon stops). */
  clear(): void {
    this.#members.clear();
  }

  /** The map as the kernel takes it: this node first, then the others; aliases after each. */
  toMap(gateways = 0): ClusterMap {
    const entries: MapEntry[] = [];
    const add = (id: number, address: string, aliases: readonly Interface[]) => {
      entries.push({ base: id, address, count: 1 });
      for (const alias of aliases) entries.push({ base: id, address: alias.address, count: 0 });
    };
    add(this.selfId, this.#self.address, this.#self.aliases);
    for (const member of this.#members.values()) add(member.id, member.address, member.aliases);
    return { gateways, entries };
  }
}
