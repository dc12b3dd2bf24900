/**
 * `om discover` (omdiscd): the auto-discovery daemon. Finds the other nodes over IP multicast and
 * keeps the cluster map in the state tree, the kernel's /proc/hpc, or the ALPHA files.
 */
import { type CommandSpec, type Parsed, unparse, UsageError } from "../lib/cli/parser.ts";
import { systemClock } from "../lib/base/clock.ts";
import { type FlagSettings, loadSettings, type Settings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { DiscoveryDaemon } from "../lib/discovery/daemon.ts";
import { formatNodeId, nodeIdOf } from "../lib/base/ipv4.ts";
import { type Logging, setupLogging } from "../lib/base/log.ts";
import {
  listInterfaces,
  type NetInterface,
  NetworkSetupError,
  resolveInterfaces,
} from "../lib/discovery/interfaces.ts";
import { acquirePidFile, AlreadyRunningError } from "../lib/base/pidfile.ts";
import { omCommand } from "../lib/base/selfexec.ts";
import { mapWriter, replaceFile, resolveStatePaths, type StatePaths } from "../lib/state/tree.ts";
import { readFlag, readNumber } from "../lib/state/admin.ts";
import { InfoExchange } from "../lib/info/exchange.ts";
import { makeAcl } from "../lib/channel/access.ts";
import {
  type ChannelServer,
  connectChannel,
  type Handler,
  serveChannel,
} from "../lib/channel/channel.ts";
import { findCriu } from "../lib/criu/criu.ts";
import { Migration } from "../lib/migration/migration.ts";
import { Balancer } from "../lib/balance/balancer.ts";
import { type ClusterKey, loadKey } from "../lib/base/key.ts";
import { serveLocal } from "../lib/jobs/deputy.ts";
import { Meter, REFERENCE_SPEED, speedOfCpuinfo } from "../lib/info/measure.ts";
import { nodeInfoWriter } from "../lib/state/nodestate.ts";
import { openSyslog } from "../lib/base/syslog.ts";
import { openMulticast } from "../lib/discovery/udp.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("discover"),
  usage: [
    "om discover [-n] [-i IF[,IF...]] [-m TTL] [--group ADDR] [--port N]",
    "omdiscd [--nodaemon] [--interface IF[,IF...]] [--multicast-ttl TTL]",
  ],
  description: `Announces this node to the group with a join, answers every join with an
acknowledgement to the whole group, re-announces itself every announce interval, sends a leave
when stopped, and drops nodes not heard from for the expiry period. The map goes to
$OM_ROOT/admin/config and admin/mospe (default /run/om), to /proc/hpc/admin on an openMosix
kernel, or to /tmp/om_config and /tmp/om_mospe with --alpha. Datagrams are defined in PROTOCOL.md.

The node's id and address come from the first interface; the others are announced as its
aliases. Several -i without -m: every interface sends and receives, and messages are relayed
between the interfaces' networks (with loop prevention). With -m only the first interface talks.

Signals: SIGUSR1 or SIGUSR2 toggle full debug output (under 'deno run', SIGUSR1 also starts
Deno's inspector on 127.0.0.1:9229; the compiled om has no such hook, so prefer SIGUSR2 there);
SIGHUP re-reads the configuration (intervals, debug); SIGTERM or SIGINT send a leave, remove the
pid file and exit. Without -n the daemon detaches and logs to syslog (/dev/log, or
$OM_ROOT/omdiscd.log where there is no syslog).

It also serves om run and the other local tools on the unix socket $OM_ROOT/omdiscd.sock (mode
0666: every user, who proves who it is with a file in $OM_ROOT/users, mode 1733), and the other
nodes on TCP port 20302 (PROTOCOL.md §8, §10).

Settings (flags over environment over ${"$"}OM_CONFIG or /etc/om/om.conf over defaults):
interface (OM_INTERFACE), multicast_ttl (OM_MULTICAST_TTL), group (OM_GROUP, 239.192.79.77),
port (OM_PORT, 20301), announce_interval (OM_ANNOUNCE_INTERVAL, 5 s), expire_after
(OM_EXPIRE_AFTER, 15 s), root (OM_ROOT, /run/om), proc (OM_PROC, /proc), alpha (OM_ALPHA),
alpha_dir (OM_ALPHA_DIR, /tmp),
debug (OM_DEBUG).`,
  options: [
    {
      name: "interface",
      flags: ["-i", "--interface"],
      value: "IF[,IF...]",
      help: "1 to 6 interfaces (default: the interface of the default route)",
      complete: "interface",
    },
    {
      name: "nodaemon",
      flags: ["-n", "--nodaemon"],
      help: "stay in the foreground and log to standard error",
    },
    {
      name: "ttl",
      flags: ["-m", "--multicast-ttl"],
      value: "TTL",
      integer: [1, 255],
      help: "multicast TTL for routed multicast; only the first interface talks",
    },
    { name: "group", flags: ["--group"], value: "ADDR", help: "multicast group (239.192.79.77)" },
    {
      name: "port",
      flags: ["--port"],
      value: "N",
      integer: [1, 65535],
      help: "UDP port (20301)",
    },
    {
      name: "announce",
      flags: ["--announce-interval"],
      value: "SECONDS",
      help: "re-announce this often (5)",
    },
    {
      name: "expire",
      flags: ["--expire-after"],
      value: "SECONDS",
      help: "drop nodes not heard from for this long (15)",
    },
    ROOT_OPTION,
    {
      name: "config",
      flags: ["--config"],
      value: "FILE",
      help: "configuration file (/etc/om/om.conf)",
      complete: "file",
    },
    ALPHA_OPTION,
    { name: "debug", flags: ["--debug"], help: "full debug output from the start" },
    {
      name: "key",
      flags: ["--key"],
      value: "FILE",
      help: "cluster key (om keygen): authenticate every datagram and connection",
      complete: "file",
    },
    {
      name: "info",
      flags: ["--info-interval"],
      value: "SECONDS",
      help: "measure and publish this node's load this often (1)",
    },
    {
      name: "channelPort",
      flags: ["--channel-port"],
      value: "N",
      integer: [1, 65535],
      help: "TCP port of the node-to-node channel (20302)",
    },
    {
      name: "allow",
      flags: ["--allow"],
      value: "CIDR[,CIDR...]",
      help: "without a key: networks that may use the channel (default: the cluster's own)",
    },
  ],
  examples: [
    { command: "om discover", says: "start the daemon on the default route's interface" },
    {
      command: "om discover -n -i eth1,eth0",
      says: "gateway: relay between eth1's and eth0's networks",
    },
    {
      command: "om discover -n -i eth0,eth1 -m 4",
      says: "talk on eth0 only, TTL 4; eth1 is an alias",
    },
    { command: "kill -USR2 $(cat /run/om/omdiscd.pid)", says: "toggle full debug output" },
    {
      command: "om keygen /etc/om/cluster.key && om discover --key /etc/om/cluster.key",
      says: "an authenticated cluster (copy the key to every node)",
    },
  ],
};

