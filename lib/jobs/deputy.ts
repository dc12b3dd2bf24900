/**
 * The home daemon's side of `om run` (openMosix's deputy): the job commands of the local control
 * socket (PROTOCOL.md §10). `job.run` starts a job as lib/criu/startjob.ts says jobs must run to move
 * (PID 1 of its own PID namespace, its own session, stdio on pipes); the deputy pumps its
 * stdout and stderr into the job's output log (lib/jobs/table.ts), writes to its stdin, delivers
 * signals, and records its exit. While a job lives, `<root>/jobs/<id>` holds its record for
 * `om ps`.
 *
 * A migrated job keeps its entry here: its output arrives from the node that runs it and is
 * appended to the same log, `node` changes, and `job.signal`/`job.input` are relayed there
 * instead of touching a local process (held, in order, while it moves: holdInput). A job that
 * comes back home is adopted: its restored copy (under lib/migration/migration.ts's waiter) is followed
 * like a job started here.
 *
 * Processes are who they were (lib/jobs/processid.ts): the deputy knows a job's local copy by its
 * PID 1's PID and start time, recorded when the job starts or is adopted, and forgets it the
 * moment that process ends, whatever output is still unread (lib/jobs/pipes.ts reads the rest of
 * the pipes without waiting for a reader); every signal and kill it sends checks, right before,
 * that the PID still names that process, and sends nothing when it does not ("Cannot signal job
 * N: it has ended"). The output log outlives the process, for `om run` to read; nothing that acts
 * on the PID does.
 *
 * Limits (PROTOCOL.md §10): a user other than root has at most `maxJobsPerUser` jobs in the table;
 * their jobs' unread output shares a budget (lib/jobs/outputbudget.ts).
 *
 * Longer than 600 lines: one class, the job table's keeper, whose commands (run, output, input,
 * signal) and migration hooks (hold, detach, adopt, moved) share its per-job state; the start
 * gate (startgate.ts), the wire forms (jobwire.ts) and the socket (localsocket.ts) are apart.
 */
import type { Handler } from "../channel/server.ts";
import { sessionUid } from "./localauth.ts";
import { jsonBytes } from "../base/json.ts";
import { envScript, START_GATE, WRAPPER_ENV } from "./startgate.ts";
import { decodeBase64, encodeOutput, handlesSignal } from "./jobwire.ts";
import { lookupUser, userName } from "../base/users.ts";
import type { Clock } from "../base/clock.ts";
import { namespacePid1, startJobArgs } from "../criu/startjob.ts";
import {
  isJobPolicy,
  type Job,
  type JobExit,
  type JobPolicy,
  jobRecord,
  JobTable,
  type OutputRead,
  SIGNAL_NUMBERS,
} from "./table.ts";
import type { Logger } from "../base/log.ts";
import { retryUntil } from "../base/retry.ts";
import { replaceFile } from "../state/tree.ts";
import { bodyOf, isId } from "../channel/body.ts";
import { readNodeInfo } from "../state/nodestate.ts";
import type { JobPlace } from "./runoptions.ts";
import {
  identifyProcess,
  isSameProcess,
  type ProcessIdentity,
  signalProcess,
} from "./processid.ts";
import { pumpOutput } from "./pipes.ts";

/** How long `job.output` waits for output before answering with none. */
export const OUTPUT_POLL_MS = 20_000;
/** Jobs one user other than root may have in the table (ended ones not yet collected included). */
export const MAX_JOBS_PER_USER = 256;

/** Signals that kill by default and that `om run` forwards; see {@linkcode deliverSignal}. */
const TERMINATING: readonly Deno.Signal[] = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];

/** Body of `job.run`. */
export interface RunRequest {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  /** Lock and hints (mosrun's options); DEFAULT_POLICY when absent. */
  readonly policy?: JobPolicy;
  /** Where to start it (mosrun -NODE, -j, -F); here when absent. */
  readonly place?: JobPlace;
}

