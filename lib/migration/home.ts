/**
 * The home of a job (PROTOCOL.md §11, §11.2): the node where `om run` waits, which decides every
 * move of its jobs and keeps their books. A job that runs here it sends itself (as the source,
 * lib/migration/source.ts); one that runs elsewhere it asks that node to send (`mig.move`),
 * possibly back here, and when the answer does not tell the truth it asks both nodes where the job
 * is (`mig.status`). It records where each job runs BEFORE it kills a stopped local copy, relays
 * `job.input`/`job.signal` to the node a job runs on, and takes that node's output and end
 * (`job.push`, `job.exited`): output from a new node waits until the move is settled and the old
 * node's last output is in, and a push sent again is appended once.
 */
import type { ChannelClient } from "../channel/client.ts";
import type { Peer } from "../channel/handshake.ts";
import type { Deputy } from "../jobs/deputy.ts";
import { encodeBase64 } from "../jobs/jobwire.ts";
import type { Job, JobExit, OutputFd } from "../jobs/table.ts";
import { jsonBytes, jsonOf } from "../base/json.ts";
import { sleep } from "../base/time.ts";
import { decodeBase64 } from "../jobs/jobwire.ts";
import { disownedText } from "./homelink.ts";
import { message, MigrationError, type MigrationReport, type MoveState } from "./errors.ts";
import { now, type RoleContext } from "./context.ts";
import { MOVE_SETTLE_MS } from "./limits.ts";
import { NEEDS_KEY } from "./keyless.ts";
import { type MoveCause, type MoveHandle, type MoveLog, UNSAID } from "./movelog.ts";
import type { Source } from "./source.ts";
import type { Incoming, RestoredCopy } from "./target.ts";

/** No move from here under way (Home.migrate). */
const noArrival = () => {};

/** A move's report, entered in the log of moves (when there is one) as done. */
function ended(logged: MoveHandle | undefined, report: MigrationReport): MigrationReport {
  logged?.ok(report);
  return report;
}

/**
 * What the home needs of the deputy (lib/jobs/deputy.ts): its job table, and its hooks for a move
 * (hold and detach the stdin, the local copy's end, adopting a job come home, recording a move).
 */
export type HomeDeputy = Pick<
  Deputy,
  | "jobs"
  | "holdInput"
  | "localProcess"
  | "detachInput"
  | "reattachInput"
  | "moved"
  | "adopted"
  | "placed"
  | "dropAdoption"
  | "drained"
  | "adopt"
>;

/** What the home needs of the rest of the node. */
export interface HomeLinks {
  /** Whether the cluster has a key; without one no job moves (lib/migration/keyless.ts). */
  readonly keyed: boolean;
  readonly deputy: HomeDeputy;
  readonly source: Source;
  /** Where job `id` is as this node sees it (mig.status of this node). */
  readonly stateHere: (id: number) => MoveState;
  /** Where the moves of this node's jobs are entered (the status page's); none: not kept. */
  readonly moves?: MoveLog;
}

/** The home's side of its jobs' moves. */
export class Home {
  readonly #context: RoleContext;
  readonly #links: HomeLinks;
  /**
   * Jobs being moved, from here or between two other nodes or home, and where to; what that node
   * pushes for them waits until the move is settled.
   */
  readonly #arrivals = new Map<number, { node: number; done: Promise<void> }>();
  /** Jobs committed here on their way home, until the move is settled. */
  readonly #homecomings = new Set<number>();
  /**
   * The bytes of each output fd a moved job's node has pushed, for that placement (the job's node
   * and migration count), so that a push sent again (HomeLink) is not appended twice. Keyed by
   * the job itself: a later job with the same PID starts afresh, an ended one is let go.
   */
  readonly #received = new WeakMap<Job, { node: number; migrations: number; bytes: number[] }>();
  /** Channels to the nodes moved jobs run on, for their stdin and their signals. */
  readonly #relays = new Map<string, Promise<ChannelClient>>();
  /** The jobs a migration (migrate) is under way for. */
  readonly #migrating = new Set<number>();

  constructor(context: RoleContext, links: HomeLinks) {
    this.#context = context;
    this.#links = links;
  }

  /** A job of this node came home and runs here again (its mig.move is not settled yet). */
  homecoming(id: number): boolean {
    return this.#homecomings.has(id);
  }

