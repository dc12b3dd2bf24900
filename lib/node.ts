/**
 * A running node: the one place that composes om's subsystems into what `om discover` runs
 * (ARCHITECTURE.md). From the settings it finds this node's interfaces and key, takes the pid
 * file, and starts, in order: the discovery daemon with the node-information exchange (multicast),
 * the node-to-node channel (TCP), the deputy with the local socket, the migration's roles, and the
 * balancer. `commands/discover.ts` is a thin shell around it: it parses, detaches, logs and
 * handles signals. What fails at the start is a {@linkcode NodeStartError} whose lines the command
 * prints; nothing here prints or exits.
 */
import { systemClock } from "./base/clock.ts";
import { formatNodeId, nodeIdOf } from "./base/ipv4.ts";
import { type ClusterKey, loadKey } from "./base/key.ts";
import type { Logger } from "./base/log.ts";
import { acquirePidFile, AlreadyRunningError } from "./base/pidfile.ts";
import { jsonBytes } from "./base/json.ts";
import type { Settings } from "./cli/config.ts";
import { readFlag, readNumber } from "./state/admin.ts";
import { nodeInfoWriter } from "./state/nodestate.ts";
import { mapWriter, replaceFile, resolveStatePaths, type StatePaths } from "./state/tree.ts";
import { makeAcl } from "./channel/access.ts";
import { connectChannel } from "./channel/client.ts";
import { type ChannelServer, type Handler, serveChannel } from "./channel/server.ts";
import { InfoExchange } from "./info/exchange.ts";
import { Meter, REFERENCE_SPEED, speedOfCpuinfo } from "./info/measure.ts";
import { DiscoveryDaemon } from "./discovery/daemon.ts";
import {
  listInterfaces,
  type NetInterface,
  NetworkSetupError,
  resolveInterfaces,
} from "./discovery/interfaces.ts";
import { openMulticast } from "./discovery/udp.ts";
import { findCriu } from "./criu/preflight.ts";
import { Deputy } from "./jobs/deputy.ts";
import type { LocalSocket } from "./jobs/localsocket.ts";
import { serveLocal } from "./jobs/localsocket.ts";
import { Migration } from "./migration/migration.ts";
import type { MigrationFaults } from "./migration/faults.ts";
import { keylessHandlers } from "./migration/keyless.ts";
import { Balancer } from "./balance/balancer.ts";
import { ExecService } from "./exec/service.ts";
import { MoveLog } from "./migration/movelog.ts";
import { StatusService } from "./web/service.ts";
import type { WebServer } from "./web/server.ts";
import { NODE_FLAGS, type NodeFlags } from "./web/model.ts";
import { listNodeInfo } from "./state/nodestate.ts";
import { userName } from "./base/users.ts";

/**
 * The node could not start: `logged` are the log's lines, `said` what the person who started a
 * detached daemon is told (omdiscd's own words where it had them).
 */
export class NodeStartError extends Error {
  override name = "NodeStartError";
  constructor(readonly logged: readonly string[], readonly said: readonly string[]) {
    super(logged.join("; "));
  }
}

/** A start failure told the same way in the log and to the person, as `om discover: TEXT`. */
function startFailure(text: string): NodeStartError {
  return new NodeStartError([text], [`om discover: ${text}`]);
}

/** What a node is started with besides its settings. */
export interface NodeOptions {
  readonly logger: Logger;
  /** The environment (OM_CRIU, OM_CGROUP_*, OM_MULTICAST_LOOPBACK, OM_PAGE_SERVER). */
  readonly env: (name: string) => string | undefined;
  /** Faults a test makes the node's migrations suffer (lib/migration/faults.ts). */
  readonly faults?: MigrationFaults;
}

/** A node that runs; close() leaves the cluster and stops everything it started. */
export interface RunningNode {
  readonly id: number;
  readonly address: string;
  /**
   * Takes the settings a SIGHUP re-read that apply without a restart (intervals, exec_allow,
   * root_guests).
   */
  reconfigure(settings: Settings): void;
  close(): Promise<void>;
}

