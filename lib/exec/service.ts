/**
 * `om exec` in the daemon (PROTOCOL.md §13): the two commands and who may use them.
 *
 * - `exec.ask`, on the local socket, root only (lib/jobs/localauth.ts: every command it does not
 *   name is root's): have node N run a command. This node runs it itself when N is this node, and
 *   otherwise asks N over the sealed channel with `exec.run`, saying which local user asked. A
 *   node without the cluster key refuses it: nothing would prove who asks on the way.
 * - `exec.run`, on the node-to-node channel, from a node that proved the key (§8.4): run a command
 *   here. A keyless node refuses it, whoever asks.
 *
 * Either way the node that runs the command decides by its own `exec_allow` (lib/exec/allow.ts),
 * refuses an asker who is not root there, runs at most `maxRunning` commands at once, and logs
 * every command it runs or refuses, with who asked from where: the user (and uid) on the asking
 * node, that node's id (proved by the key) and the address it connected from. Refusals and
 * failures to reach a node are results with an outcome, not errors: an error reply of `exec.ask`
 * means the asking itself was refused (not root, no key, a bad request), and `om exec` stops.
 */
import { createHash } from "node:crypto";
import type { Clock } from "../base/clock.ts";
import { jsonBytes } from "../base/json.ts";
import type { Logger } from "../base/log.ts";
import { userName } from "../base/users.ts";
import { type ChannelClient, RemoteError } from "../channel/client.ts";
import type { Peer } from "../channel/handshake.ts";
import type { Handler } from "../channel/server.ts";
import { sessionUid } from "../jobs/localauth.ts";
import { refusal } from "./allow.ts";
import { runCommand } from "./runner.ts";
import { type CommandCgroup, commandCgroup } from "./cgroup.ts";
import {
  type ExecResult,
  notRun,
  readAskRequest,
  readResult,
  readRunRequest,
  resultJson,
  statusOf,
} from "./wire.ts";

/** Commands one node runs for om exec at once; one more is refused ("busy"). */
export const MAX_RUNNING = 32;
/** How much longer than the command's own time limit a node waits for another's answer. */
export const RELAY_SLACK_MS = 15_000;

/** What a node without the cluster key says to every exec request. */
export const EXEC_NEEDS_KEY = "om exec needs a cluster key (nothing would prove who asks): make " +
  "one with om keygen FILE, copy it to every node, and set key = FILE in om.conf (or --key FILE)";

/** Who asked for a command, as the node that runs it logs it. */
interface Asker {
  readonly node: number;
  readonly address: string;
  readonly uid: number;
  readonly user: string;
}

/** Options of {@linkcode ExecService}. */
export interface ExecServiceOptions {
  readonly nodeId: number;
  /** The node has the cluster key; without it every exec request is refused. */
  readonly keyed: boolean;
  /** exec_allow (lib/exec/allow.ts); `setAllow` replaces it (SIGHUP). */
  readonly allow: readonly string[];
  readonly logger: Logger;
  readonly clock: Clock;
  /** A sealed channel to node `node` (lib/node.ts looks its address up in the map). */
  readonly connect: (node: number) => Promise<ChannelClient>;
  /** Variables the commands get besides the fixed ones (the daemon's OM_ROOT and OM_CONFIG). */
  readonly env?: Readonly<Record<string, string>>;
  /** Default MAX_RUNNING. */
  readonly maxRunning?: number;
  /** Makes a command's cgroup; default commandCgroup (lib/exec/cgroup.ts). */
  readonly cgroup?: () => Promise<CommandCgroup | undefined>;
}

/** The argv as the log shows it: JSON, cut to 300 characters with the whole one's digest. */
function shown(argv: readonly string[]): string {
  const text = JSON.stringify(argv);
  if (text.length <= 300) return text;
  // Cut, but pinned: the whole argv's length and digest, so a padded command's tail is known.
  const digest = createHash("sha256").update(text).digest("hex");
  return `${text.slice(0, 299)}… (${text.length} characters in all, SHA-256 ${digest})`;
}

/** The daemon's side of om exec (see the header). */
export class ExecService {
  readonly #options: ExecServiceOptions;
  #allow: readonly string[];
  #running = 0;
  /** Whether the log said once that commands run without a cgroup here. */
  #uncontainedSaid = false;
  readonly #stop = new AbortController();

  constructor(options: ExecServiceOptions) {
    this.#options = options;
    this.#allow = [...options.allow];
  }

  /** Takes a new exec_allow (the configuration re-read on SIGHUP). */
  setAllow(patterns: readonly string[]): void {
    this.#allow = [...patterns];
  }

  /** Commands running now. */
  get running(): number {
    return this.#running;
  }

