/**
 * The guests of a node (PROTOCOL.md §11.2, "After the commit"): jobs it runs for other home nodes.
 * A guest's output and end go home through a HomeLink (lib/migration/homelink.ts); its stdin and
 * signals come from home (`job.input`, `job.signal`); it moves on only when its home asks
 * (`mig.move`), and this node asks its home to move it (`mig.request`, for the balancer and
 * expel). A copy whose home disowns it, or no longer knows the job, is killed.
 */
import { identifyProcess, type ProcessIdentity, signalProcess } from "../jobs/processid.ts";
import type { ChannelClient } from "../channel/client.ts";
import type { Peer } from "../channel/handshake.ts";
import { encodeBase64, handlesSignal } from "../jobs/jobwire.ts";
import { decodeBase64 } from "../jobs/jobwire.ts";
import { type JobExit, type JobPolicy, type OutputFd, SIGNAL_NUMBERS } from "../jobs/table.ts";
import { replaceFile } from "../state/tree.ts";
import { jsonBytes, jsonOf } from "../base/json.ts";
import { HomeLink, HomeUnreachableError, isDisowned, isUnknownJob } from "./homelink.ts";
import { message, MigrationError, type MigrationReport } from "./errors.ts";
import { now, type RoleContext } from "./context.ts";
import type { Source } from "./source.ts";
import type { Incoming, RestoredCopy } from "./target.ts";

/** Signals that kill by default; see Deputy.signal. */
const TERMINATING: readonly Deno.Signal[] = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];

/** A job running here for another home node, as the balancer sees it. */
export interface GuestView {
  readonly id: number;
  readonly home: number;
  /** Its PID 1 on this host. */
  readonly pid: number;
  readonly policy: JobPolicy;
  /** When it arrived here (ms since the epoch). */
  readonly arrived: number;
}

/** A job running here for another home node. */
interface Guest extends GuestView {
  readonly command: readonly string[];
  /**
   * Its PID 1 as it was when it landed (PID and start time): every signal and kill checks the PID
   * still names that process (undefined: it had ended by then).
   */
  readonly who: ProcessIdentity | undefined;
  /** The write end of its stdin; replaced when a failed migration reopens it. */
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** End of file was asked for: the write end is closed. */
  eof?: boolean;
  killedFor?: Deno.Signal;
  /** It moved on (mig.move): its end is not the job's. */
  moved?: boolean;
  /** Done once its output and end were sent home. */
  served?: Promise<void>;
}

/** The guests this node runs. */
export class Guests {
  readonly #context: RoleContext;
  readonly #source: Source;
  readonly #guests = new Map<number, Guest>();
  /** Guests this node is moving on (mig.move), until the move has ended either way. */
  readonly #moving = new Set<number>();

  constructor(context: RoleContext, source: Source) {
    this.#context = context;
    this.#source = source;
  }

