/**
 * om's one configuration type and its one merge: flags over `OM_*` environment over the
 * configuration file over the defaults. PROTOCOL.md §4 documents the file's syntax.
 */

import { isIPv4, parseIPv4 } from "../base/ipv4.ts";

/** Every setting, with its resolved value. Durations are milliseconds. */
export interface Settings {
  /** om's state tree. */
  root: string;
  /** Where /proc is (tests point it at a fake tree). */
  proc: string;
  /** Write the seed's ALPHA files /tmp/om_config and /tmp/om_mospe instead. */
  alpha: boolean;
  /** The directory of the ALPHA files (the seed's /tmp). */
  alphaDir: string;
  /** Interfaces to use; empty = the interface of the default route. */
  interfaces: string[];
  /** Multicast TTL; set = routed multicast, only the first interface talks. */
  multicastTtl: number | undefined;
  group: string;
  port: number;
  /** How often a node re-announces itself. */
  announceInterval: number;
  /** A node not heard from for this long is removed from the map. */
  expireAfter: number;
  /** Full debug output from the start. */
  debug: boolean;
  /** How often this node's load and memory are measured and published. */
  infoInterval: number;
  /** The cluster key file; unset = an unauthenticated cluster. */
  key: string | undefined;
  /** TCP port of the node-to-node channel. */
  channelPort: number;
  /** Without a key: networks (CIDR) whose nodes may use the channel besides the map's members. */
  allow: string[];
  /**
   * Patterns of the commands `om exec` may run on this node (names, absolute paths, `*` for all;
   * lib/exec/allow.ts); empty = none.
   */
  execAllow: string[];
  /**
   * Whether root's jobs from other nodes may come here (a job moved here whose user is root);
   * false = only other users' jobs, and this node's own root jobs coming home.
   */
  rootGuests: boolean;
  /**
   * Where `om discover` serves the status page and its JSON API (lib/web/); unset = no page. Bind
   * it to a management address: the page is read-only, but shows every job of the cluster.
   */
  http: HttpAddress | undefined;
  /** The configuration file that was read (or would have been). */
  configFile: string;
}

/** An address and TCP port to listen on (the `http` setting, `ADDR:PORT`). */
export interface HttpAddress {
  /** An IPv4 address, an IPv6 address (without brackets), or `localhost`. */
  readonly hostname: string;
  readonly port: number;
}

/** The defaults; PROTOCOL.md and README list the same values. */
export const DEFAULTS: Readonly<Settings> = {
  root: "/run/om",
  proc: "/proc",
  alpha: false,
  alphaDir: "/tmp",
  interfaces: [],
  multicastTtl: undefined,
  group: "239.192.79.77",
  port: 20301,
  announceInterval: 5000,
  expireAfter: 15000,
  debug: false,
  infoInterval: 1000,
  key: undefined,
  channelPort: 20302,
  allow: [],
  execAllow: [],
  rootGuests: true,
  http: undefined,
  configFile: "/etc/om/om.conf",
};

/** One setting's spellings: key in the file, environment variable, and how to read the value. */
interface Key {
  readonly setting: keyof Settings;
  readonly file: string;
  readonly env: string;
  readonly kind:
    | "string"
    | "path"
    | "boolean"
    | "list"
    | "patterns"
    | "integer"
    | "seconds"
    | "multicast"
    | "hostport";
  readonly range?: readonly [number, number];
}

const KEYS: readonly Key[] = [
  { setting: "root", file: "root", env: "OM_ROOT", kind: "path" },
  { setting: "proc", file: "proc", env: "OM_PROC", kind: "path" },
  { setting: "alpha", file: "alpha", env: "OM_ALPHA", kind: "boolean" },
  { setting: "alphaDir", file: "alpha_dir", env: "OM_ALPHA_DIR", kind: "path" },
  { setting: "interfaces", file: "interface", env: "OM_INTERFACE", kind: "list" },
  {
    setting: "multicastTtl",
    file: "multicast_ttl",
    env: "OM_MULTICAST_TTL",
    kind: "integer",
    range: [1, 255],
  },
  { setting: "group", file: "group", env: "OM_GROUP", kind: "multicast" },
  { setting: "port", file: "port", env: "OM_PORT", kind: "integer", range: [1, 65535] },
  {
    setting: "announceInterval",
    file: "announce_interval",
    env: "OM_ANNOUNCE_INTERVAL",
    kind: "seconds",
  },
  { setting: "expireAfter", file: "expire_after", env: "OM_EXPIRE_AFTER", kind: "seconds" },
  { setting: "debug", file: "debug", env: "OM_DEBUG", kind: "boolean" },
  { setting: "infoInterval", file: "info_interval", env: "OM_INFO_INTERVAL", kind: "seconds" },
  { setting: "key", file: "key", env: "OM_KEY", kind: "path" },
  {
    setting: "channelPort",
    file: "channel_port",
    env: "OM_CHANNEL_PORT",
    kind: "integer",
    range: [1, 65535],
  },
  { setting: "allow", file: "allow", env: "OM_ALLOW", kind: "list" },
  { setting: "execAllow", file: "exec_allow", env: "OM_EXEC_ALLOW", kind: "patterns" },
  { setting: "rootGuests", file: "root_guests", env: "OM_ROOT_GUESTS", kind: "boolean" },
  { setting: "http", file: "http", env: "OM_HTTP", kind: "hostport" },
];

/** The file keys, for the documentation and the sample file. */
export const FILE_KEYS: readonly string[] = KEYS.map((k) => k.file);

/**
 * Why `pattern` cannot be one of exec_allow's patterns (lib/exec/allow.ts matches them), or
 * undefined: a bare name pattern (no `/`), an absolute path pattern, or `*`; no blanks or control
 * characters, at most 4096 characters.
 */
