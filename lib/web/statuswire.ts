/**
 * The read-only channel commands the status page asks every node (PROTOCOL.md §14.4), both
 * sides: `status.node` (its admin flags and network counters), `status.jobs` (the jobs whose home
 * it is) and `status.migrations` (its log of recent moves, since a revision). Each node answers for
 * itself, so every job and every move is reported by exactly one node, its home.
 *
 * `status.node` is served to whoever may use the channel, as `info` is. `status.jobs` and
 * `status.migrations` tell jobs' users and command lines: they are served only in a cluster with
 * a key (every connection then proves it); a keyless node refuses them, and a keyless page shows
 * only its own node's jobs.
 *
 * What comes back from another node is checked and bounded before it is used (`read*`): a reply
 * of the wrong shape is an error, too many jobs are cut, and long texts are cut.
 */
import { jsonBytes, jsonOf } from "../base/json.ts";
import type { Handler } from "../channel/server.ts";
import type { Job } from "../jobs/table.ts";
import type { MoveEntry, MoveLog } from "../migration/movelog.ts";
import { MOVE_ASKERS, MOVE_ERROR_CHARS } from "../migration/movelog.ts";
import {
  jobKey,
  type JobView,
  MAX_COMMAND_CHARS,
  MAX_JOBS_PER_NODE,
  MAX_MOVES_PER_NODE,
  type MoveView,
  NODE_FLAGS,
  type NodeFlags,
} from "./model.ts";
import type { NetCounters } from "./netdev.ts";

/** The commands, as registered in the node's handler table. */
export const STATUS_COMMANDS = ["status.node", "status.jobs", "status.migrations"] as const;

/** Why a keyless node refuses `status.jobs` and `status.migrations`. */
export const KEY_ONLY = "a node's jobs are shown only to holders of the cluster key, and this " +
  "cluster has none (om keygen, key = FILE)";

/** `status.node`'s reply. */
export interface NodeReport {
  readonly flags: NodeFlags;
  readonly net: NetCounters;
}

/** `status.migrations`' reply: the log's epoch and revision, and the moves changed since. */
export interface MovesReport {
  readonly epoch: number;
  readonly rev: number;
  readonly moves: readonly MoveView[];
}

/** What a node answers from. */
export interface StatusSources {
  readonly nodeId: number;
  /** This node's admin flags now. */
  readonly flags: () => Promise<NodeFlags>;
  /** This node's network counters now. */
  readonly net: () => NetCounters;
  /** The deputy's table: the jobs whose home this node is. */
  readonly jobs: () => readonly Job[];
  /** The log of moves of those jobs; none: no moves to tell. */
  readonly moves?: MoveLog;
  /** A uid's name (`uid N` when none). */
  readonly userName: (uid: number) => Promise<string>;
}

/** A job of the deputy's table as the page shows it. */
export async function jobView(
  job: Job,
  userName: (uid: number) => Promise<string>,
): Promise<JobView> {
  return {
    key: jobKey(job.home, job.id),
    pid: job.id,
    home: job.home,
    node: job.node,
    user: await userName(job.uid),
    uid: job.uid,
    command: commandLine(job.command),
    started: job.started,
    migrations: job.migrations,
    locked: job.policy.lock,
    ended: job.output.exit !== undefined,
  };
}

/** A command line as one text of at most MAX_COMMAND_CHARS characters. */
export function commandLine(argv: readonly string[]): string {
  const text = argv.join(" ");
  return text.length > MAX_COMMAND_CHARS ? `${text.slice(0, MAX_COMMAND_CHARS - 3)}...` : text;
}

/** A move of the log as the page shows it; `epoch` is the log's. */
export async function moveView(
  entry: MoveEntry,
  epoch: number,
  userName: (uid: number) => Promise<string>,
): Promise<MoveView> {
  const { cause } = entry;
  return {
    key: `${entry.home}:${epoch}:${entry.seq}`,
    at: entry.at,
    pid: entry.id,
    home: entry.home,
    from: entry.from,
    to: entry.to,
    by: cause.by,
    user: cause.by === "user" && cause.uid !== undefined ? await userName(cause.uid) : null,
    asker: cause.node ?? null,
    result: entry.result,
    frozenMs: entry.frozenMs ?? null,
    totalMs: entry.totalMs ?? null,
    step: entry.step ?? null,
    error: entry.error ?? null,
  };
}