  /** The guests running here now. */
  list(): GuestView[] {
    return [...this.#guests.values()].filter((g) => !g.moved).map((g) => ({
      id: g.id,
      home: g.home,
      pid: g.pid,
      policy: g.policy,
      arrived: g.arrived,
    }));
  }

  /** A copy of job `id` is a guest here (even one that has moved on and is going). */
  has(id: number): boolean {
    return this.#guests.has(id);
  }

  /** Job `id` runs here as a guest that has not moved on. */
  runs(id: number): boolean {
    const guest = this.#guests.get(id);
    return guest !== undefined && !guest.moved;
  }

  /** This node is moving guest `id` on (mig.move). */
  moving(id: number): boolean {
    return this.#moving.has(id);
  }

  /** A job restored here for another home, and let run: it is a guest from now on. */
  async host(incoming: Incoming, copy: RestoredCopy): Promise<void> {
    const { logger, nodeId, root } = this.#context;
    const { id } = incoming;
    const guest: Guest = {
      id,
      home: incoming.home,
      command: incoming.command,
      policy: incoming.policy,
      arrived: Date.now(),
      pid: copy.pid,
      who: identifyProcess(copy.pid),
      stdin: copy.stdin,
      eof: incoming.stdinEof === true,
    };
    this.#guests.set(id, guest);
    const record = `${root}/jobs/${id}`;
    await Deno.mkdir(`${root}/jobs`, { recursive: true }).catch(() => {});
    await replaceFile(
      record,
      jsonBytes({
        pid: id,
        node: nodeId,
        home: incoming.home,
        command: incoming.command,
        started: Date.now(),
        policy: incoming.policy,
      }),
    ).catch(() => {});
    logger.info("job {id} of node {home}: restored here as pid {pid}", {
      id,
      home: incoming.home,
      pid: copy.pid,
    });
    guest.served = this.#serve(guest, copy, incoming.homeAddress, incoming.dir, record);
  }

  /** job.input: bytes for a guest's stdin, or its end, from its home. */
  async input(request: { id: number; data?: string; eof?: boolean }): Promise<void> {
    const guest = this.#guest(request.id);
    if (request.data && !guest.eof) {
      await guest.stdin.write(decodeBase64(request.data)).catch(() => {});
    }
    if (request.eof && !guest.eof) {
      guest.eof = true;
      await guest.stdin.close().catch(() => {});
    }
  }

  /** job.signal: delivers a signal to a guest as Deputy.signal does at home. */
  async signal(id: number, signal: Deno.Signal): Promise<Deno.Signal> {
    const guest = this.#guest(id);
    const number = SIGNAL_NUMBERS[signal];
    if (number === undefined) throw new RangeError(`Cannot send "${signal}": unknown signal`);
    let sent = signal;
    if (TERMINATING.includes(signal)) {
      const status = await Deno.readTextFile(`/proc/${guest.pid}/status`).catch(() => "");
      if (status && !handlesSignal(status, number)) {
        guest.killedFor = signal;
        sent = "SIGKILL";
      }
    }
    const group = sent !== "SIGKILL" && (signal === "SIGINT" || signal === "SIGQUIT");
    if (!guest.who || !signalProcess(guest.who, group ? signal : sent, { group })) {
      throw new Error(`Cannot signal job ${id}: it has ended`);
    }
    return sent;
  }

  /**
   * mig.move, asked by `peer`, the guest's home: sends the guest to `to` (as the source), then
   * marks it moved (its end is not the job's), kills it and waits until its last output reached
   * home, so that the output from its new node follows it.
   */
  async move(id: number, to: number, peer: Peer): Promise<MigrationReport> {
    const guest = this.#guest(id);
    if (peer.nodeId !== guest.home) {
      throw new Error(`job ${id} is not a job of node ${peer.nodeId}`);
    }
    if (this.#moving.has(id)) throw new Error(`job ${id} is being moved already`);
    this.#moving.add(id);
    let report: MigrationReport;
    try {
      report = await this.#moveNow(guest, to);
    } finally {
      this.#moving.delete(id);
    }
    if (this.#context.faults.loseMoveReply) {
      throw new Error("the answer to mig.move was lost (a test's fault: loseMoveReply)");
    }
    return report;
  }

  async #moveNow(guest: Guest, to: number): Promise<MigrationReport> {
    const start = now();
    const report = await this.#source.send({
      id: guest.id,
      pid: guest.pid,
      who: guest.who,
      home: guest.home,
      command: guest.command,
      policy: guest.policy,
      target: to,
      start,
      detach: async () => {
        const eof = guest.eof === true;
        guest.eof = true;
        if (!eof) await guest.stdin.close().catch(() => {});
        return eof;
      },
      reattach: (writer, eof) => {
        guest.stdin = writer;
        guest.eof = eof;
        if (eof) void writer.close().catch(() => {});
      },
    });
    guest.moved = true;
    if (guest.who) signalProcess(guest.who, "SIGKILL");
    await guest.served;
    return { ...report, totalMs: Math.round(now() - start) };
  }

  /**
   * Asks the home of guest `id` to move it to `to` (a node id, or its home): the home decides,
   * as for every move of its jobs, and asks this node to send it (`mig.request`, then `mig.move`).
   * `by`: who here asks (this node's balancer, or expel), told to the home for its log of moves.
   */
  async requestMove(
    id: number,
    to: number | "home",
    by?: "balancer" | "expel",
  ): Promise<MigrationReport> {
    const guest = this.#guest(id);
    let client: ChannelClient;
    try {
      client = await this.#context.connect(guest.home);
    } catch (error) {
      throw new MigrationError(
        `Cannot move job ${id}: cannot reach its home node ${guest.home}: ${message(error)}`,
        undefined,
      );
    }
    try {
      const body = jsonBytes({ id, to, ...(by ? { by } : {}) });
      const reply = await client.request("mig.request", body, { timeoutMs: 0 });
      return jsonOf(reply);
    } catch (error) {
      throw MigrationError.from(error);
    } finally {
      await client.close().catch(() => {});
    }
  }

  #guest(id: number): Guest {
    const guest = this.#guests.get(id);
    if (!guest) throw new Error(`no job ${id} on this node`);
    return guest;
  }

  /** Pushes a guest's output home, then its exit; forgets it. */
  async #serve(
    guest: Guest,
    copy: RestoredCopy,
    homeAddress: string | undefined,
    dir: string,
    record: string,
  ): Promise<void> {
    const { logger } = this.#context;
    const { id } = guest;
    const { child, status } = copy;
    const home = new HomeLink({
      connect: () => this.#context.connect(guest.home, homeAddress),
      where: `node ${guest.home}`,
      onRetry: (command, error) =>
        logger.warn("job {id}: {command} to its home node {home} failed ({error}); sending again", {
          id,
          command,
          home: guest.home,
          error: message(error),
        }),
    });
    // Why this copy was ended here, not by the job itself: its output and end are not sent home.
    let orphaned: string | undefined;
    let exited = false;
    void status.then(() => exited = true);
    const orphan = (why: string) => {
      if (orphaned !== undefined || guest.moved) return;
      orphaned = why;
      logger.error("job {id} of node {home}: {why}: its copy here is killed", {
        id,
        home: guest.home,
        why,
      });
      if (exited) return; // its PID may be another process's by now
      if (guest.who) signalProcess(guest.who, "SIGKILL");
    };
    const failed = (error: unknown, what: string) => {
      if (isDisowned(error)) orphan(`its home says it runs elsewhere`);
      else if (isUnknownJob(error) && !exited) {
        orphan(`its home has no such job (its daemon restarted, or the job ended there)`);
      } else if (error instanceof HomeUnreachableError) orphan(error.message);
      else logger.warn(`job {id}: ${what}: {error}`, { id, error: message(error) });
    };
    const push = async (stream: ReadableStream<Uint8Array>, fd: OutputFd) => {
      let offset = 0;
      for await (const chunk of stream) {
        if (orphaned !== undefined) continue;
        await home.send("job.push", jsonBytes({ id, fd, offset, data: encodeBase64(chunk) }))
          .catch(
            (error) => failed(error, "output lost on the way home"),
          );
        offset += chunk.length;
      }
    };
    const [ended] = await Promise.all([status, push(child.stdout, 1), push(child.stderr, 2)]);
    this.#guests.delete(id);
    await guest.stdin.close().catch(() => {});
    const exit: JobExit = guest.killedFor ? { signal: guest.killedFor } : { code: ended.code };
    if (guest.moved || orphaned !== undefined) {
      await home.close();
      await Deno.remove(record).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (guest.moved) logger.info("job {id} of node {home}: moved on", { id, home: guest.home });
      return;
    }
    await home.send("job.exited", jsonBytes({ id, exit })).catch((error) =>
      failed(error, "its exit did not reach home")
    );
    await home.close();
    await Deno.remove(record).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    logger.info("job {id} of node {home}: ended with {exit}", {
      id: guest.id,
      home: guest.home,
      exit: JSON.stringify(exit),
    });
  }
}
