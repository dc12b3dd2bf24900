/**
 * `om discover` (omdiscd): the auto-discovery daemon. Finds the other nodes over IP multicast and
 * keeps the cluster map in the state tree, the kernel's /proc/hpc, or the ALPHA files.
 */
import { type CommandSpec, type Parsed, unparse, UsageError } from "../lib/cli/parser.ts";
import {
  execPatternProblem,
  type FlagSettings,
  loadSettings,
  parseHttpAddress,
  type Settings,
} from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { type Logging, setupLogging } from "../lib/base/log.ts";
import { omCommand } from "../lib/base/selfexec.ts";
import { openSyslog } from "../lib/base/syslog.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import type { MigrationFaults } from "../lib/migration/faults.ts";
import { NodeStartError, type RunningNode, startNode } from "../lib/node.ts";
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
SIGHUP re-reads the configuration (intervals, debug, exec_allow, root_guests); SIGTERM or SIGINT send a leave, remove the
pid file and exit. Without -n the daemon detaches and logs to syslog (/dev/log, or
$OM_ROOT/omdiscd.log where there is no syslog).

It also serves om run and the other local tools on the unix socket $OM_ROOT/omdiscd.sock (mode
0666: every user, who proves who it is with a file in $OM_ROOT/users, mode 1733), and the other
nodes on TCP port 20302 (PROTOCOL.md §8, §10).

om exec runs commands on the nodes for root (PROTOCOL.md §13): each node runs only the commands
its own exec_allow lets it (--exec-allow, OM_EXEC_ALLOW; none by default), and only with a
cluster key; it logs every command it runs or refuses, with who asked from where.

With --no-root-guests (root_guests = no, OM_ROOT_GUESTS=no) no job of root's comes here from
another node (its own root jobs come home): with exec_allow empty too, a holder of the cluster key
is not root here by the key alone (PROTOCOL.md §9.1).

With --http ADDR:PORT (http, OM_HTTP; off by default) it serves the cluster's live status page
and its read-only JSON API there (PROTOCOL.md §14): bind it to a management address, since it
shows every job of the cluster to whoever reaches it.

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
    {
      name: "execAllow",
      flags: ["--exec-allow"],
      value: "PATTERN[,PATTERN...]",
      help: "commands om exec may run here: names, absolute paths, * for all (default none)",
      complete: "none",
    },
    {
      name: "noRootGuests",
      flags: ["--no-root-guests"],
      help: "take no root jobs from other nodes (root_guests = no)",
    },
    {
      name: "http",
      flags: ["--http"],
      value: "ADDR:PORT",
      help: "serve the status page and its JSON API there (default off)",
      complete: "none",
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
    {
      command: "om discover --http 192.168.100.5:8080",
      says: "also serve the status page at http://192.168.100.5:8080/ (a management address)",
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
    execAllow: o.execAllow === undefined ? undefined : execAllowFlag(String(o.execAllow)),
    rootGuests: o.noRootGuests ? false : undefined,
    http: o.http === undefined ? undefined : httpFlag(String(o.http)),
  };
}

/** `--http ADDR:PORT`, checked as the configuration checks http. */
function httpFlag(text: string) {
  try {
    return parseHttpAddress(text, "--http");
  } catch {
    throw new UsageError(
      `Cannot use "${text}" for --http: not ADDR:PORT (an IPv4 address, [IPv6] or localhost, ` +
        "and a port from 1 to 65535)",
    );
  }
}

/** `--exec-allow`'s patterns, each checked as the configuration checks exec_allow. */
function execAllowFlag(text: string): string[] {
  const patterns = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const pattern of patterns) {
    const problem = execPatternProblem(pattern);
    if (problem) throw new UsageError(`Cannot use "${pattern}" for --exec-allow: ${problem}`);
  }
  return patterns;
}

const READY = "\u0000om-discover-ready\n";

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
  return await serve(parsed, ctx, {});
}

/**
 * `om discover` once parsed: detaches unless -n, sets up logging, starts the node (lib/node.ts)
 * and keeps it until SIGTERM or SIGINT. `options.faults`: what a test makes the node's migrations
 * suffer (tests/tools/faultnode.ts); never set by the command itself.
 */
export async function serve(
  parsed: Parsed,
  ctx: Context,
  options: { faults?: MigrationFaults },
): Promise<number> {
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
  let node: RunningNode | undefined;
  const reload = async () => {
    try {
      const next = await loadSettings(flags, (name) => ctx.env(name));
      node?.reconfigure(next);
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
          "http",
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
        execAllow: next.execAllow,
        rootGuests: next.rootGuests,
      };
      logger.info("SIGHUP: configuration re-read from {file}", { file: settings.configFile });
    } catch (error) {
      logger.error("SIGHUP: configuration kept: {error}", { error: String(error) });
    }
  };
  const signals = handleSignals(logging, reload);
  try {
    node = await startNode(settings, { logger, env: (name) => ctx.env(name), ...options });
  } catch (error) {
    signals.remove();
    if (!(error instanceof NodeStartError)) throw error;
    for (const line of error.logged) logger.error(line);
    if (detached) { for (const line of error.said) ctx.err(`${line}\n`); }
    return await finish(1);
  }
  if (detached) {
    // The parent stops reading here; nothing is written to stderr after this.
    ctx.err(READY);
  }
  const signal = await signals.stopped;
  logger.info("{signal}: leaving the cluster", { signal });
  await node.close();
  signals.remove();
  return await finish(0);
}