  /** `exec.run` for the node-to-node channel. */
  channelHandlers(): Map<string, Handler> {
    return new Map<string, Handler>([["exec.run", (body, peer) => this.#run(body, peer)]]);
  }

  /** `exec.ask` for the local socket. */
  localHandlers(): Map<string, Handler> {
    return new Map<string, Handler>([["exec.ask", (body, peer) => this.#ask(body, peer)]]);
  }

  /** Kills the commands still running (the daemon stops). */
  close(): void {
    this.#stop.abort();
  }

  async #run(body: Uint8Array, peer: Peer): Promise<Uint8Array> {
    if (!this.#options.keyed || !peer.authenticated) {
      // At debug level: without a key anyone on the network may send it, as often as they like.
      this.#options.logger.debug("exec: refused a request from {address}: no cluster key", {
        address: peer.address,
      });
      throw new Error(`Cannot run "exec.run" on this node: ${EXEC_NEEDS_KEY}`);
    }
    const request = readRunRequest(body);
    const result = await this.#runHere(request.argv, request.timeoutMs, {
      node: peer.nodeId,
      address: peer.address,
      uid: request.uid,
      user: request.user,
    });
    return jsonBytes(resultJson(result));
  }

  async #ask(body: Uint8Array, peer: Peer): Promise<Uint8Array> {
    const uid = sessionUid(peer);
    if (uid !== 0) {
      throw new Error(`Cannot ask the nodes to run commands: Operation not permitted (root only)`);
    }
    if (!this.#options.keyed) {
      throw new Error(`Cannot ask the nodes to run commands: ${EXEC_NEEDS_KEY}`);
    }
    const request = readAskRequest(body);
    const user = await userName(uid);
    const { nodeId } = this.#options;
    const result = request.node === nodeId
      ? await this.#runHere(request.argv, request.timeoutMs, {
        node: nodeId,
        address: "the local socket",
        uid,
        user,
      })
      : await this.#relay(request.node, request.argv, request.timeoutMs, { uid, user });
    return jsonBytes(resultJson(result));
  }

  /** Asks node `node` to run the command; whatever fails becomes the node's result. */
  async #relay(
    node: number,
    argv: readonly string[],
    timeoutMs: number,
    asker: { readonly uid: number; readonly user: string },
  ): Promise<ExecResult> {
    const { logger } = this.#options;
    logger.info("exec: asking node {node} to run {argv} for {user}", {
      node,
      argv: shown(argv),
      user: asker.user,
    });
    let client: ChannelClient;
    try {
      client = await this.#options.connect(node);
    } catch (error) {
      return notRun(node, {
        kind: "unreachable",
        reason: error instanceof Error ? error.message : String(error),
      });
    }
    try {
      const reply = await client.request(
        "exec.run",
        jsonBytes({ argv, timeoutMs, uid: asker.uid, user: asker.user }),
        { timeoutMs: timeoutMs + RELAY_SLACK_MS },
      );
      const result = readResult(reply);
      if (result.node !== node) {
        return notRun(node, { kind: "unreachable", reason: `it answered as node ${result.node}` });
      }
      return result;
    } catch (error) {
      if (error instanceof RemoteError) {
        return notRun(node, { kind: "refused", reason: error.error });
      }
      return notRun(node, {
        kind: "unreachable",
        reason: error instanceof Error ? error.message : String(error),
      });
    } finally {
      await client.close().catch(() => {});
    }
  }

  /** Runs the command here when exec_allow allows it and the asker is root; logs it either way. */
  async #runHere(
    argv: readonly string[],
    timeoutMs: number,
    asker: Asker,
  ): Promise<ExecResult> {
    const { logger, nodeId, clock } = this.#options;
    const who = `${asker.user} (uid ${asker.uid}) on node ${asker.node} at ${asker.address}`;
    const refuse = (reason: string) => {
      logger.warn("exec: refused {argv} asked by {who}: {reason}", {
        argv: shown(argv),
        who,
        reason,
      });
      return notRun(nodeId, { kind: "refused", reason });
    };
    if (asker.uid !== 0) {
      return refuse(
        `Cannot run ${JSON.stringify(argv[0])}: only root may ask (asked as uid ${asker.uid})`,
      );
    }
    const refused = refusal(this.#allow, argv[0]);
    if (refused !== undefined) return refuse(refused);
    const max = this.#options.maxRunning ?? MAX_RUNNING;
    if (this.#running >= max) {
      return refuse(`Cannot run ${JSON.stringify(argv[0])}: busy, ${max} commands run here now`);
    }
    this.#running++;
    logger.info("exec: running {argv} as root, asked by {who}, time limit {ms} ms", {
      argv: shown(argv),
      who,
      ms: timeoutMs,
    });
    try {
      const result = await runCommand(argv, {
        timeoutMs,
        clock,
        env: this.#options.env,
        signal: this.#stop.signal,
        cgroup: async () => {
          const group = await (this.#options.cgroup ?? commandCgroup)();
          if (!group && !this.#uncontainedSaid) {
            this.#uncontainedSaid = true;
            logger.warn(
              "exec: commands run here without a cgroup of their own (no cgroup v2 for this " +
                "daemon, or it may not make a group): at a time limit only a command's process " +
                "group is killed, and what made a session of its own survives (om doctor: " +
                "exec-cgroup)",
            );
          }
          return group;
        },
      });
      logger.info(
        "exec: {argv} asked by {who} ended: {outcome} (status {status}) after {ms} ms, " +
          "{bytes} bytes of output kept, {dropped} dropped",
        {
          argv: shown(argv),
          who,
          outcome: result.outcome.kind,
          status: statusOf(result.outcome),
          ms: result.ms,
          bytes: result.stdout.length + result.stderr.length,
          dropped: result.dropped.stdout + result.dropped.stderr,
        },
      );
      return { node: nodeId, ...result };
    } finally {
      this.#running--;
    }
  }
}
