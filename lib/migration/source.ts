/**
 * The source of a move (PROTOCOL.md §11, steps 1-6): the node the job runs on. It checks CRIU and
 * the target (preflight, `mig.check`), dumps the job over a page link per round (`mig.pages`,
 * lib/migration/pagelink.ts) with the job left stopped, takes its unread stdin, sends the other
 * image files (`mig.begin`, `mig.file`), has the target restore it (`mig.restore`) and commits
 * (`mig.commit`). The job's user (lib/migration/jobowner.ts) goes with `mig.pages`, so that a
 * target without that user refuses before the freeze, and with `mig.begin`, with the image files'
 * sizes, which bound what the target writes. Any failure before the commit continues the job
 * here, with its stdin put back, and tells the target to drop what it got (`mig.abort`). The
 * caller (the home, or the guests' host for a job it runs for another node) kills the stopped
 * copy once the move succeeded.
 */
import { isSameProcess, type ProcessIdentity } from "../jobs/processid.ts";
import { type ChannelClient, RemoteError } from "../channel/client.ts";
import { asJobUser, type JobUser, jobUser } from "../criu/jobuser.ts";
import { CriuError, criuFailure } from "../criu/criuerror.ts";
import { fdKey, ownMounts } from "../criu/startjob.ts";
import { watched } from "../channel/peerwatch.ts";
import { encodeBase64 } from "../jobs/jobwire.ts";
import type { JobPolicy } from "../jobs/table.ts";
import { jsonBytes, jsonOf } from "../base/json.ts";
import { sleep } from "../base/time.ts";
import {
  DUMP_GATE,
  linkPages,
  newPageToken,
  PAGE_LINK_FAILED,
  type PageLink,
  PageLinkError,
} from "./pagelink.ts";
import { pageReservation, reservedBytes } from "./pagereceiver.ts";
import { newPageSecret } from "./pageseal.ts";
import { continueTree, drainStdin, reopenStdin } from "./stdio.ts";
import { FILE_CHUNK, fileChunkBody, isImageName } from "./files.ts";
import { type JobOwner, jobOwner } from "./jobowner.ts";
import { dumpRounds, roundArgs } from "./rounds.ts";
import { message, MigrationError, type MigrationReport, type MigrationStep } from "./errors.ts";
import { now, type RoleContext } from "./context.ts";
import type { RestorePlan } from "./bodies.ts";
import { COMMIT_SETTLE_MS, COMMIT_TIMEOUT_MS, restoreLimitMs } from "./limits.ts";

/** `mig.file` requests sent without waiting for their replies. */
const FILES_IN_FLIGHT = 8;

/** What the source needs of the job it sends. */
export interface Outgoing {
  readonly id: number;
  /** Its PID 1 on this host. */
  readonly pid: number;
  /** That PID 1 as it started (PID and start time): a job whose PID 1 ended is not dumped. */
  readonly who: ProcessIdentity | undefined;
  readonly home: number;
  readonly command: readonly string[];
  readonly policy: JobPolicy;
  readonly target: number;
  /** When the move began (performance.now()), for its total. */
  readonly start: number;
  /** Closes this node's write end of the job's stdin; says whether it had reached its end. */
  readonly detach: () => Promise<boolean | undefined>;
  /** Gives the job's stdin back after a failed move: a new write end, and whether it had ended. */
  readonly reattach: (writer: WritableStreamDefaultWriter<Uint8Array>, eof: boolean) => void;
}

/** The source's side of every move from this node. */
export class Source {
  readonly #context: RoleContext;

  constructor(context: RoleContext) {
    this.#context = context;
  }