function seconds(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) < 0.01) {
    throw new UsageError(`Cannot use "${text}" for ${flag}: not a number of seconds >= 0.01`);
  }
  return Math.round(Number(text) * 1000);
}

function flagSettings(parsed: Parsed): FlagSettings {
  const o = parsed.options;
  if (parsed.args.length) throw new UsageError(`Cannot use "${parsed.args[0]}": no arguments`);
  const interfaces = o.interface === undefined
    ? undefined
    : String(o.interface).split(",").map((s) => s.trim()).filter(Boolean);
  if (interfaces && (interfaces.length < 1 || interfaces.length > 6)) {
    throw new UsageError(`Cannot use ${interfaces.length} interfaces: give 1 to 6`);
  }
  return {
    interfaces,
    multicastTtl: o.ttl as number | undefined,
    group: o.group as string | undefined,
    port: o.port as number | undefined,
    announceInterval: seconds(o.announce, "--announce-interval"),
    expireAfter: seconds(o.expire, "--expire-after"),
    root: o.root as string | undefined,
    configFile: o.config as string | undefined,
    alpha: o.alpha ? true : undefined,
    debug: o.debug ? true : undefined,
    key: o.key as string | undefined,
    infoInterval: seconds(o.info, "--info-interval"),
    channelPort: o.channelPort as number | undefined,
    allow: o.allow === undefined
      ? undefined
      : String(o.allow).split(",").map((s) => s.trim()).filter(Boolean),
  };
}