/** Whether `value` is job.run's `place`. */
export function isJobPlace(value: unknown): value is JobPlace {
  const v = value as JobPlace | null;
  return typeof v === "object" && v !== null && Array.isArray(v.nodes) && v.nodes.length > 0 &&
    v.nodes.every((n) => Number.isInteger(n) && n >= 1 && n <= 0xffff) &&
    typeof v.fallback === "boolean";
}

/** Options of {@linkcode Deputy}. */
export interface DeputyOptions {
  /** This node's id: home and node of the jobs started here. */
  readonly nodeId: number;
  /** Where the job records go (`$OM_ROOT/jobs`). */
  readonly jobsDir: string;
  readonly logger: Logger;
  readonly clock: Clock;
  /** The long poll of `job.output`; default OUTPUT_POLL_MS. */
  readonly pollMs?: number;
  /** Where every node's figures are (`$OM_ROOT/nodes`), to start jobs only on nodes that are up. */
  readonly nodesDir?: string;
  /** A number in [0, 1), for drawing the node a job starts on; default Math.random. */
  readonly random?: () => number;
  /**
   * Relays stdin and signals to the node a moved job runs on (the migration's home); without it,
   * every job runs here.
   */
  readonly remote?: RemoteJobs;
  /**
   * Moves a job that still waits in its start gate to `node` (job.run's `place`). Throws when it
   * cannot: the job is then still here. Without it, job.run refuses a place elsewhere.
   */
  readonly placer?: (id: number, node: number) => Promise<void>;
  /** Jobs one user other than root may have; default MAX_JOBS_PER_USER. */
  readonly maxJobsPerUser?: number;
  /** Unread output one user's jobs may hold together; default DEFAULT_USER_OUTPUT. */
  readonly userOutput?: number;
}

/** The deputy's counters (the local socket's `stats`). */
export interface DeputyStats {
  /** job.run refused: its user had maxJobsPerUser jobs. */
  readonly jobsRefused: number;
  /** Times a job's output waited because its user's jobs held their budget unread. */
  readonly outputWaits: number;
}

interface Running {
  readonly process: Deno.ChildProcess;
  /**
   * The job's PID 1 on this host (its PID is the job's id, unless it came back to this node by a
   * migration) and its start time; undefined when it had already ended when it was adopted.
   */
  readonly who: ProcessIdentity | undefined;
  /** The write end of the job's stdin; replaced when a failed migration reopens it. */
  stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** End of file was asked for (`job.input` eof): the write end is closed. */
  eof?: boolean;
  /** The exit to record instead of the SIGKILL the deputy sent in its place. */
  killedFor?: Deno.Signal;
  /** The job moved away: the end of this local copy is not the job's end. */
  moved?: boolean;
}

/**
 * Where a moved job's stdin and signals go (lib/migration/migration.ts): the deputy of the node that runs
 * it now, over the channel.
 */
export interface RemoteJobs {
  input(job: Job, data: Uint8Array | undefined, eof: boolean): Promise<void>;
  signal(job: Job, signal: Deno.Signal): Promise<Deno.Signal | undefined>;
}

/** The jobs of this home node and the handlers of the local socket's job commands. */
export class Deputy {
  readonly jobs: JobTable;
  readonly #options: DeputyOptions;
  readonly #running = new Map<number, Running>();
  /** The local follow of each job started here: done once its pipes are drained. */
  readonly #followed = new Map<number, Promise<void>>();
  /** Per job: its stdin writes, one after the other; a migration holds them (holdInput). */
  readonly #inputs = new Map<number, Promise<void>>();
  /** Jobs restored here on their way home, until the move is done. */
  readonly #adopting = new Map<number, Running>();
  readonly #stopExpiry: () => void;
  #jobsRefused = 0;