  /** This node asked for job `id` to come home: its mig.move, to here, is under way. */
  awaits(id: number): boolean {
    return this.#arrivals.get(id)?.node === this.#context.nodeId;
  }

  /** A job of this node, restored here and let run: the deputy runs it again. */
  welcome(incoming: Incoming, copy: RestoredCopy): void {
    const { id } = incoming;
    this.#homecomings.add(id);
    this.#links.deputy.adopt(id, copy.child, copy.pid, copy.stdin, incoming.stdinEof === true);
    this.#context.logger.info("job {id}: restored at home as pid {pid}", { id, pid: copy.pid });
    void Deno.remove(incoming.dir, { recursive: true }).catch(() => {});
  }

  /** How a job that runs elsewhere gets its stdin and signals: through its node (the deputy's). */
  async input(job: Job, data: Uint8Array | undefined, eof: boolean): Promise<void> {
    const body = eof ? { id: job.id, eof: true } : { id: job.id, data: encodeBase64(data!) };
    await this.#relay(job, "input", "job.input", body);
  }

  /** Sends `signal` to a job that runs elsewhere; resolves with the signal sent. */
  async signal(job: Job, signal: Deno.Signal): Promise<Deno.Signal> {
    const reply = await this.#relay(job, "signal", "job.signal", { id: job.id, signal });
    return jsonOf<{ sent: Deno.Signal }>(reply).sent;
  }