/** The channel commands the migration answers (PROTOCOL.md §11). */
const MIGRATION_COMMANDS = [
  "mig.request",
  "mig.check",
  "mig.pages",
  "mig.begin",
  "mig.file",
  "mig.restore",
  "mig.commit",
  "mig.status",
  "mig.abort",
  "mig.move",
  "job.push",
  "job.exited",
  "job.input",
  "job.signal",
];

/** The node-information exchange: measures the machine, or the node's cgroup in a lab. */
function infoExchange(
  settings: Settings,
  paths: StatePaths,
  env: (name: string) => string | undefined,
  address: string,
): InfoExchange {
  const meter = new Meter({
    cgroup: {
      cpu: env("OM_CGROUP_CPU"),
      cpuacct: env("OM_CGROUP_CPUACCT"),
      memory: env("OM_CGROUP_MEMORY"),
    },
    now: () => Date.now(),
  });
  let defaultSpeed = REFERENCE_SPEED;
  try {
    defaultSpeed = speedOfCpuinfo(Deno.readTextFileSync("/proc/cpuinfo"));
  } catch { /* no /proc/cpuinfo: the reference speed */ }
  return new InfoExchange({
    sample: () => meter.sample(),
    admin: async () => ({
      quiet: await readFlag(paths, "quiet"),
      block: await readFlag(paths, "block"),
      speed: await readNumber(paths, "speed"),
    }),
    write: nodeInfoWriter(paths.nodes),
    defaultSpeed,
  }, { id: nodeIdOf(address), address, interval: settings.infoInterval });
}

/**
 * Starts a node with `settings`; resolves once it is up (announced, its channel and local socket
 * open). Throws NodeStartError when it cannot, having released what it took.
 */
