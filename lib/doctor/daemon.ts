/**
 * Is om discover running on this node, and are its ports its own? The daemon is found by its pid
 * file (`<root>/omdiscd.pid`) and checked to be a live om discover; its environment (for its
 * OM_CRIU and PATH) is read from /proc. UDP `port` and TCP `channel_port` must be free, or held
 * by that daemon: held by another program, om discover cannot start, or listens elsewhere.
 */
import { readProcess } from "../base/procs.ts";
import { type Check, missed, passed, unchecked } from "./report.ts";
import { type DoctorInputs, type Environment, parseEnviron } from "./inputs.ts";
import { readSockets, socketHolders, TCP_LISTEN } from "./procnet.ts";

/** The daemon check, and the daemon it found running. */
export interface DaemonFound {
  readonly check: Check;
  /** The running daemon's pid. */
  readonly pid?: number;
  /** Its environment, when /proc lets it be read. */
  readonly env?: Environment;
}

const START = "start it: om discover (as a service: README, Deploying on real nodes)";

/** Finds the running om discover of this state tree. */
export async function checkDaemon(inputs: DoctorInputs): Promise<DaemonFound> {
  const { root, proc } = inputs.settings;
  const pidFile = `${root}/omdiscd.pid`;
  let text: string;
  try {
    text = await Deno.readTextFile(pidFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { check: missed("daemon", true, `om discover is not running (no ${pidFile})`, START) };
    }
    return {
      check: unchecked(
        "daemon",
        `cannot read ${pidFile}: ${(error as Error).message}`,
        "run om doctor as root",
      ),
    };
  }
  if (!/^\d+\s*$/.test(text)) {
    return { check: missed("daemon", true, `${pidFile} holds no pid`, START) };
  }
  const pid = Number(text.trim());
  const info = await readProcess(proc, pid).catch(() => undefined);
  if (!info || info.state === "Z" || info.state === "X") {
    return {
      check: missed(
        "daemon",
        true,
        `om discover is not running (${pidFile} names pid ${pid}, which ended)`,
        START,
      ),
    };
  }
  const environ = await Deno.readTextFile(`${proc}/${pid}/environ`).then(
    parseEnviron,
    () => undefined,
  );
  const isDiscover = info.argv.some((arg) => /(^|\/)omdiscd$|^discover$/.test(arg)) ||
    environ?.get("OM_ARGV0") === "omdiscd";
  const command = info.argv.join(" ") || `[${info.comm}]`;
  if (!isDiscover) {
    return {
      check: missed(
        "daemon",
        true,
        `${pidFile} names pid ${pid}, which is not om discover (${command})`,
        START,
      ),
    };
  }
  const env = environ
    ? { get: (name: string) => environ.get(name), whose: "the daemon's" }
    : undefined;
  if (info.uid !== 0) {
    return {
      pid,
      env,
      check: missed(
        "daemon",
        false,
        `om discover runs (pid ${pid}) as uid ${info.uid}, not root: it finds the nodes, but cannot start other users' jobs or run CRIU`,
        "run om discover as root (its service does)",
      ),
    };
  }
  return { pid, env, check: passed("daemon", `om discover runs (pid ${pid})`) };
}

/** The UDP discovery port and the TCP channel port: free, or the daemon's. */
export async function checkPorts(inputs: DoctorInputs, daemon?: number): Promise<Check[]> {
  const { settings } = inputs;
  return [
    await checkPort(
      inputs,
      { name: "udp-port", proto: "udp", port: settings.port, key: "port" },
      daemon,
    ),
    await checkPort(
      inputs,
      { name: "tcp-port", proto: "tcp", port: settings.channelPort, key: "channel_port" },
      daemon,
    ),
  ];
}

async function checkPort(
  inputs: DoctorInputs,
  what: { name: string; proto: "udp" | "tcp"; port: number; key: string },
  daemon: number | undefined,
): Promise<Check> {
  const { proc, configFile } = inputs.settings;
  const label = `${what.proto.toUpperCase()} ${what.port}`;
  const sockets = (await readSockets(proc, what.proto)).filter((s) =>
    s.port === what.port && (what.proto === "udp" || s.state === TCP_LISTEN)
  );
  if (sockets.length === 0) {
    return daemon === undefined ? passed(what.name, `${label} is free`) : missed(
      what.name,
      false,
      `${label} is free, but om discover (pid ${daemon}) does not hold it: it runs with other settings than ${configFile}`,
      `restart om discover, or set ${what.key} in ${configFile} to the port it uses`,
    );
  }
  const holders = await socketHolders(proc, new Set(sockets.map((s) => s.inode)));
  const pids = [...new Set([...holders.values()].flat())].sort((a, b) => a - b);
  const others = pids.filter((pid) => pid !== daemon);
  const unknown = sockets.some((s) => !holders.has(s.inode));
  if (others.length === 0 && !unknown) {
    return passed(what.name, `${label} is held by om discover (pid ${daemon})`);
  }
  if (others.length === 0 && inputs.uid !== 0) {
    return unchecked(
      what.name,
      `${label} is held by a process om doctor cannot see as uid ${inputs.uid}`,
      "run om doctor as root",
    );
  }
  const names = await Promise.all(others.map(async (pid) => {
    const info = await readProcess(proc, pid).catch(() => undefined);
    return `pid ${pid}${info ? ` (${info.comm})` : ""}`;
  }));
  const by = names.length ? names.join(", ") : "another process";
  return missed(
    what.name,
    true,
    `${label} is held by ${by}${
      daemon === undefined ? "" : `, not by om discover (pid ${daemon})`
    }`,
    `stop that program, or give om another port on every node: ${what.key} = N in ${configFile}`,
  );
}