export function execPatternProblem(pattern: string): string | undefined {
  if (pattern === "") return "it is empty";
  if (pattern.length > 4096) return "it is longer than 4096 characters";
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(pattern)) return "it holds a blank or a control character";
  if (pattern.includes("/") && !pattern.startsWith("/")) {
    return "a pattern with a / must be an absolute path (/usr/bin/*)";
  }
  return undefined;
}

/**
 * Reads `ADDR:PORT` (the `http` setting): an IPv4 address, `[IPv6]` or `localhost`, and a port
 * from 1 to 65535. Throws SyntaxError, naming `where`.
 */
export function parseHttpAddress(text: string, where = "http"): HttpAddress {
  const value = text.trim();
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(value);
  const hostname = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const known = hostname !== undefined &&
    (match?.[1] !== undefined
      ? hostname.includes(":")
      : isIPv4(hostname) || hostname === "localhost");
  if (!match || !known || port < 1 || port > 65535) {
    throw new SyntaxError(
      `${where} "${value}" is not ADDR:PORT (an IPv4 address, [IPv6] or localhost, and a port ` +
        `from 1 to 65535)`,
    );
  }
  return { hostname: hostname!, port };
}

function convert(key: Key, raw: string, where: string): Settings[keyof Settings] {
  const value = raw.trim();
  switch (key.kind) {
    case "string":
    case "path":
      if (value === "") throw new SyntaxError(`${where}: ${key.file} is empty`);
      return value;
    case "multicast":
      if (!isIPv4(value) || parseIPv4(value) >>> 28 !== 0xe) {
        throw new SyntaxError(`${where}: ${key.file} "${value}" is not an IPv4 multicast address`);
      }
      return value;
    case "boolean":
      if (/^(1|yes|true|on)$/i.test(value)) return true;
      if (/^(0|no|false|off|)$/i.test(value)) return false;
      throw new SyntaxError(`${where}: ${key.file} "${value}" is not yes or no`);
    case "list": {
      const list = value.split(",").map((s) => s.trim()).filter(Boolean);
      return list;
    }
    case "patterns": {
      const list = value.split(",").map((s) => s.trim()).filter(Boolean);
      for (const pattern of list) {
        const problem = execPatternProblem(pattern);
        if (problem) throw new SyntaxError(`${where}: ${key.file} "${pattern}": ${problem}`);
      }
      return list;
    }
    case "hostport":
      return value === "" ? undefined : parseHttpAddress(value, `${where}: ${key.file}`);
    case "integer": {
      const [min, max] = key.range ?? [0, Number.MAX_SAFE_INTEGER];
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
        throw new SyntaxError(
          `${where}: ${key.file} "${value}" is not a number from ${min} to ${max}`,
        );
      }
      return Number(value);
    }
    case "seconds": {
      if (!/^\d+(\.\d+)?$/.test(value) || Number(value) < 0.01) {
        throw new SyntaxError(
          `${where}: ${key.file} "${value}" is not a number of seconds >= 0.01`,
        );
      }
      return Math.round(Number(value) * 1000);
    }
  }
}

/**
 * Parses the configuration file: `key = value` lines, `#` comments, blank lines. An unknown key
 * or a bad value is a SyntaxError naming FILE:LINE.
 */
export function parseConfigFile(text: string, path: string): Partial<Settings> {
  const result: Partial<Settings> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/#.*/, "").trim();
    if (line === "") continue;
    const where = `${path}:${i + 1}`;
    const eq = line.indexOf("=");
    if (eq < 0) throw new SyntaxError(`${where}: expected "key = value"`);
    const name = line.slice(0, eq).trim();
    const key = KEYS.find((k) => k.file === name);
    if (!key) throw new SyntaxError(`${where}: unknown key "${name}"`);
    (result as Record<string, unknown>)[key.setting] = convert(key, line.slice(eq + 1), where);
  }
  return result;
}

/** Settings given on the command line (undefined = not given). */
export type FlagSettings = Partial<Settings>;

/**
 * The one merge: flags over environment over file over defaults. The file is
 * `flags.configFile ?? $OM_CONFIG ?? /etc/om/om.conf`; a missing default file is fine, a missing
 * named one is an error.
 */
export async function loadSettings(
  flags: FlagSettings,
  env: (name: string) => string | undefined,
): Promise<Settings> {
  const named = flags.configFile ?? env("OM_CONFIG");
  const configFile = named ?? DEFAULTS.configFile;
  let fromFile: Partial<Settings> = {};
  try {
    fromFile = parseConfigFile(await Deno.readTextFile(configFile), configFile);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound) || named !== undefined) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error(`Cannot read configuration "${configFile}": no such file`);
      }
      throw error;
    }
  }
  const fromEnv: Partial<Settings> = {};
  for (const key of KEYS) {
    const raw = env(key.env);
    if (raw !== undefined && raw !== "") {
      (fromEnv as Record<string, unknown>)[key.setting] = convert(key, raw, key.env);
    }
  }
  const defined = (part: Partial<Settings>) =>
    Object.fromEntries(Object.entries(part).filter(([, v]) => v !== undefined));
  const settings: Settings = {
    ...DEFAULTS,
    ...defined(fromFile),
    ...defined(fromEnv),
    ...defined(flags),
    configFile,
  };
  // Flags are typed by the command line; the group still needs the multicast check.
  convert(KEYS.find((k) => k.setting === "group")!, settings.group, "--group");
  if (settings.expireAfter <= settings.announceInterval) {
    throw new RangeError(
      `Cannot use expire_after ${settings.expireAfter / 1000} s: it must be longer than ` +
        `announce_interval ${settings.announceInterval / 1000} s`,
    );
  }
  return settings;
}