export async function startNode(settings: Settings, options: NodeOptions): Promise<RunningNode> {
  const { logger, env } = options;
  let nics: NetInterface[];
  try {
    const routes = await Deno.readTextFile("/proc/net/route").catch(() => "");
    nics = resolveInterfaces(settings.interfaces, listInterfaces(), routes);
  } catch (error) {
    if (error instanceof NetworkSetupError) {
      throw new NodeStartError(error.lines, error.lines.map((line) => `omdiscd: ${line}`));
    }
    throw error;
  }
  const talk = settings.multicastTtl === undefined ? nics : nics.slice(0, 1);
  const self = {
    address: nics[0].address,
    netmask: nics[0].netmask,
    aliases: nics.slice(1).map((n) => ({ address: n.address, netmask: n.netmask })),
  };
  const paths = resolveStatePaths(settings);
  let key: ClusterKey | undefined;
  if (settings.key) {
    try {
      key = await loadKey(settings.key);
    } catch (error) {
      throw startFailure(error instanceof Error ? error.message : String(error));
    }
  }
  let pidFile;
  try {
    pidFile = acquirePidFile(`${settings.root}/omdiscd.pid`, Deno.pid);
  } catch (error) {
    if (error instanceof AlreadyRunningError) throw startFailure(error.message);
    throw error;
  }

  // On an openMosix kernel the kernel exchanges load itself.
  const info = paths.backend === "kernel"
    ? undefined
    : infoExchange(settings, paths, env, self.address);
  let channel: ChannelServer | undefined;
  let local: LocalSocket | undefined;
  let web: WebServer | undefined;
  const daemon = new DiscoveryDaemon({
    self,
    talk,
    relay: talk.length > 1,
    announceInterval: settings.announceInterval,
    expireAfter: settings.expireAfter,
    key,
  }, {
    openTransport: (handler) =>
      openMulticast({
        group: settings.group,
        port: settings.port,
        interfaces: talk,
        ttl: settings.multicastTtl,
        loopback: env("OM_MULTICAST_LOOPBACK") === "1",
        onError: (error) => logger.warn("Socket error: {error}", { error: String(error) }),
      }, handler),
    writeMap: mapWriter(paths),
    writeStats: (stats) =>
      replaceFile(
        `${settings.root}/omdiscd.stats`,
        new TextEncoder().encode(
          JSON.stringify({
            pid: Deno.pid,
            ...stats,
            channel: channel?.stats,
            local: local?.stats,
            http: web?.stats,
          }) +
            "\n",
        ),
      ),
    logger,
    clock: systemClock,
    info,
  });
  try {
    await daemon.start();
  } catch (error) {
    pidFile.release();
    throw new NodeStartError(
      [`Unable to initialize network.  Exiting. (${error})`],
      [`om discover: Cannot open the network: ${error}`],
    );
  }

  const id = nodeIdOf(self.address);
  const connect = (node: number, address?: string) => {
    const member = daemon.membership.members().find((m) => m.id === node);
    const hostname = member?.address ?? address;
    if (!hostname) return Promise.reject(new Error(`node ${node} is not in the cluster map`));
    return connectChannel({
      hostname,
      port: settings.channelPort,
      key,
      nodeId: id,
      expectNodeId: node,
    });
  };
  // The deputy relays the stdin and signals of jobs that run elsewhere through the migration's
  // home, and places a job started elsewhere through it (called once both exist).
  const deputy = new Deputy({
    nodeId: id,
    jobsDir: `${settings.root}/jobs`,
    nodesDir: paths.nodes,
    logger,
    clock: systemClock,
    remote: {
      input: (job, data, eof) => migration.input(job, data, eof),
      signal: (job, signal) => migration.signal(job, signal),
    },
    placer: async (job, node) => void await migration.migrate(job, node, { by: "placement" }),
  });
  // The recent moves of this node's jobs, for the status page (lib/web/).
  const moves = new MoveLog({ now: () => systemClock.now() });
  // Re-read on SIGHUP (reconfigure).
  let rootGuests = settings.rootGuests;
  const migration: Migration = new Migration({
    nodeId: id,
    moves,
    root: settings.root,
    deputy,
    logger,
    criuBinary: findCriu(env),
    connect,
    blocked: () => readFlag(paths, "block"),
    env,
    keyed: key !== undefined,
    faults: options.faults,
    rootGuests: () => rootGuests,
  });
  migration.sweepLeftovers();
  // On an openMosix kernel the kernel balances (and there is no exchange to read).
  const balancer = info
    ? new Balancer({ nodeId: id, paths, info, deputy, migration, logger, keyed: key !== undefined })
    : undefined;
  // om exec: this node runs what its exec_allow lets it, for root, and only with a key.
  const exec = new ExecService({
    nodeId: id,
    keyed: key !== undefined,
    allow: settings.execAllow,
    logger,
    clock: systemClock,
    connect: (node) => connect(node),
    env: { OM_ROOT: settings.root, OM_CONFIG: settings.configFile },
  });
  // The status page's side: the read-only status.* commands, the collector, the page if asked.
  const status = new StatusService({
    nodeId: id,
    address: self.address,
    keyed: key !== undefined,
    clock: systemClock,
    logger,
    interval: () => info?.interval ?? settings.infoInterval,
    members: () => daemon.membership.members(),
    figures: async () =>
      info
        ? [...(info.own ? [info.own] : []), ...info.known().map((k) => k.info)]
        : (await listNodeInfo(paths.nodes)).filter((n) => n.status === "up"),
    flags: async () =>
      Object.fromEntries(
        await Promise.all(NODE_FLAGS.map(async (f) => [f, await readFlag(paths, f)])),
      ) as NodeFlags,
    interfaces: talk.map((n) => n.name),
    jobs: () => deputy.jobs.list(),
    moves,
    userName,
    connect: (node, address) => connect(node, address),
  });
  // Without a key nothing proves who asks: every mig.* and job.* request is refused.
  const migrationHandlers = key ? migration.channelHandlers() : keylessHandlers(MIGRATION_COMMANDS);
  try {
    channel = serveChannel({
      port: settings.channelPort,
      key,
      nodeId: id,
      logger,
      handlers: new Map<string, Handler>([
        ["info", () => Promise.resolve(jsonBytes(info?.own ?? { id }))],
        ...MIGRATION_COMMANDS.map((
          name,
        ): [string, Handler] => [name, migrationHandlers.get(name)!]),
        ...exec.channelHandlers(),
        ...status.channelHandlers(),
      ]),
      // With a key every connection proves it; without one only the map's members and the
      // allowed networks get in.
      acl: key ? undefined : makeAcl({
        members: () =>
          new Set(
            daemon.membership.members().flatMap((m) => [
              m.address,
              ...m.aliases.map((a) => a.address),
            ]),
          ),
        allowed: settings.allow.length ? settings.allow : undefined,
        interfaces: talk,
      }),
    });
    local = serveLocal({
      root: settings.root,
      nodeId: id,
      logger,
      clock: systemClock,
      deputy,
      more: new Map([
        ...migration.localHandlers(),
        ...(balancer?.localHandlers() ?? []),
        ...exec.localHandlers(),
        ...status.localHandlers(),
      ]),
    });
  } catch (error) {
    await channel?.close();
    await deputy.close();
    await daemon.stop();
    pidFile.release();
    throw startFailure(
      `Cannot open the ${
        channel ? "local socket" : `node-to-node channel on TCP port ${settings.channelPort}`
      }: ${error instanceof Error ? error.message : error}`,
    );
  }
  status.start();
  if (settings.http) {
    const { hostname, port } = settings.http;
    try {
      web = await status.serve(hostname, port, [Deno.hostname()]);
    } catch (error) {
      await status.close();
      exec.close();
      await migration.close();
      await local?.close();
      await channel?.close();
      await deputy.close();
      await daemon.stop();
      pidFile.release();
      throw startFailure(
        `Cannot serve the status page on ${hostname}:${port}: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
  }
  balancer?.start();

  logger.info(
    "This is node {hex} ({id}) at {address}; talking on {nics} to {group}:{port}{mode}",
    {
      hex: formatNodeId(id),
      id,
      address: self.address,
      nics: talk.map((n) => n.name).join(","),
      group: settings.group,
      port: settings.port,
      mode: talk.length > 1
        ? ", relaying"
        : settings.multicastTtl
        ? `, ttl ${settings.multicastTtl}`
        : "",
    },
  );
  if (web) {
    logger.info("Status page at http://{host}:{port}/ (read-only; JSON API under /api/)", {
      host: web.hostname.includes(":") ? `[${web.hostname}]` : web.hostname,
      port: web.port,
    });
  }
  if (paths.backend === "kernel") logger.info("Notified kernel to activate openMosix");
  if (paths.backend === "alpha") logger.info("Simulated notification to activate openMosix");
  if (key) {
    logger.info("Cluster key {fingerprint}: every datagram is authenticated", {
      fingerprint: key.fingerprint,
    });
  } else {
    logger.warn(
      "This cluster is unauthenticated: any host on the network can join it, and no job moves " +
        "between nodes (om keygen, --key)",
    );
  }

  return {
    id,
    address: self.address,
    reconfigure(next) {
      daemon.reconfigure({
        announceInterval: next.announceInterval,
        expireAfter: next.expireAfter,
        infoInterval: next.infoInterval,
      });
      exec.setAllow(next.execAllow);
      rootGuests = next.rootGuests;
    },
    async close() {
      await balancer?.stop();
      exec.close();
      await status.close();
      await migration.close();
      await local?.close();
      await channel?.close();
      await daemon.stop();
      pidFile.release();
    },
  };
}