/** This node's answers: used by its own status page directly, and by the channel's handlers. */
export class NodeStatus {
  readonly #sources: StatusSources;

  constructor(sources: StatusSources) {
    this.#sources = sources;
  }

  /** Admin flags and network counters. */
  async node(): Promise<NodeReport> {
    return { flags: await this.#sources.flags(), net: this.#sources.net() };
  }

  /** The jobs whose home this node is (at most MAX_JOBS_PER_NODE). */
  async jobs(): Promise<JobView[]> {
    const jobs = this.#sources.jobs().slice(0, MAX_JOBS_PER_NODE);
    return await Promise.all(jobs.map((job) => jobView(job, this.#sources.userName)));
  }

  /**
   * The moves changed after revision `since` of the log of `epoch` (all the log holds when
   * `epoch` is another log's: the asker knew this node before its daemon restarted).
   */
  async moves(since = 0, epoch?: number): Promise<MovesReport> {
    const log = this.#sources.moves;
    if (!log) return { epoch: 0, rev: 0, moves: [] };
    const entries = log.since(epoch === log.epoch ? since : 0).slice(-MAX_MOVES_PER_NODE);
    return {
      epoch: log.epoch,
      rev: log.rev,
      moves: await Promise.all(entries.map((e) => moveView(e, log.epoch, this.#sources.userName))),
    };
  }

  /** The channel's handlers; without a key, `status.jobs` and `status.migrations` refuse. */
  handlers(keyed: boolean): Map<string, Handler> {
    const refuse = (name: string): Handler => () =>
      Promise.reject(new Error(`Cannot run "${name}" on this node: ${KEY_ONLY}`));
    return new Map<string, Handler>([
      ["status.node", async () => jsonBytes(await this.node())],
      [
        "status.jobs",
        keyed ? async () => jsonBytes({ jobs: await this.jobs() }) : refuse("status.jobs"),
      ],
      [
        "status.migrations",
        keyed
          ? async (body) => {
            const { since, epoch } = sinceOf(body);
            return jsonBytes(await this.moves(since, epoch));
          }
          : refuse("status.migrations"),
      ],
    ]);
  }
}

/**
 * A `status.migrations` body, `{"since":REV,"epoch":EPOCH}`: the revision and the log it is of;
 * empty, or a field absent, means from the start (since 0, any log).
 */
export function sinceOf(body: Uint8Array): { since: number; epoch?: number } {
  if (body.length === 0) return { since: 0 };
  let value: { since?: unknown; epoch?: unknown } | null;
  try {
    value = jsonOf<{ since?: unknown; epoch?: unknown } | null>(body);
  } catch {
    throw new TypeError("Cannot read the body of status.migrations: not JSON");
  }
  const { since = 0, epoch } = value ?? {};
  const whole = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!whole(since) || (epoch !== undefined && !whole(epoch))) {
    throw new TypeError(
      "Cannot read the body of status.migrations: since or epoch is not a whole number",
    );
  }
  return { since: since as number, ...(epoch !== undefined ? { epoch: epoch as number } : {}) };
}

/** Remembers uids' names (a lookup runs `getent`), at most 1024 of them. */
export function cachedNames(
  lookup: (uid: number) => Promise<string>,
): (uid: number) => Promise<string> {
  const names = new Map<number, Promise<string>>();
  return (uid) => {
    let name = names.get(uid);
    if (!name) {
      if (names.size >= 1024) names.clear();
      name = lookup(uid).catch(() => `uid ${uid}`);
      names.set(uid, name);
    }
    return name;
  };
}

// Reading another node's replies.

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNode = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 0xffff;
const text = (v: unknown, max: number): string | undefined =>
  typeof v === "string" ? v.slice(0, max) : undefined;

/** A reply's JSON object, or a TypeError naming the command. */
function replyOf(command: string, bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = jsonOf(bytes);
  } catch {
    throw new TypeError(`Cannot read the reply to ${command}: not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot read the reply to ${command}: not an object`);
  }
  return value as Record<string, unknown>;
}

/** Reads `status.node`'s reply. */
export function readNodeReport(bytes: Uint8Array): NodeReport {
  const reply = replyOf("status.node", bytes);
  const flags = reply.flags as Record<string, unknown> | null;
  const net = reply.net as Record<string, unknown> | null;
  if (
    typeof flags !== "object" || flags === null ||
    NODE_FLAGS.some((f) => typeof flags[f] !== "boolean") ||
    typeof net !== "object" || net === null || !isCount(net.rx) || !isCount(net.tx)
  ) {
    throw new TypeError(
      "Cannot read the reply to status.node: fields missing or of the wrong type",
    );
  }
  return {
    flags: Object.fromEntries(NODE_FLAGS.map((f) => [f, flags[f] as boolean])) as NodeFlags,
    net: { rx: net.rx, tx: net.tx },
  };
}

/**
 * Reads `status.jobs`' reply from node `home`: its jobs (at most MAX_JOBS_PER_NODE, texts cut);
 * a job it says has another home is left out (each home reports its own).
 */
export function readJobsReport(bytes: Uint8Array, home: number): JobView[] {
  const reply = replyOf("status.jobs", bytes);
  if (!Array.isArray(reply.jobs)) {
    throw new TypeError("Cannot read the reply to status.jobs: no jobs");
  }
  const jobs: JobView[] = [];
  for (const raw of reply.jobs.slice(0, MAX_JOBS_PER_NODE) as Record<string, unknown>[]) {
    if (typeof raw !== "object" || raw === null) continue;
    const user = text(raw.user, 64);
    const command = text(raw.command, MAX_COMMAND_CHARS);
    if (
      raw.home !== home || !isCount(raw.pid) || raw.pid === 0 || !isNode(raw.node) ||
      !isCount(raw.uid) || user === undefined || command === undefined ||
      typeof raw.started !== "number" || !Number.isFinite(raw.started) ||
      !isCount(raw.migrations) || typeof raw.locked !== "boolean" || typeof raw.ended !== "boolean"
    ) continue;
    jobs.push({
      key: jobKey(home, raw.pid),
      pid: raw.pid,
      home,
      node: raw.node,
      user,
      uid: raw.uid,
      command,
      started: raw.started,
      migrations: raw.migrations,
      locked: raw.locked,
      ended: raw.ended,
    });
  }
  return jobs;
}

const nullOr = <T>(v: unknown, check: (v: unknown) => v is T): v is T | null =>
  v === null || check(v);
const isMs = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === "string";

/** Reads `status.migrations`' reply from node `home` (each move's key and home checked). */
export function readMovesReport(bytes: Uint8Array, home: number): MovesReport {
  const reply = replyOf("status.migrations", bytes);
  if (!isCount(reply.epoch) || !isCount(reply.rev) || !Array.isArray(reply.moves)) {
    throw new TypeError("Cannot read the reply to status.migrations: fields missing");
  }
  const prefix = `${home}:${reply.epoch}:`;
  const moves: MoveView[] = [];
  for (const raw of reply.moves.slice(-MAX_MOVES_PER_NODE) as Record<string, unknown>[]) {
    if (typeof raw !== "object" || raw === null) continue;
    if (
      typeof raw.key !== "string" || !raw.key.startsWith(prefix) ||
      !/^\d{1,15}$/.test(raw.key.slice(prefix.length)) || raw.home !== home ||
      !isMs(raw.at) || !isCount(raw.pid) || !isNode(raw.from) || !isNode(raw.to) ||
      !MOVE_ASKERS.includes(raw.by as never) || !nullOr(raw.user, isText) ||
      !nullOr(raw.asker, isNode) || !["moving", "ok", "failed"].includes(raw.result as string) ||
      !nullOr(raw.frozenMs, isMs) || !nullOr(raw.totalMs, isMs) || !nullOr(raw.step, isText) ||
      !nullOr(raw.error, isText)
    ) continue;
    moves.push({
      key: raw.key,
      at: raw.at,
      pid: raw.pid,
      home,
      from: raw.from,
      to: raw.to,
      by: raw.by as string,
      user: raw.user === null ? null : raw.user.slice(0, 64),
      asker: raw.asker,
      result: raw.result as MoveView["result"],
      frozenMs: raw.frozenMs,
      totalMs: raw.totalMs,
      step: raw.step === null ? null : raw.step.slice(0, 32),
      error: raw.error === null ? null : raw.error.slice(0, MOVE_ERROR_CHARS),
    });
  }
  return { epoch: reply.epoch, rev: reply.rev, moves };
}
