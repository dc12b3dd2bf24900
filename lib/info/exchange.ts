/**
 * The node-information exchange (openMosix's info daemon): measures this node four times per
 * interval, publishes its figures once per interval (unless quiet), keeps every member's last
 * figures, and writes `nodes/<id>/...` for all of them. A node whose figures stop coming (it went
 * quiet, or died) is written as down, with zeros, never with stale numbers.
 */
import { encodeInfo, type InfoMessage } from "./message.ts";
import type { Figures, Sample } from "./measure.ts";
import { figures } from "./measure.ts";
import { downInfo, type NodeInfo } from "../state/nodestate.ts";

/** Samples per information interval. */
export const SAMPLES_PER_INTERVAL = 4;
/** Figures older than this many intervals make a node down. */
export const STALE_INTERVALS = 3;

/** What the exchange needs from the outside. */
export interface InfoDeps {
  sample(): Promise<Sample>;
  /** This node's admin state: quiet (do not publish), block, and the speed set by mosctl. */
  admin(): Promise<{ quiet: boolean; block: boolean; speed?: number }>;
  /** Writes one node's files (only what changed). */
  write(info: NodeInfo): Promise<void>;
  readonly defaultSpeed: number;
}

/** One node's figures as last heard. */
interface Heard {
  readonly info: NodeInfo;
  readonly at: number;
  /** It refuses guests (the message's block flag). */
  readonly block: boolean;
}

export class InfoExchange {
  readonly #deps: InfoDeps;
  readonly #selfId: number;
  readonly #selfAddress: string;
  #interval: number;
  #window: Sample[] = [];
  readonly #heard = new Map<number, Heard>();
  /** This node's last figures (what `nodes/<self>` shows). */
  own?: NodeInfo;
  /** Whether this node blocked guests at its last figures. */
  ownBlock = false;
  /** How many times this node's figures were computed (tells a new figure from the last). */
  ownCount = 0;

  constructor(deps: InfoDeps, self: { id: number; address: string; interval: number }) {
    this.#deps = deps;
    this.#selfId = self.id;
    this.#selfAddress = self.address;
    this.#interval = self.interval;
  }

  get interval(): number {
    return this.#interval;
  }

  set interval(ms: number) {
    this.#interval = ms;
    this.#window = [];
  }

  /** The sampling period: the daemon calls `tick` this often. */
  get tickMs(): number {
    return Math.max(10, Math.floor(this.#interval / SAMPLES_PER_INTERVAL));
  }

  /**
   * Takes a sample; once a whole interval is covered, computes this node's figures, writes its
   * own files and returns the message to send (undefined while collecting, or when quiet).
   */
  async tick(): Promise<Uint8Array | undefined> {
    this.#window.push(await this.#deps.sample());
    if (this.#window.length <= SAMPLES_PER_INTERVAL) return undefined;
    const window = this.#window;
    this.#window = [window[window.length - 1]];
    const admin = await this.#deps.admin();
    const speed = admin.speed ?? this.#deps.defaultSpeed;
    const runnable = window.slice(1).reduce((sum, s) => sum + s.runnable, 0) / (window.length - 1);
    const measured: Figures = figures(window[0], window[window.length - 1], runnable, speed);
    this.own = { id: this.#selfId, status: "up", speed, ...measured };
    this.ownBlock = admin.block;
    this.ownCount++;
    await this.#deps.write(this.own);
    if (admin.quiet) return undefined;
    const message: InfoMessage = {
      source: this.#selfAddress,
      block: admin.block,
      speed,
      ...measured,
    };
    return encodeInfo(message);
  }

  /** Takes a member's figures (the daemon has checked it is a member). */
  async receive(id: number, message: InfoMessage, now: number): Promise<void> {
    const info: NodeInfo = {
      id,
      status: "up",
      load: message.load,
      speed: message.speed,
      cpus: message.cpus,
      mem: message.mem,
      rmem: message.rmem,
      tmem: message.tmem,
      util: message.util,
    };
    this.#heard.set(id, { info, at: now, block: message.block });
    await this.#deps.write(info);
  }

  /** Marks a node down at once (it left the map). */
  async forget(id: number): Promise<void> {
    this.#heard.delete(id);
    await this.#deps.write(downInfo(id));
  }

  /** Marks down the nodes whose figures are older than STALE_INTERVALS intervals. */
  async expire(now: number): Promise<number[]> {
    const stale: number[] = [];
    for (const [id, heard] of this.#heard) {
      if (now - heard.at > STALE_INTERVALS * this.#interval) stale.push(id);
    }
    for (const id of stale) await this.forget(id);
    return stale;
  }

  /** Every node down, this one too (the daemon stops: nothing it knows stays current). */
  async stop(): Promise<void> {
    for (const id of [...this.#heard.keys()]) await this.forget(id);
    await this.#deps.write(downInfo(this.#selfId));
  }

  /** Every other node's figures as last heard, with its block flag. */
  known(): { info: NodeInfo; block: boolean; at: number }[] {
    return [...this.#heard.values()].map(({ info, block, at }) => ({ info, block, at }));
  }

  /** The figures last heard from a node. */
  heard(id: number): NodeInfo | undefined {
    return this.#heard.get(id)?.info;
  }
}