  /**
   * The source's side of a migration: preflight, dump (leave-stopped), the job's unread stdin,
   * the images, the restore at `target`. On failure after the dump the stdin bytes are put back
   * and the job is continued; throws MigrationError. On success the caller kills the old copy.
   */
  async send(o: Outgoing): Promise<MigrationReport> {
    const { nodeId, logger } = this.#context;
    const { id, pid, target } = o;
    const dir = `${this.#context.dir}/${id}-out`;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(dir, { recursive: true });
    const fail = (step: MigrationStep, error: unknown, where = nodeId) => {
      // CRIU's log: this node's, or the target's (an error reply's details, §8.3).
      const logPath = error instanceof CriuError
        ? error.logPath
        : error instanceof RemoteError
        ? error.details.logPath
        : undefined;
      return new MigrationError(
        `Cannot migrate job ${id} to node ${target}: ${step} failed on node ${where}: ${
          message(error)
        }; the job goes on at node ${nodeId}`,
        step,
        logPath,
      );
    };

    let memDirtyTrack: boolean;
    // A user's job is dumped by criu run as that user (lib/criu/jobuser.ts asJobUser).
    let user: JobUser | undefined;
    // Whom the job runs as, named: the target takes it only for the same user there.
    let owner: JobOwner;
    // A job whose PID 1 ended (or whose PID names another process by now) has nothing to move;
    // a process of its tree that ends meanwhile is no failure of the move.
    const ended = () => new MigrationError(`Cannot migrate job ${id}: it has ended`, undefined);
    if (!o.who || !isSameProcess(o.who)) throw ended();
    try {
      memDirtyTrack = (await this.#context.criu.preflight(dir)).memDirtyTrack;
      user = await jobUser(pid);
      owner = await jobOwner(pid);
    } catch (error) {
      if (!isSameProcess(o.who)) throw ended();
      throw fail("preflight", error);
    }
    const criuCommand = [...(user ? asJobUser(user) : []), this.#context.criu.criu.binary];
    // criu dump's action script: its gate (lib/migration/pagelink.ts DUMP_GATE).
    const gateScript = `${this.#context.dir}/dump-gate`;
    try {
      await Deno.writeTextFile(gateScript, DUMP_GATE, { mode: 0o700 });
      await Deno.chmod(gateScript, 0o700);
    } catch (error) {
      throw fail("preflight", error);
    }
    let client: ChannelClient;
    try {
      client = await this.#context.connect(target);
    } catch (error) {
      throw fail("target check", error);
    }
    try {
      try {
        await client.request("mig.check", jsonBytes({ id }), { timeoutMs: 30_000 });
      } catch (error) {
        throw fail("target check", error, target);
      }
      const fds: (string | null)[] = [];
      for (const fd of [0, 1, 2]) {
        const key = await fdKey(pid, fd).catch(() => null);
        fds.push(key && /^pipe:\[\d+\]$/.test(key) && !fds.includes(key) ? key : null);
      }
      // The target starts its restore with the final round's page link (§11.4).
      const plan: RestorePlan = {
        fds,
        mounts: (await ownMounts(pid).catch(() => false)) !==
          (this.#context.faults.wrongPlan === true),
      };

      // Each round's pages go over a page link (lib/migration/pagelink.ts), made before the round
      // starts, sealed with keys from a secret of its own that only mig.pages carries.
      // When the link is what failed (a frame that did not open ends the connection), the
      // target hears mig.abort on a fresh one, rather than keeping the images until they go stale.
      const abort = async () => {
        const ask = (via: ChannelClient) =>
          via.request("mig.abort", jsonBytes({ id }), { timeoutMs: 5000 });
        try {
          await ask(client);
          return;
        } catch (error) {
          if (error instanceof RemoteError) return;
        }
        const fresh = await this.#context.connect(target, client.hostname).catch(() => undefined);
        if (fresh) await ask(fresh).catch(() => {}).finally(() => fresh.close().catch(() => {}));
      };
      let frozen = 0;
      for (const round of dumpRounds(memDirtyTrack)) {
        const token = newPageToken();
        const secret = newPageSecret();
        let port: number;
        let link: PageLink;
        const imagesDir = round.dir ? `${dir}/${round.dir}` : dir;
        try {
          // A stop-and-copy dump's pages may have their room taken before the freeze (§11.1.1).
          const reserve = round.action === "dump" && round.prev === undefined
            ? await pageReservation(pid)
            : undefined;
          const reply = await client.request(
            "mig.pages",
            jsonBytes({
              id,
              home: o.home,
              user: owner,
              token,
              secret,
              ...(round.dir ? { dir: round.dir } : {}),
              ...(round.prev !== undefined ? { prev: round.prev } : {}),
              ...(round.action === "dump" ? { restore: plan } : {}),
              ...(reserve ? { reserve } : {}),
            }),
            // A big job's reservation takes the target longer (fallocate(2) of 2 GiB took 0.5 s
            // here, its warm-up stops at 2 s): 1 s more per 256 MiB, a wide margin.
            { timeoutMs: 30_000 + Math.ceil(reservedBytes(reserve) / 2 ** 28) * 1000 },
          );
          port = jsonOf<{ port: number }>(reply).port;
          if (!client.hostname) throw new Error(`no TCP address for node ${target}`);
          await Deno.mkdir(imagesDir, { recursive: true });
          // The final dump starts now and waits, started, at its gate (lib/migration/pagelink.ts).
          const gated = round.action === "dump";
          const args = roundArgs(round, {
            pid,
            imagesDir: dir,
            memDirtyTrack,
            user: !!user,
            ...(gated ? { gate: gateScript } : {}),
          });
          link = await linkPages(
            [...criuCommand, ...args],
            { hostname: client.hostname, port, token, secret },
            { socketDir: `${dir}/page-link`, ...(gated ? { gate: `${imagesDir}/gate` } : {}) },
          );
        } catch (error) {
          await abort();
          if (error instanceof PageLinkError && error.exitCode !== PAGE_LINK_FAILED) {
            // criu itself ended before its gate: a failed dump, with its log.
            const logPath = `${imagesDir}/${round.action}.log`;
            throw fail(
              round.action,
              await criuFailure(`${round.action} job ${id}`, {
                step: round.action,
                code: error.exitCode,
                logPath,
              }),
            );
          }
          throw fail("target check", error, target);
        }
        // The final dump: frozen from here (criu waited, started, at its gate), its pages sent as
        // criu collects them. (A pre-dump freezes the job only while it collects them.)
        if (round.action === "dump") frozen = now();
        let code: number;
        try {
          code = (await link.go()).code;
        } catch (error) {
          // criu may have ended well, the job left stopped, before the link failed (a record
          // that did not open, the target's answer lost): it runs on here.
          await continueTree(o.who);
          await abort();
          logger.warn("job {id}: migration to node {to} failed at {step}; continued here", {
            id,
            to: target,
            step: round.action,
          });
          throw fail(round.action, error);
        }
        if (code !== 0) {
          // A failed dump lets the job go itself; a signal that stopped it (criu killed
          // mid-dump) does not.
          await continueTree(o.who);
          await abort();
          const logPath = `${imagesDir}/${round.action}.log`;
          throw fail(
            round.action,
            await criuFailure(`${round.action} job ${id}`, { step: round.action, code, logPath }),
          );
        }
      }

      // The job is frozen from here until the commit: a target that stops answering fails the
      // step within seconds, not at the request's own limit (lib/channel/peerwatch.ts).
      const watch = <T>(work: Promise<T>) =>
        watched(work, {
          // Where the request went, should the target have left the map meanwhile.
          connect: () => this.#context.connect(target, client.hostname),
          where: `node ${target}`,
          // A ping on the connection itself, its answer not awaited: the target answers it
          // after the request it serves, and a frame dropped on the way ends the connection.
          nudge: () => void client.request("ping", undefined, { timeoutMs: 0 }).catch(() => {}),
        });
      let step: MigrationStep = "dump";
      let transferMs = 0;
      let restoreMs = 0;
      let bytes = 0;
      let stdin: { data: Uint8Array; eof: boolean } | undefined;
      try {
        // Bytes written to the job's stdin that it had not read: CRIU does not refill an
        // inherited pipe, so they go with the images (and back into the pipe on failure).
        const eof = fds[0] ? await o.detach() : undefined;
        if (eof !== undefined) stdin = { data: new Uint8Array(0), eof };
        if (stdin) stdin.data = await drainStdin(pid);
        step = "transfer";
        const files = await imageFiles(dir);
        const begun = await watch(client.request(
          "mig.begin",
          jsonBytes({
            id,
            home: o.home,
            user: owner,
            files,
            command: o.command,
            policy: o.policy,
            fds,
            ...(stdin ? { stdin: encodeBase64(stdin.data), stdinEof: stdin.eof } : {}),
          }),
          { timeoutMs: 60_000 },
        ));
        bytes += jsonOf<{ pages?: number }>(begun).pages ?? 0;
        const transfer = now();
        bytes += await watch(this.#sendFiles(client, id, dir, files));
        transferMs = now() - transfer;
        step = "restore";
        const restore = now();
        await watch(
          client.request("mig.restore", jsonBytes({ id }), {
            timeoutMs: restoreLimitMs(bytes) + 30_000,
          }),
        );
        // Restored there, stopped: from the commit on, the job is the target's.
        step = "commit";
        if (!(await this.#commitAt(client, id, target))) {
          throw new Error(`node ${target} did not let the restored job run`);
        }
        restoreMs = now() - restore;
      } catch (error) {
        // The job runs on here first: the target's copy never runs without mig.commit, so the
        // abort (which waits for a target that may not answer) need not keep the job frozen.
        if (stdin) {
          const writer = await reopenStdin(pid, stdin.data).catch(() => undefined);
          if (writer) o.reattach(writer, stdin.eof);
        }
        await continueTree(o.who);
        await abort();
        logger.warn("job {id}: migration to node {to} failed at {step}; continued here", {
          id,
          to: target,
          step,
        });
        const where = error instanceof Deno.errors.ConnectionReset ||
            error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.TimedOut
          ? nodeId
          : target;
        throw fail(step, error, where);
      }
      const frozenMs = now() - frozen;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      const report: MigrationReport = {
        id,
        from: nodeId,
        to: target,
        frozenMs: Math.round(frozenMs),
        transferMs: Math.round(transferMs),
        restoreMs: Math.round(restoreMs),
        totalMs: Math.round(now() - o.start),
        bytes,
      };
      logger.info("job {id}: migrated to node {to} ({report})", {
        id,
        to: target,
        report: JSON.stringify(report),
      });
      return report;
    } finally {
      await client.close().catch(() => {});
    }
  }

  /**
   * Asks the target to let the job it restored run (mig.commit); resolves with whether it runs
   * there. An error answer means it does not (never restored, or dropped). No answer leaves it
   * open, so the question is asked again over new connections until the target answers or
   * COMMIT_SETTLE_MS have passed: then the target's copy, had no commit reached it, was killed by
   * its waiter, and the job goes on here. (Had a commit reached a target that then stayed
   * unreachable for that long, its stray copy runs until its output reaches the home, which
   * refuses it: the target kills it then, PROTOCOL.md §11.2.)
   */
  async #commitAt(client: ChannelClient, id: number, target: number): Promise<boolean> {
    const { logger } = this.#context;
    const ask = async (via: ChannelClient) => {
      try {
        await via.request("mig.commit", jsonBytes({ id }), { timeoutMs: COMMIT_TIMEOUT_MS });
        return true;
      } catch (error) {
        if (error instanceof RemoteError) return false;
        logger.warn("job {id}: mig.commit to node {target} got no answer: {error}", {
          id,
          target,
          error: message(error),
        });
        return undefined;
      }
    };
    const first = await ask(client);
    if (first !== undefined) return first;
    const until = now() + COMMIT_SETTLE_MS;
    while (now() < until) {
      await sleep(500);
      const again = await this.#context.connect(target).catch(() => undefined);
      if (!again) continue;
      try {
        const answer = await ask(again);
        if (answer !== undefined) return answer;
      } finally {
        await again.close().catch(() => {});
      }
    }
    logger.error(
      "job {id}: node {target} never answered mig.commit; the job goes on here (a copy that a " +
        "commit reached there is killed once node {target} reaches the job's home again)",
      { id, target },
    );
    return false;
  }

  /**
   * Sends the image `files` of `dir` (bytes by name, as mig.begin announced them) as `mig.file`
   * chunks, up to FILES_IN_FLIGHT requests at a time (the pages went over the page link: these
   * are a few small files, and one round trip each was most of the transfer); resolves with the
   * bytes sent.
   */
  async #sendFiles(
    client: ChannelClient,
    id: number,
    dir: string,
    files: Record<string, number>,
  ): Promise<number> {
    const inFlight = new Set<Promise<unknown>>();
    // The first failed request, kept: a request that fails between two awaits below leaves the
    // set before anyone awaits it, and the transfer must not look complete then.
    let failed: { error: unknown } | undefined;
    let bytes = 0;
    for (const [name, size] of Object.entries(files)) {
      using file = await Deno.open(`${dir}/${name}`);
      let offset = 0;
      do {
        // Read straight into the request's body: no buffer per file, no copy.
        const length = Math.min(FILE_CHUNK, size - offset);
        const { body, data } = fileChunkBody({ id, name, offset }, length);
        for (let filled = 0; filled < length;) {
          const n = await file.read(data.subarray(filled));
          if (n === null) throw new Error(`image ${name} ended early`);
          filled += n;
        }
        if (failed) throw failed.error;
        const sent = client.request("mig.file", body, { timeoutMs: 60_000 });
        sent.catch((error) => failed ??= { error });
        inFlight.add(sent);
        void sent.finally(() => inFlight.delete(sent)).catch(() => {});
        if (inFlight.size >= FILES_IN_FLIGHT) await Promise.race(inFlight);
        offset += length;
        bytes += length;
      } while (offset < size);
    }
    await Promise.all(inFlight);
    if (failed) throw failed.error;
    return bytes;
  }
}

/**
 * The image files of a dump in `dir`, bytes by name, as mig.begin announces them: CRIU's images
 * only (lib/migration/files.ts isImageName), not its logs, its `stats-dump` or the page link's
 * gate, which the target would refuse.
 */
export async function imageFiles(dir: string): Promise<Record<string, number>> {
  const files: Record<string, number> = {};
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && isImageName(entry.name)) {
      files[entry.name] = (await Deno.stat(`${dir}/${entry.name}`)).size;
    }
  }
  return files;
}