const READY = "\u0000om-discover-ready\n";

/** The channel commands lib/migration/migration.ts answers (PROTOCOL.md §11). */
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

/**
 * The node-to-node channel: ping, version and this node's figures; with a key every connection
 * proves it, without one only the map's members and the allowed networks get in.
 */
function openChannel(
  settings: Settings,
  node: {
    key?: ClusterKey;
    id: number;
    talk: readonly NetInterface[];
    daemon: DiscoveryDaemon;
    info?: InfoExchange;
    logger: Logging["logger"];
    /** The migration's commands (mig.*, job.push/exited, guests' job.input/signal). */
    migration: () => Migration | undefined;
  },
): ChannelServer {
  const encoder = new TextEncoder();
  const members = () =>
    new Set(
      node.daemon.membership.members().flatMap((m) => [
        m.address,
        ...m.aliases.map((a) => a.address),
      ]),
    );
  return serveChannel({
    port: settings.channelPort,
    key: node.key,
    nodeId: node.id,
    logger: node.logger,
    handlers: new Map<string, Handler>([
      [
        "info",
        () => Promise.resolve(encoder.encode(JSON.stringify(node.info?.own ?? { id: node.id }))),
      ],
      ...MIGRATION_COMMANDS.map((name): [string, Handler] => [name, async (body, peer) => {
        const handler = node.migration()?.channelHandlers().get(name);
        if (!handler) throw new Error(`${name}: this node is still starting`);
        return await handler(body, peer);
      }]),
    ]),
    acl: node.key ? undefined : makeAcl({
      members,
      allowed: settings.allow.length ? settings.allow : undefined,
      interfaces: node.talk,
    }),
  });
}