  constructor(options: DeputyOptions) {
    this.#options = options;
    this.jobs = new JobTable(options.clock, { userOutput: options.userOutput });
    this.#stopExpiry = options.clock.every(5000, () => {
      for (const id of this.jobs.expire()) void this.#removeRecord(id);
    });
  }

  /** The deputy's counters, now. */
  get stats(): DeputyStats {
    return { jobsRefused: this.#jobsRefused, outputWaits: this.jobs.stats.outputWaits };
  }

  /** The handlers to serve on the local socket. */
  handlers(): Map<string, Handler> {
    const json = (value: unknown) => Promise.resolve(jsonBytes(value));
    return new Map<string, Handler>([
      ["job.run", async (body, peer) => {
        const request = bodyOf<RunRequest>(
          "job.run",
          body,
          (r) =>
            Array.isArray(r.argv) && r.argv.length > 0 &&
            r.argv.every((a) => typeof a === "string") && typeof r.cwd === "string" &&
            typeof r.env === "object" && r.env !== null &&
            (r.policy === undefined || isJobPolicy(r.policy)) &&
            (r.place === undefined || isJobPlace(r.place)),
        );
        const uid = sessionUid(peer);
        if (uid === undefined) throw new Error("Cannot start a job: no user on this connection");
        return await json({ id: await this.start(request, { uid }) });
      }],
      ["job.output", async (body) => {
        const { id, offset } = bodyOf<{ id: number; offset: number }>(
          "job.output",
          body,
          (r) => isId(r.id) && Number.isInteger(r.offset),
        );
        return await json(encodeOutput(await this.output(id, offset)));
      }],
      ["job.input", async (body) => {
        const request = bodyOf<{ id: number; data?: string; eof?: boolean }>(
          "job.input",
          body,
          (r) => isId(r.id) && (typeof r.data === "string" || r.eof === true),
        );
        await this.input(request.id, request.data ? decodeBase64(request.data) : undefined);
        if (request.eof) await this.closeInput(request.id);
        return await json({});
      }],
      ["job.signal", async (body) => {
        const { id, signal } = bodyOf<{ id: number; signal: Deno.Signal }>(
          "job.signal",
          body,
          (r) => isId(r.id) && typeof r.signal === "string",
        );
        return await json({ sent: await this.signal(id, signal) });
      }],
      ["job.list", () => json(this.jobs.list().map(jobRecord))],
    ]);
  }

  /**
   * Starts a job as user `uid` (root's jobs as today, another user's through setpriv, with its
   * primary group and its groups, in a mount namespace and /proc of its own so that CRIU can dump
   * it: lib/criu/startjob.ts startJobArgs); resolves with its id once its PID 1 exists.
   */
  async start(request: RunRequest, options: { readonly uid: number }): Promise<number> {
    const { uid } = options;
    const most = this.#options.maxJobsPerUser ?? MAX_JOBS_PER_USER;
    if (uid !== 0 && this.jobs.countOf(uid) >= most) {
      this.#jobsRefused++;
      throw new Error(
        `Cannot start "${request.argv.join(" ")}": user ${await userName(uid)} has ${most} ` +
          `jobs on this node, the most one user may have`,
      );
    }
    let asUser: string[] = [];
    if (uid !== 0) {
      const user = await lookupUser(uid);
      if (!user) {
        throw new Error(
          `Cannot start "${request.argv.join(" ")}": uid ${uid} is not in the user database`,
        );
      }
      asUser = ["setpriv", `--reuid=${uid}`, `--regid=${user.gid}`, "--init-groups", "--"];
    }
    const [program, ...args] = startJobArgs([
      ...asUser,
      "sh",
      "-c",
      START_GATE,
      "om-job",
      request.cwd,
      ...request.argv,
    ], { ownMounts: uid !== 0 });
    let process: Deno.ChildProcess;
    try {
      process = new Deno.Command(program, {
        args,
        cwd: "/",
        env: WRAPPER_ENV,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      throw new Error(`Cannot start "${request.argv.join(" ")}": ${(error as Error).message}`);
    }
    let id: number;
    let who: ProcessIdentity | undefined;
    try {
      id = await retryUntil(() => namespacePid1(process.pid), 2000, {
        intervalMs: 5,
        what: "the job's PID 1",
      });
      // It waits at its gate for the deputy's go: it is still the process just found.
      who = identifyProcess(id);
      if (!who) throw new Error("its PID 1 ended at once");
    } catch {
      try {
        process.kill("SIGKILL");
      } catch { /* gone */ }
      const status = await process.status;
      const said = (await new Response(process.stderr).text().catch(() => "")).trim();
      throw new Error(
        `Cannot start "${request.argv.join(" ")}": ${
          said || `its PID 1 did not appear (exit ${status.code})`
        }`,
      );
    }
    const stdin = process.stdin.getWriter();
    const job = this.jobs.add({
      id,
      home: this.#options.nodeId,
      node: this.#options.nodeId,
      command: request.argv,
      policy: request.policy,
      uid,
    });
    const running: Running = { process, who, stdin };
    this.#running.set(id, running);
    await this.#writeRecord(job);
    this.#startFollowing(job, running);
    if (request.place) {
      try {
        await this.#place(job, request.place);
      } catch (error) {
        await this.#discard(id);
        throw error;
      }
    }
    // Through the input path: it reaches the job wherever it was placed.
    const env = { ...request.env, OM_JOB_LOCK: request.policy?.lock ? "1" : "0" };
    await this.input(id, new TextEncoder().encode(`${envScript(env)}${id}\n`));
    this.#options.logger.info("job {id}: started {command} on node {node}", {
      id,
      command: request.argv.join(" "),
      node: job.node,
    });
    return id;
  }

  /**
   * Moves a job still in its start gate to one of `place.nodes`: those that are up (or this
   * node) are tried in a random order; this node means it stays. When none works it stays here
   * if `place.fallback`, else this throws, naming the nodes and why each failed.
   */
  async #place(job: Job, place: JobPlace): Promise<void> {
    const here = this.#options.nodeId;
    const random = this.#options.random ?? Math.random;
    const failures: string[] = [];
    const up: number[] = [];
    for (const node of new Set(place.nodes)) {
      if (node === here) {
        up.push(node);
        continue;
      }
      const info = this.#options.nodesDir === undefined
        ? undefined
        : await readNodeInfo(this.#options.nodesDir, node).catch(() => undefined);
      if (info?.status === "up") up.push(node);
      else failures.push(info ? `node ${node} is down` : `node ${node} is not known here`);
    }
    while (up.length > 0) {
      const [node] = up.splice(Math.min(up.length - 1, Math.floor(random() * up.length)), 1);
      if (node === here) return;
      try {
        if (!this.#options.placer) throw new Error("this node cannot migrate jobs");
        await this.#options.placer(job.id, node);
        return;
      } catch (error) {
        // A migration error says the job goes on here: true now, not once it is discarded.
        const why = (error instanceof Error ? error.message : String(error))
          .replace(/^Cannot migrate job \d+ to node \d+: /, "")
          .replace(/; the job goes on at node \d+$/, "");
        failures.push(place.nodes.length === 1 ? why : `node ${node}: ${why}`);
      }
    }
    const nodes = place.nodes.length === 1
      ? `node ${place.nodes[0]}`
      : `nodes ${place.nodes.join(",")}`;
    if (place.fallback) {
      this.#options.logger.warn("job {id}: cannot start on {nodes} ({why}); it runs at home", {
        id: job.id,
        nodes,
        why: failures.join("; "),
      });
      return;
    }
    throw new Error(
      `Cannot start "${job.command.join(" ")}" on ${nodes}: ${failures.join("; ")}`,
    );
  }

  /** Kills a job that never left its start gate and forgets it (nothing of it ran). */
  async #discard(id: number): Promise<void> {
    const running = this.#running.get(id);
    if (running) killCopy(running);
    await this.drained(id);
    this.jobs.remove(id);
    await this.#removeRecord(id);
    this.#options.logger.info("job {id}: not started", { id });
  }

  /** Follows a local copy of `job` (#follow), known as followed until its pipes are drained. */
  #startFollowing(job: Job, running: Running): void {
    const followed = this.#follow(job, running);
    this.#followed.set(job.id, followed);
    void followed.finally(() => {
      if (this.#followed.get(job.id) === followed) this.#followed.delete(job.id);
    });
  }

  /**
   * Pumps a local copy's output into the job's log and records its end: the copy is forgotten
   * (nothing acts on its PID any more) as soon as its process ends, its end recorded once the
   * rest of its pipes is read (lib/jobs/pipes.ts), whoever reads the output or not.
   */
  async #follow(job: Job, running: Running): Promise<void> {
    const { process } = running;
    const pumped = pumpOutput(job.output, process, {
      ended: process.status,
      clock: this.#options.clock,
    });
    const status = await process.status;
    if (this.#running.get(job.id) === running) this.#running.delete(job.id);
    running.stdin.close().catch(() => {});
    await pumped;
    if (running.moved) {
      this.#options.logger.debug("job {id}: the local copy is gone, the job runs on node {node}", {
        id: job.id,
        node: job.node,
      });
      return;
    }
    const exit: JobExit = running.killedFor
      ? { signal: running.killedFor }
      : status.signal
      ? { signal: status.signal }
      : { code: status.code };
    this.jobs.finish(job.id, exit);
    this.#options.logger.info("job {id}: ended with {exit}", {
      id: job.id,
      exit: JSON.stringify(exit),
    });
  }

  /** The long poll of a job's output; once its exit is delivered, the job is forgotten. */
  async output(id: number, offset: number): Promise<OutputRead> {
    const job = this.jobs.get(id);
    const read = await job.output.read(offset, this.#options.pollMs ?? OUTPUT_POLL_MS);
    if (read.exit) {
      this.jobs.remove(id);
      await this.#removeRecord(id);
    }
    return read;
  }

  /**
   * Runs a job's stdin operations one after the other, in the order they came, so that a
   * migration can hold them (holdInput) and they go on, in order, where the job then runs.
   */
  #queueInput(id: number, op: () => Promise<void>): Promise<void> {
    const done = (this.#inputs.get(id) ?? Promise.resolve()).then(op);
    const tail = done.catch(() => {});
    this.#inputs.set(id, tail);
    void tail.then(() => {
      if (this.#inputs.get(id) === tail) this.#inputs.delete(id);
    });
    return done;
  }

  /** Writes to a job's stdin (nothing happens once the job no longer reads it). */
  input(id: number, data: Uint8Array | undefined): Promise<void> {
    this.jobs.get(id);
    if (!data?.length) return Promise.resolve();
    return this.#queueInput(id, async () => {
      const job = this.jobs.get(id);
      if (this.#elsewhere(job)) return await this.#options.remote!.input(job, data, false);
      const running = this.#running.get(id);
      if (!running || running.eof) return;
      await running.stdin.write(data).catch(() => {});
    });
  }

  /** Closes a job's stdin: it reads end of file. */
  closeInput(id: number): Promise<void> {
    this.jobs.get(id);
    return this.#queueInput(id, async () => {
      const job = this.jobs.get(id);
      if (this.#elsewhere(job)) return await this.#options.remote!.input(job, undefined, true);
      const running = this.#running.get(id);
      if (!running || running.eof) return;
      running.eof = true;
      await running.stdin.close().catch(() => {});
    });
  }

  /**
   * Holds job `id`'s stdin for a migration: resolves once every write asked for before is done;
   * later writes wait until the returned release is called, and then go where the job runs.
   */
  async holdInput(id: number): Promise<() => void> {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const before = this.#inputs.get(id) ?? Promise.resolve();
    void this.#queueInput(id, () => gate);
    await before;
    return release;
  }

  /**
   * A migration of the local copy, after the dump: closes the deputy's write end of the job's
   * stdin (so that reading the pipe ends), and says whether end of file had been asked for.
   */
  async detachInput(id: number): Promise<{ pid: number; eof: boolean } | undefined> {
    const running = this.#running.get(id);
    if (!running?.who) return undefined;
    const eof = running.eof === true;
    if (!eof) {
      running.eof = true;
      await running.stdin.close().catch(() => {});
    }
    return { pid: running.who.pid, eof };
  }

  /**
   * A migration failed after detachInput: the job's stdin gets a new write end (`writer`,
   * opened through /proc/<pid>/fd/0), closed again when end of file had been asked for.
   */
  reattachInput(id: number, writer: WritableStreamDefaultWriter<Uint8Array>, eof: boolean): void {
    const running = this.#running.get(id);
    if (!running) {
      void writer.close().catch(() => {});
      return;
    }
    running.stdin = writer;
    running.eof = eof;
    if (eof) void writer.close().catch(() => {});
  }

  /**
   * A job of this node came home (lib/migration/migration.ts restored it under its waiter, `process`,
   * with PID `pid`): kept aside until the move is done (adopted) or failed (dropAdoption).
   */
  adopt(
    id: number,
    process: Deno.ChildProcess,
    pid: number,
    stdin: WritableStreamDefaultWriter<Uint8Array>,
    eof: boolean,
  ): void {
    this.jobs.get(id);
    // Held stopped by its waiter until the move is done: still the process criu restored.
    this.#adopting.set(id, { process, who: identifyProcess(pid), stdin, eof });
  }

  /**
   * The move home is done: the job runs here again, its output read from its new pipes after
   * every byte the node it ran on sent, its stdin and signals local again.
   */
  async adopted(id: number): Promise<void> {
    const running = this.#adopting.get(id);
    this.#adopting.delete(id);
    if (!running) return;
    const job = this.jobs.get(id);
    job.node = this.#options.nodeId;
    this.#running.set(id, running);
    this.#startFollowing(job, running);
    // Written before the move's answer: whoever waits for it (om migrate, expel) reads it home.
    await this.#writeRecord(job);
  }

  /** The move home failed after the restore here: this copy goes, the job runs on there. */
  dropAdoption(id: number): void {
    const running = this.#adopting.get(id);
    this.#adopting.delete(id);
    if (!running) return;
    if (running.who) signalProcess(running.who, "SIGKILL");
    try {
      running.process.kill();
    } catch { /* gone */ }
    void running.process.stdout.cancel().catch(() => {});
    void running.process.stderr.cancel().catch(() => {});
  }

  /** The host PID of the local copy of job `id` (undefined when it does not run here). */
  localPid(id: number): number | undefined {
    return this.localProcess(id)?.pid;
  }

  /**
   * The local copy of job `id`: its PID 1's PID and start time, to check again (isSameProcess,
   * signalProcess) right before acting on it; undefined when it does not run here, or its PID 1
   * has ended (whether its PID names another process by now or not).
   */
  localProcess(id: number): ProcessIdentity | undefined {
    const who = this.#running.get(id)?.who;
    return who && isSameProcess(who) ? who : undefined;
  }

  /**
   * Delivers a signal as a terminal would. SIGINT and SIGQUIT go to the job's process group
   * (its PID 1 leads it), others to PID 1. The kernel drops signals from outside a PID namespace
   * that its PID 1 neither catches nor ignores (SIGKILL and SIGSTOP excepted), so when PID 1
   * does neither for a terminating signal, it is sent SIGKILL instead and the job's exit is
   * recorded as the signal asked for: what the person would see without a namespace. Resolves
   * to the signal actually sent to PID 1 (or what the node the job runs on says it sent). Throws
   * "Cannot signal job N: it has ended", having sent nothing, when the job's PID 1 has ended,
   * whether its PID names another process by now or not (processid.ts).
   */
  async signal(id: number, signal: Deno.Signal): Promise<Deno.Signal | undefined> {
    const job = this.jobs.get(id);
    if (this.#elsewhere(job)) return await this.#options.remote!.signal(job, signal);
    const number = SIGNAL_NUMBERS[signal];
    if (number === undefined) throw new RangeError(`Cannot send "${signal}": unknown signal`);
    const ended = () => new Error(`Cannot signal job ${id}: it has ended`);
    const running = this.#running.get(id);
    const who = running?.who;
    if (!running || !who || !isSameProcess(who)) throw ended();
    let sent = signal;
    if (TERMINATING.includes(signal)) {
      const status = await Deno.readTextFile(`/proc/${who.pid}/status`).catch(() => "");
      // Read by PID: it counts only if the PID still names the job's PID 1 afterwards.
      if (status && isSameProcess(who) && !handlesSignal(status, number)) sent = "SIGKILL";
    }
    if (this.#running.get(id) !== running) throw ended();
    let delivered: boolean;
    if (sent === "SIGKILL") {
      if (!isSameProcess(who)) throw ended();
      if (sent !== signal) running.killedFor = signal;
      // unshare, told its child died of SIGKILL, cannot re-raise it and prints an error
      // to the job's stderr: it goes first, and the whole namespace dies with PID 1.
      try {
        running.process.kill("SIGKILL");
      } catch { /* gone */ }
      delivered = signalProcess(who, "SIGKILL");
    } else {
      delivered = signalProcess(who, signal, {
        group: signal === "SIGINT" || signal === "SIGQUIT",
      });
    }
    if (!delivered) throw ended();
    this.#options.logger.debug("job {id}: {signal} sent as {sent}", { id, signal, sent });
    return sent;
  }

  /** Whether a job (not ended) runs on another node, whose deputy gets its stdin and signals. */
  #elsewhere(job: Job): boolean {
    return job.node !== this.#options.nodeId && !job.output.exit &&
      this.#options.remote !== undefined;
  }

  /**
   * The migration's last step at home: the job now runs on `node`. It is recorded so (the
   * record too) BEFORE the stopped local copy is killed, so that copy's end is not taken for
   * the job's. Resolves once the local copy's pipes are drained: every byte it wrote before
   * the dump is then in the output log, and output from `node` may follow it.
   */
  async moved(id: number, node: number): Promise<void> {
    const job = this.jobs.get(id);
    job.node = node;
    await this.#writeRecord(job);
    const running = this.#running.get(id);
    if (running) {
      running.moved = true;
      killCopy(running);
    }
    await this.drained(id);
  }

  /** Resolves once the local copy of job `id` (if any) has ended and its pipes are drained. */
  async drained(id: number): Promise<void> {
    await this.#followed.get(id);
  }

  /** The job came back to this node or its record changed: rewrites its record. */
  async placed(id: number, node: number): Promise<void> {
    const job = this.jobs.get(id);
    job.node = node;
    await this.#writeRecord(job);
  }

  async #writeRecord(job: Job): Promise<void> {
    try {
      await Deno.mkdir(this.#options.jobsDir, { recursive: true });
      await replaceFile(
        `${this.#options.jobsDir}/${job.id}`,
        new TextEncoder().encode(JSON.stringify(jobRecord(job)) + "\n"),
      );
    } catch (error) {
      this.#options.logger.warn("job {id}: cannot write its record: {error}", {
        id: job.id,
        error: String(error),
      });
    }
  }

  async #removeRecord(id: number): Promise<void> {
    await Deno.remove(`${this.#options.jobsDir}/${id}`).catch(() => {});
  }

  /**
   * Stops the deputy. The jobs go on (their pipes close with the daemon, so they see end of
   * file or EPIPE); their records are removed.
   */
  async close(): Promise<void> {
    this.#stopExpiry();
    for (const job of this.jobs.list()) await this.#removeRecord(job.id);
  }
}

/**
 * Kills a local copy of a job: its wrapper or waiter (the deputy's own child: Deno signals it only
 * while it has not been reaped), then its PID 1 if that PID still names it.
 */
function killCopy(running: Running): void {
  try {
    running.process.kill("SIGKILL");
  } catch { /* gone */ }
  if (running.who) signalProcess(running.who, "SIGKILL");
}