  async #relay(job: Job, kind: string, command: string, body: unknown): Promise<Uint8Array> {
    const key = `${job.node}:${kind}`;
    let client = this.#relays.get(key);
    if (!client) {
      client = this.#context.connect(job.node);
      client.catch(() => this.#relays.delete(key));
      this.#relays.set(key, client);
    }
    try {
      return await (await client).request(command, jsonBytes(body), { timeoutMs: 0 });
    } catch (error) {
      this.#context.logger.warn("job {id}: {command} to node {node} failed: {error}", {
        id: job.id,
        command,
        node: job.node,
        error: message(error),
      });
      this.#relays.delete(key);
      void client.then((c) => c.close(), () => {});
      throw error;
    }
  }

  /**
   * Moves job `id` (a job of this home node) to node `to`. When it runs here, this node is the
   * source; when it runs elsewhere, that node is asked to be the source (`mig.move`), and the
   * destination may be this node (the job comes home and the deputy adopts it). Throws
   * MigrationError. `cause`: who asked, for the log of moves (lib/migration/movelog.ts).
   */
  async migrate(
    id: number,
    to: number | "home",
    cause: MoveCause = UNSAID,
  ): Promise<MigrationReport> {
    const { nodeId } = this.#context;
    const { deputy } = this.#links;
    const start = now();
    const job = deputy.jobs.get(id);
    const target = to === "home" ? job.home : to;
    if (!this.#links.keyed) {
      throw new MigrationError(
        `Cannot migrate job ${id} to node ${target}: ${NEEDS_KEY}; the job goes on at node ${job.node}`,
        undefined,
      );
    }
    if (job.output.exit) {
      throw new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined);
    }
    if (target === job.node) {
      throw new MigrationError(
        `Cannot migrate job ${id}: it runs on node ${target} already`,
        undefined,
      );
    }
    if (this.#migrating.has(id)) {
      throw new MigrationError(`Cannot migrate job ${id}: it is being moved already`, undefined);
    }
    this.#migrating.add(id);
    const logged = this.#links.moves?.begin(
      { id, home: job.home, from: job.node, to: target },
      cause,
    );
    // Stdin writes wait from here until the job runs again, here or there.
    const release = await deputy.holdInput(id);
    let arrived = noArrival;
    try {
      if (job.node === nodeId) {
        // The job's PID 1, still the process that started as it (its PID may name another by now).
        const who = deputy.localProcess(id);
        if (who === undefined) {
          throw new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined);
        }
        const pid = who.pid;
        // The target may push output as soon as it commits: it waits until this move is settled
        // (and is refused if the job went on here).
        this.#arrivals.set(id, {
          node: target,
          done: new Promise<void>((resolve) => arrived = resolve),
        });
        const report = await this.#links.source.send({
          id,
          pid,
          who,
          home: job.home,
          command: job.command,
          policy: job.policy,
          target,
          start,
          detach: () => deputy.detachInput(id).then((d) => d?.eof),
          reattach: (writer, eof) => deputy.reattachInput(id, writer, eof),
        });
        job.migrations++;
        job.movedAt = Date.now();
        await deputy.moved(id, target);
        return ended(logged, { ...report, totalMs: Math.round(now() - start) });
      }
      return ended(logged, await this.#moveRemote(job, target, start));
    } catch (error) {
      const failure = MigrationError.from(error);
      logged?.failed({
        step: failure.step,
        message: failure.message,
        totalMs: now() - start,
      });
      throw error;
    } finally {
      if (arrived !== noArrival) {
        this.#arrivals.delete(id);
        arrived();
      }
      release();
      this.#migrating.delete(id);
    }
  }

  /** Asks the node job `job` runs on to move it to `target` (which may be this home node). */
  async #moveRemote(job: Job, target: number, start: number): Promise<MigrationReport> {
    const { nodeId, logger } = this.#context;
    const { deputy } = this.#links;
    const id = job.id;
    const source = job.node;
    let arrived!: () => void;
    const arrival = { node: target, done: new Promise<void>((resolve) => arrived = resolve) };
    this.#arrivals.set(id, arrival);
    let client: ChannelClient | undefined;
    try {
      try {
        client = await this.#context.connect(source);
      } catch (error) {
        throw new MigrationError(
          `Cannot migrate job ${id} to node ${target}: cannot reach node ${source}, where it runs: ${
            message(error)
          }`,
          undefined,
        );
      }
      let report: MigrationReport;
      try {
        const reply = await client.request("mig.move", jsonBytes({ id, to: target }), {
          timeoutMs: 0,
        });
        report = jsonOf(reply);
      } catch (error) {
        // The answer may not tell the truth (a lost connection, a node that went away after the
        // commit): where the job runs is asked of both nodes.
        const settled = await this.#settleMove(job, source, target);
        const failure = MigrationError.from(error);
        if (settled === "ended") {
          throw new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined);
        }
        if (settled !== "moved") {
          throw settled === "unknown"
            ? new MigrationError(
              `${failure.message}; node ${source} and node ${target} did not say where job ${id} runs`,
              failure.step,
              failure.logPath,
            )
            : failure;
        }
        logger.warn(
          "job {id}: mig.move to node {source} failed ({error}), but the job runs on node {to}",
          { id, source, to: target, error: failure.message },
        );
        report = {
          id,
          from: source,
          to: target,
          frozenMs: 0,
          transferMs: 0,
          restoreMs: 0,
          totalMs: 0,
          bytes: 0,
        };
      }
      job.migrations++;
      job.movedAt = Date.now();
      if (target === nodeId) await deputy.adopted(id);
      else await deputy.placed(id, target);
      logger.info("job {id}: moved from node {from} to node {to}", {
        id,
        from: source,
        to: target,
      });
      return { ...report, totalMs: Math.round(now() - start) };
    } catch (error) {
      if (target === nodeId) deputy.dropAdoption(id);
      throw error;
    } finally {
      this.#homecomings.delete(id);
      this.#arrivals.delete(id);
      arrived();
      await client?.close().catch(() => {});
    }
  }

  /**
   * After mig.move failed or got no answer: asks the source and the target where job `id` is
   * (mig.status, every 500 ms for up to MOVE_SETTLE_MS) until it is clear. "stayed": the source
   * runs it; "moved": the target runs it and the source has finished with it (its last output is
   * home); "ended": the job's end reached home meanwhile (it ended where it ran); "unknown":
   * none of these in time.
   */
  async #settleMove(
    job: Job,
    source: number,
    target: number,
  ): Promise<"moved" | "stayed" | "ended" | "unknown"> {
    const { id } = job;
    const until = now() + MOVE_SETTLE_MS;
    for (;;) {
      if (job.output.exit) return "ended";
      const [atSource, atTarget] = await Promise.all([
        this.stateAt(source, id),
        this.stateAt(target, id),
      ]);
      if (atSource === "running") return "stayed";
      if (atSource !== "moving" && atTarget === "running") return "moved";
      if (now() >= until) return "unknown";
      await sleep(500);
    }
  }

  /** Where node `node` says job `id` is (mig.status; this node asks itself); undefined: no answer. */
  async stateAt(node: number, id: number): Promise<MoveState | undefined> {
    if (node === this.#context.nodeId) return this.#links.stateHere(id);
    const client = await this.#context.connect(node).catch(() => undefined);
    try {
      const reply = await client?.request("mig.status", jsonBytes({ id }), { timeoutMs: 5000 });
      return reply ? jsonOf<{ state: MoveState }>(reply).state : undefined;
    } catch {
      return undefined;
    } finally {
      await client?.close().catch(() => {});
    }
  }

  /**
   * mig.request: the node a job runs on asks to move it (its balancer, or expel: `by`, when it
   * says which).
   */
  async request(
    id: number,
    to: number | "home",
    peer: Peer,
    by?: "balancer" | "expel",
  ): Promise<MigrationReport> {
    await this.#movedJob(id, peer);
    return await this.migrate(id, to, { by: by ?? "node", node: peer.nodeId });
  }

  /** job.push: output of a moved job, from the node it runs on. */
  async push(
    push: { id: number; fd: OutputFd; offset: number; data: string },
    peer: Peer,
  ): Promise<void> {
    await this.#arrived(push.id, peer);
    const job = await this.#movedJob(push.id, peer);
    await this.#links.deputy.drained(push.id);
    const fresh = this.#fresh(job, peer.nodeId, push.fd, push.offset, decodeBase64(push.data));
    if (fresh.length > 0) {
      job.output.append(push.fd, fresh);
      await job.output.room();
    }
  }

  /** job.exited: the end of a moved job, from the node it ran on. */
  async exited(id: number, exit: JobExit, peer: Peer): Promise<void> {
    await this.#arrived(id, peer);
    await this.#movedJob(id, peer);
    await this.#links.deputy.drained(id);
    this.#links.deputy.jobs.finish(id, exit);
  }

  /** Output from the node a job is moving to waits until the move is done (and the old node's output is in). */
  async #arrived(id: number, peer: Peer): Promise<void> {
    const arrival = this.#arrivals.get(id);
    if (arrival && arrival.node === peer.nodeId) await arrival.done;
  }

  /**
   * The job `id` that `peer` pushes output or an end for. When it is not recorded there, throws:
   * the disowning error (lib/migration/homelink.ts; that node then kills its copy) when the job
   * verifiably runs elsewhere, here (its source, this node, went on with it after a commit whose
   * answer never came) or at the node recorded, which says so (mig.status); a plain error
   * otherwise (a move that settled as unknown: the copy at `peer` may be the only one).
   */
  async #movedJob(id: number, peer: Peer): Promise<Job> {
    const { nodeId } = this.#context;
    const job = this.#links.deputy.jobs.get(id);
    if (job.node === peer.nodeId) return job;
    if (job.node === nodeId) throw new Error(disownedText(id, peer.nodeId));
    if (await this.stateAt(job.node, id) === "running") {
      throw new Error(disownedText(id, peer.nodeId));
    }
    throw new Error(`job ${id} is recorded on node ${job.node}, not on node ${peer.nodeId}`);
  }

  /**
   * The part of a pushed chunk not appended yet: `offset` is where `data` starts in what `node`
   * has pushed of the job's fd `fd` since it runs there. A chunk sent again after its answer was
   * lost is cut to what is new (nothing, mostly). A gap (pushes lost, e.g. this daemon restarted
   * meanwhile) cannot be filled: it is logged and the data taken from there.
   */
  #fresh(job: Job, node: number, fd: OutputFd, offset: number, data: Uint8Array): Uint8Array {
    let seen = this.#received.get(job);
    if (!seen || seen.node !== node || seen.migrations !== job.migrations) {
      seen = { node, migrations: job.migrations, bytes: [0, 0] };
      this.#received.set(job, seen);
    }
    const have = seen.bytes[fd - 1];
    if (offset > have) {
      this.#context.logger.warn(
        "job {id}: bytes {from} to {to} of its fd {fd} from node {node} never arrived",
        { id: job.id, from: have, to: offset, fd, node },
      );
    }
    seen.bytes[fd - 1] = Math.max(have, offset + data.length);
    return data.subarray(Math.min(data.length, Math.max(0, have - offset)));
  }

  /** Closes the relays; jobs that run elsewhere go on. */
  async close(): Promise<void> {
    for (const client of this.#relays.values()) await client.then((c) => c.close(), () => {});
    this.#relays.clear();
  }
}