/** The node-information exchange: measures the machine, or the node's cgroup in a lab. */
function infoExchange(
  settings: Settings,
  paths: StatePaths,
  ctx: Context,
  address: string,
): InfoExchange {
  const meter = new Meter({
    cgroup: {
      cpu: ctx.env("OM_CGROUP_CPU"),
      cpuacct: ctx.env("OM_CGROUP_CPUACCT"),
      memory: ctx.env("OM_CGROUP_MEMORY"),
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

/** Starts the daemon again, detached in its own session, and reports whether it came up. */
async function detach(parsed: Parsed, ctx: Context): Promise<number> {
  // Deno's `detached` does not make a new session on Linux (checked): setsid(1) does.
  const child = new Deno.Command("setsid", {
    args: omCommand(["discover", ...unparse(spec, parsed)]),
    env: { OM_DISCOVER_DETACHED: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // The child writes READY once it runs; its stderr ending before that is a failure.
  let said = "";
  const decoder = new TextDecoder();
  const reader = child.stderr.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    said += decoder.decode(value, { stream: true });
    if (said.endsWith(READY)) {
      await reader.cancel();
      child.unref();
      ctx.err(said.slice(0, -READY.length));
      return 0;
    }
  }
  const status = await child.status;
  ctx.err(said);
  return status.code === 0 ? 1 : status.code;
}

function startLogging(settings: Settings, foreground: boolean, ctx: Context): Logging {
  if (foreground) {
    return setupLogging({ kind: "stderr", tag: "omdiscd" }, settings.debug);
  }
  const writer = openSyslog(
    ctx.env("OM_SYSLOG") ?? "/dev/log",
    `${settings.root}/omdiscd.log`,
    "omdiscd",
  );
  return setupLogging({ kind: "lines", writer }, settings.debug);
}

/** Waits for SIGTERM or SIGINT while handling the toggles and SIGHUP. */
function handleSignals(
  logging: Logging,
  reload: () => Promise<void>,
): { stopped: Promise<string>; remove: () => void } {
  let resolveStop!: (signal: string) => void;
  const stopped = new Promise<string>((resolve) => (resolveStop = resolve));
  const toggle = () => {
    void logging.setDebug(!logging.debug).then(() =>
      logging.logger.info("Full debug output {state}", { state: logging.debug ? "on" : "off" })
    );
  };
  const hangup = () => void reload();
  const stop = (signal: Deno.Signal) => () => resolveStop(signal);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGUSR1", toggle],
    ["SIGUSR2", toggle],
    ["SIGHUP", hangup],
    ["SIGTERM", stop("SIGTERM")],
    ["SIGINT", stop("SIGINT")],
  ];
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  return {
    stopped,
    remove: () => {
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    },
  };
}

export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const flags = flagSettings(parsed);
  const detached = ctx.env("OM_DISCOVER_DETACHED") === "1";
  if (!parsed.options.nodaemon && !detached) return await detach(parsed, ctx);
  let settings = await loadSettings(flags, (name) => ctx.env(name));
  const logging = startLogging(settings, !detached, ctx);
  const { logger } = logging;
  const finish = async (code: number) => {
    if (detached && code !== 0) ctx.err("om discover: could not start; see the log above\n");
    await logging.close();
    return code;
  };

  let nics: NetInterface[];
  try {
    const routes = await Deno.readTextFile("/proc/net/route").catch(() => "");
    nics = resolveInterfaces(settings.interfaces, listInterfaces(), routes);
  } catch (error) {
    if (!(error instanceof NetworkSetupError)) throw error;
    for (const line of error.lines) {
      logger.error(line);
      if (detached) ctx.err(`omdiscd: ${line}\n`);
    }
    return await finish(1);
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
      const message = error instanceof Error ? error.message : String(error);
      logger.error(message);
      if (detached) ctx.err(`om discover: ${message}\n`);
      return await finish(1);
    }
  }
  let pidFile;
  try {
    pidFile = acquirePidFile(`${settings.root}/omdiscd.pid`, Deno.pid);
  } catch (error) {
    if (!(error instanceof AlreadyRunningError)) throw error;
    logger.error(error.message);
    if (detached) ctx.err(`om discover: ${error.message}\n`);
    return await finish(1);
  }

  // On an openMosix kernel the kernel exchanges load itself.
  const info = paths.backend === "kernel"
    ? undefined
    : infoExchange(settings, paths, ctx, self.address);
  let channel: ChannelServer | undefined;
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
        loopback: ctx.env("OM_MULTICAST_LOOPBACK") === "1",
        onError: (error) => logger.warn("Socket error: {error}", { error: String(error) }),
      }, handler),
    writeMap: mapWriter(paths),
    writeStats: (stats) =>
      replaceFile(
        `${settings.root}/omdiscd.stats`,
        new TextEncoder().encode(
          JSON.stringify({ pid: Deno.pid, ...stats, channel: channel?.stats }) + "\n",
        ),
      ),
    logger,
    clock: systemClock,
    info,
  });

  const reload = async () => {
    try {
      const next = await loadSettings(flags, (name) => ctx.env(name));
      daemon.reconfigure({
        announceInterval: next.announceInterval,
        expireAfter: next.expireAfter,
        infoInterval: next.infoInterval,
      });
      if (next.debug !== settings.debug) await logging.setDebug(next.debug);
      for (
        const key of [
          "interfaces",
          "group",
          "port",
          "multicastTtl",
          "root",
          "alpha",
          "alphaDir",
        ] as const
      ) {
        if (JSON.stringify(next[key]) !== JSON.stringify(settings[key])) {
          logger.warn("SIGHUP: {key} changed; it takes effect when om discover is restarted", {
            key,
          });
        }
      }
      settings = {
        ...settings,
        announceInterval: next.announceInterval,
        expireAfter: next.expireAfter,
        infoInterval: next.infoInterval,
        debug: next.debug,
      };
      logger.info("SIGHUP: configuration re-read from {file}", { file: settings.configFile });
    } catch (error) {
      logger.error("SIGHUP: configuration kept: {error}", { error: String(error) });
    }
  };
  const signals = handleSignals(logging, reload);

  try {
    await daemon.start();
  } catch (error) {
    signals.remove();
    pidFile.release();
    logger.error("Unable to initialize network.  Exiting. ({error})", { error: String(error) });
    if (detached) ctx.err(`om discover: Cannot open the network: ${error}\n`);
    return await finish(1);
  }
  const id = nodeIdOf(self.address);
  let local: ReturnType<typeof serveLocal> | undefined;
  let migration: Migration | undefined;
  let balancer: Balancer | undefined;
  const connectNode = (node: number, address?: string) => {
    const member = daemon.membership.members().find((m) => m.id === node);
    const hostname = member?.address ?? address;
    if (!hostname) throw new Error(`node ${node} is not in the cluster map`);
    return connectChannel({ hostname, port: settings.channelPort, key, nodeId: id });
  };
  try {
    channel = openChannel(settings, {
      key,
      id,
      talk,
      daemon,
      info,
      logger,
      migration: () => migration,
    });
    local = serveLocal({
      root: settings.root,
      nodeId: id,
      logger,
      clock: systemClock,
      nodesDir: paths.nodes,
      more: (deputy) => {
        migration = new Migration({
          nodeId: id,
          root: settings.root,
          deputy,
          logger,
          criuBinary: findCriu(ctx.env),
          connect: async (node, address) => await connectNode(node, address),
          blocked: () => readFlag(paths, "block"),
          env: ctx.env,
        });
        migration.sweepLeftovers();
        // On an openMosix kernel the kernel balances (and there is no exchange to read).
        if (!info) return migration.localHandlers();
        balancer = new Balancer({ nodeId: id, paths, info, deputy, migration, logger });
        balancer.start();
        return new Map([...migration.localHandlers(), ...balancer.localHandlers()]);
      },
    });
  } catch (error) {
    await channel?.close();
    await daemon.stop();
    signals.remove();
    pidFile.release();
    const message = `Cannot open the ${
      channel ? "local socket" : `node-to-node channel on TCP port ${settings.channelPort}`
    }: ${error instanceof Error ? error.message : error}`;
    logger.error(message);
    if (detached) ctx.err(`om discover: ${message}\n`);
    return await finish(1);
  }
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
  if (paths.backend === "kernel") logger.info("Notified kernel to activate openMosix");
  if (paths.backend === "alpha") logger.info("Simulated notification to activate openMosix");
  if (key) {
    logger.info("Cluster key {fingerprint}: every datagram is authenticated", {
      fingerprint: key.fingerprint,
    });
  } else {
    logger.warn(
      "This cluster is unauthenticated: any host on the network can join it (om keygen, --key)",
    );
  }
  if (detached) {
    // The parent stops reading here; nothing is written to stderr after this.
    ctx.err(READY);
  }

  const signal = await signals.stopped;
  logger.info("{signal}: leaving the cluster", { signal });
  await balancer?.stop();
  await migration?.close();
  await local.close();
  await channel.close();
  await daemon.stop();
  signals.remove();
  pidFile.release();
  return await finish(0);
}
