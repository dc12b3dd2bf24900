/**
 * The cluster as the status page shows it, kept up to date at the pace of the information
 * exchange (PROTOCOL.md §14): every node's figures (from the exchange, in memory), flags and
 * network load, every job and the recent moves (this node's directly, the others' over the channel,
 * lib/web/poller.ts), gathered into one {@linkcode ClusterView}.
 *
 * What it costs is bounded by who looks:
 * - always, once per information interval: one point of each node's load into the history
 *   (lib/web/history.ts), from figures already in memory; nothing else, nothing on the network;
 * - while a page watches (`watch`): once per interval, this node's flags and counters read, every
 *   other node that is up asked (one connection each, three small requests), the new view diffed
 *   against the one sent last (lib/web/diff.ts) and the change handed to the watchers;
 * - for an API request (`fresh`): the same gathering, at most once per interval however many ask.
 * No node is asked more often than once per interval, and a node that is slow to answer delays
 * neither the others nor the page: its answer counts when it comes.
 */
import type { Clock } from "../base/clock.ts";
import type { NodeInfo } from "../state/nodestate.ts";
import { applyChange, type ChangeEvent, diffViews } from "./diff.ts";
import { LoadHistory } from "./history.ts";
import {
  byJob,
  byMove,
  type ClusterView,
  type HistoryView,
  type JobView,
  MAX_JOBS,
  MAX_MOVES,
  MAX_MOVES_PER_NODE,
  type MoveView,
  type NodeFlags,
  type NodeView,
} from "./model.ts";
import { type NetCounters, netRates } from "./netdev.ts";
import type { PeerReport } from "./poller.ts";
import type { MovesReport, NodeStatus } from "./statuswire.ts";

/** After this long without a watcher or a request, the connections to the other nodes close. */
export const IDLE_CLOSE_MS = 30_000;
/** Part of an interval a gathering waits for the other nodes' answers before it goes on. */
const WAIT_SHARE = 0.8;

/** Where the collector gets what it shows. */
export interface CollectorSources {
  readonly self: { readonly id: number; readonly address: string };
  readonly keyed: boolean;
  readonly clock: Clock;
  /** The information interval now, in ms. */
  readonly interval: () => number;
  /** The nodes of the map now, with their addresses. */
  readonly members: () => readonly { readonly id: number; readonly address: string }[];
  /** The figures of the nodes that are up (this one's included, once it has some). */
  readonly figures: () => Promise<readonly NodeInfo[]>;
  /** This node's own answers. */
  readonly local: Pick<NodeStatus, "node" | "jobs" | "moves">;
  /** Asks another node (lib/web/poller.ts): its moves after `since` of its log of `epoch`. */
  readonly poll: (
    id: number,
    address: string,
    since: number,
    epoch: number,
  ) => Promise<PeerReport>;
  /** Nobody looks any more: close the connections to the other nodes. */
  readonly idle?: () => void;
}

/** What the collector knows of one node beyond its figures. */
interface Book {
  address: string;
  flags: NodeFlags | null;
  counters?: { readonly net: NetCounters; readonly at: number };
  rates: { in: number | null; out: number | null };
  /** Its jobs (it is their home); undefined when they could not be read. */
  jobs?: JobView[];
  epoch: number;
  rev: number;
  moves: Map<string, MoveView>;
  /** When it was last asked (clock ms), and whether an answer is awaited. */
  askedAt: number;
  asking: boolean;
}

/** A page's subscription: the view to start from, and how to stop. */
export interface Watch {
  readonly view: ClusterView;
  readonly history: HistoryView;
  stop(): void;
}

/** The collector; `start` its interval, `stop` it. */
export class ClusterCollector {
  readonly #sources: CollectorSources;
  readonly #history: LoadHistory;
  readonly #books = new Map<number, Book>();
  readonly #watchers = new Set<(change: ChangeEvent) => void>();
  /** The view sent to the watchers last: the base of the next change. */
  #base: ClusterView | undefined;
  /** The view gathered last, and the gathering under way. */
  #latest: ClusterView | undefined;
  #gathering: Promise<ClusterView> | undefined;
  #stopTimer = () => {};
  #timerInterval = 0;
  #lastDemand: number;
  #idle = true;
  #ticking = false;
  /** Gatherings done (for the tests and the stats). */
  gathered = 0;

  constructor(sources: CollectorSources, options: { historyPoints?: number } = {}) {
    this.#sources = sources;
    this.#history = new LoadHistory(options.historyPoints);
    this.#lastDemand = sources.clock.now();
  }

  /** Pages watching now. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /** Starts the interval (history, and the watchers' changes). */
  start(): void {
    this.#timerInterval = this.#sources.interval();
    this.#stopTimer = this.#sources.clock.every(this.#timerInterval, () => void this.tick());
  }

  /** Stops the interval; the watchers get nothing more. */
  stop(): void {
    this.#stopTimer();
    this.#stopTimer = () => {};
    this.#watchers.clear();
  }

  /** The load history now. */
  history(): HistoryView {
    return this.#history.view();
  }

  /**
   * One interval: a point of history; with watchers, a gathering and its change sent to them.
   * The interval's timer calls it; tests call it directly.
   */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const now = this.#sources.clock.now();
      const figures = await this.#sources.figures();
      this.#history.push(now, new Map(figures.map((f) => [f.id, f.load])));
      if (this.#watchers.size > 0) {
        const view = await this.#gather();
        const change = diffViews(this.#base ?? view, view);
        this.#base = view;
        for (const watcher of [...this.#watchers]) watcher(change);
      } else if (!this.#idle && now - this.#lastDemand >= IDLE_CLOSE_MS) {
        this.#idle = true;
        this.#sources.idle?.();
      }
      if (this.#sources.interval() !== this.#timerInterval && this.#timerInterval > 0) {
        this.#stopTimer();
        this.start();
      }
    } finally {
      this.#ticking = false;
    }
  }

  /** A view at most one interval old (an API request's), gathered now when the last is older. */
  async fresh(): Promise<ClusterView> {
    const latest = this.#latest;
    if (latest && this.#sources.clock.now() - latest.at < this.#sources.interval()) return latest;
    return await this.#gather();
  }

  /**
   * A view for a snapshot (`om status --html`): fresh, and gathered once more an interval later
   * when a node that is up has no network rates yet (they take two readings, and nobody was
   * watching).
   */
  async snapshot(): Promise<ClusterView> {
    const view = await this.fresh();
    if (!view.nodes.some((n) => n.status === "up" && n.netIn === null)) return view;
    await this.#sources.clock.sleep(this.#sources.interval());
    return await this.#gather();
  }

  /**
   * Watches the cluster: the view to start from and the history, then `onChange` with every
   * interval's change until `stop`. The first change applies to the view given here.
   */
  async watch(onChange: (change: ChangeEvent) => void): Promise<Watch> {
    let view = this.#base;
    if (this.#watchers.size === 0 || !view) {
      view = await this.#gather();
      // Another page may have started watching meanwhile: its base is the one to share.
      if (this.#watchers.size === 0 || !this.#base) this.#base = view;
      view = this.#base;
    }
    this.#watchers.add(onChange);
    return {
      view,
      history: this.#history.view(),
      stop: () => {
        this.#watchers.delete(onChange);
        this.#lastDemand = this.#sources.clock.now();
        if (this.#watchers.size === 0) this.#base = undefined;
      },
    };
  }

  /** Gathers a view (one at a time: a second caller shares the gathering under way). */
  #gather(): Promise<ClusterView> {
    this.#lastDemand = this.#sources.clock.now();
    this.#idle = false;
    this.#gathering ??= this.#gatherNow().finally(() => this.#gathering = undefined);
    return this.#gathering;
  }

  async #gatherNow(): Promise<ClusterView> {
    const { self, clock } = this.#sources;
    const interval = this.#sources.interval();
    const figures = new Map((await this.#sources.figures()).map((f) => [f.id, f]));
    for (const member of this.#sources.members()) this.#book(member.id).address = member.address;
    this.#book(self.id).address = self.address;

    // This node, from its own sources.
    const own = this.#book(self.id);
    const [report, jobs, moves] = await Promise.all([
      this.#sources.local.node(),
      this.#sources.local.jobs(),
      this.#sources.local.moves(own.rev, own.epoch),
    ]);
    this.#take(own, { node: report, jobs, moves }, clock.now());

    // The others that are up, each at most once per interval, answers awaited for a while.
    const asked: Promise<void>[] = [];
    for (const [id, book] of this.#books) {
      if (id === self.id) continue;
      if (!figures.has(id)) {
        book.jobs = undefined;
        book.rates = { in: null, out: null };
        book.counters = undefined;
        continue;
      }
      if (book.asking || clock.now() - book.askedAt < interval * 0.9) continue;
      book.asking = true;
      book.askedAt = clock.now();
      asked.push(
        this.#sources.poll(id, book.address, book.rev, book.epoch)
          .then(
            (answer) => this.#take(book, answer, clock.now()),
            () => this.#take(book, {}, clock.now()),
          )
          .finally(() => book.asking = false),
      );
    }
    if (asked.length) {
      let cancel = () => {};
      await Promise.race([
        Promise.all(asked),
        new Promise<void>((resolve) => cancel = clock.after(interval * WAIT_SHARE, resolve)),
      ]);
      cancel();
    }
    const view = this.#view(figures, clock.now(), interval);
    this.#latest = view;
    this.gathered++;
    return view;
  }

  #book(id: number): Book {
    let book = this.#books.get(id);
    if (!book) {
      book = {
        address: "",
        flags: null,
        rates: { in: null, out: null },
        epoch: 0,
        rev: 0,
        moves: new Map(),
        askedAt: -Infinity,
        asking: false,
      };
      this.#books.set(id, book);
    }
    return book;
  }

  /** Takes a node's answers into its book. */
  #take(book: Book, answer: PeerReport, at: number): void {
    if (answer.node) {
      book.flags = answer.node.flags;
      const before = book.counters;
      book.rates = netRates(before?.net, answer.node.net, before ? at - before.at : 0);
      book.counters = { net: answer.node.net, at };
    }
    book.jobs = answer.jobs;
    if (answer.moves) this.#takeMoves(book, answer.moves);
  }

  #takeMoves(book: Book, report: MovesReport): void {
    if (report.epoch !== book.epoch) {
      // Another daemon (restarted): its log begins again.
      book.moves.clear();
      book.epoch = report.epoch;
      book.rev = 0;
    }
    for (const move of report.moves) book.moves.set(move.key, move);
    book.rev = Math.max(book.rev, report.rev);
    if (book.moves.size > MAX_MOVES_PER_NODE) {
      const keep = [...book.moves.values()].sort(byMove).slice(0, MAX_MOVES_PER_NODE);
      book.moves = new Map(keep.map((m) => [m.key, m]));
    }
  }

  #view(figures: ReadonlyMap<number, NodeInfo>, at: number, interval: number): ClusterView {
    const { self, keyed } = this.#sources;
    const memberIds = new Set(this.#sources.members().map((m) => m.id));
    const ids = [...new Set([...this.#books.keys(), ...figures.keys()])].sort((a, b) => a - b);
    const jobs: JobView[] = [];
    const unread: number[] = [];
    for (const id of ids) {
      const book = this.#book(id);
      const up = id === self.id || figures.has(id);
      if (!up) continue;
      if (book.jobs) jobs.push(...book.jobs);
      else unread.push(id);
    }
    jobs.sort(byJob);
    jobs.splice(MAX_JOBS);
    const running = new Map<number, number>();
    for (const job of jobs) if (!job.ended) running.set(job.node, (running.get(job.node) ?? 0) + 1);
    const nodes = ids.map((id): NodeView => {
      const book = this.#book(id);
      const info = figures.get(id);
      const up = id === self.id || info !== undefined;
      const cpus = info?.cpus ?? 0;
      const load = info?.load ?? 0;
      return {
        id,
        address: book.address,
        status: up ? "up" : "down",
        self: id === self.id,
        inMap: memberIds.has(id) || id === self.id,
        cpus,
        speed: info?.speed ?? 0,
        load,
        loadPerCpu: cpus > 0 ? Math.round(load / cpus) : 0,
        mem: info?.mem ?? 0,
        rmem: info?.rmem ?? 0,
        tmem: info?.tmem ?? 0,
        util: info?.util ?? 0,
        flags: book.flags,
        netIn: up ? book.rates.in : null,
        netOut: up ? book.rates.out : null,
        jobs: running.get(id) ?? 0,
      };
    });
    const moves = [...this.#books.values()].flatMap((b) => [...b.moves.values()]).sort(byMove)
      .slice(0, MAX_MOVES);
    return { self: self.id, keyed, interval, at, unread, nodes, jobs, moves };
  }
}

/** The view a page shows after the changes it got (for tests, and the page's own check). */
export function replay(view: ClusterView, changes: readonly ChangeEvent[]): ClusterView {
  return changes.reduce(applyChange, view);
}
