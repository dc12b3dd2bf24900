/**
 * `om setpe`: installs a cluster map from a map file, checks one, prints the map in force in
 * map-file form, or switches openMosix off, with the original setpe's command line.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import type { ClusterMap } from "../lib/state/hpcmap.ts";
import { isIPv4 } from "../lib/base/ipv4.ts";
import { findNode, formatMap, listNodes, parseMapFile } from "../lib/state/mapfile.ts";
import { readMap, resolveStatePaths, type StatePaths, writeMap } from "../lib/state/tree.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";

/** The map files tried without -f, in the order of the original init scripts. */
const DEFAULT_MAP_FILES = ["/etc/openmosix.map", "/etc/mosix.map", "/etc/hpc.map"];

export const spec: CommandSpec = {
  ...meta("setpe"),
  usage: [
    "om setpe -w|-W [-p ID] [-g N] [-f FILE|-]",
    "om setpe -c [-p ID] [-f FILE|-]",
    "om setpe -r [-f FILE|-]",
    "om setpe -off",
  ],
  description:
    `A map file has one line per range: "first-id host-or-address count". A count above 1 counts up
the last byte of the address (1 192.168.1.1 4 = nodes 1 to 4 at .1 to .4; ranges need an
address, not a host name); "ID address ALIAS" gives node ID another address. # starts a comment.
At most 256 entries, node ids 1 to 65535.

This node's id is the one whose address is this host's: first the addresses its host name
resolves to, then those of its interfaces (OM_HOST_ADDRESSES=a.b.c.d,... replaces both, for
tests), unless -p names it.

-w and -W: om's meaning (the original's distinction between them is lost). -w installs the table
unless the very same table, node id and gateways are already in force, and then says so and
changes nothing; -W installs it anyway. On success both print nothing.

Without -f the first existing file of /etc/openmosix.map, /etc/mosix.map, /etc/hpc.map is read;
OM_MAP_FILES=FILE:FILE:... replaces that list. A bad line prints "setpe: FILE:LINE: reason",
exits 1 and leaves the map in force as it was.`,
  options: [
    {
      name: "write",
      flags: ["-w", "--write"],
      help: "install the table, unless the same one is already in force",
    },
    { name: "writeAnyway", flags: ["-W", "--write-anyway"], help: "install the table anyway" },
    {
      name: "check",
      flags: ["-c", "--check"],
      help: "only check the table and this node's place in it (exit 0 good, 1 bad)",
    },
    {
      name: "read",
      flags: ["-r", "--read"],
      help: "print the table in force in map-file form (to FILE with -f)",
    },
    { name: "off", flags: ["-off", "--off"], help: "switch openMosix off: empty table, node id 0" },
    {
      name: "file",
      flags: ["-f", "--file"],
      value: "FILE",
      help: "the map file; - is standard input (output with -r)",
      complete: "file",
    },
    {
      name: "id",
      flags: ["-p", "--id"],
      value: "ID",
      integer: [1, 65535],
      help: "this node's id (must be in the table)",
    },
    {
      name: "gateways",
      flags: ["-g", "--gateways"],
      value: "N",
      integer: [0, 2],
      help: "maximum number of gateways, 0 to 2 (default 0)",
      complete: ["0", "1", "2"],
    },
    {
      name: "net",
      flags: ["-n"],
      value: "inet",
      help: "address family; only inet exists (accepted for old scripts)",
      complete: ["inet"],
    },
    ROOT_OPTION,
    ALPHA_OPTION,
  ],
  examples: [
    {
      command: "setpe -w -f /etc/openmosix.map",
      says: "installs the map; this node is the one with this host's address",
    },
    { command: "setpe -W -p 3 -f - < cluster.map", says: "installs as node 3, read from stdin" },
    { command: "setpe -c -f /etc/openmosix.map", says: "exit status 0 when the map would work" },
    { command: "setpe -r", says: "prints the map in force, e.g. 1 192.168.10.220 1" },
    { command: "setpe -off", says: "empties the map: openMosix off" },
  ],
};

type Mode = "write" | "writeAnyway" | "read" | "off";
const MODES: readonly Mode[] = ["write", "writeAnyway", "read", "off"];
const FLAG: Record<Mode | "check", string> = {
  write: "-w",
  writeAnyway: "-W",
  read: "-r",
  off: "-off",
  check: "-c",
};

/** Checks the combination of modes; returns the mode and whether it only checks. */
function modeOf(options: Parsed["options"]): { mode: Mode | undefined; check: boolean } {
  const modes = MODES.filter((m) => options[m] === true);
  const check = options.check === true;
  if (modes.length > 1) {
    throw new UsageError(
      `Cannot use ${modes.map((m) => FLAG[m]).join(" and ")} together: give one of them`,
    );
  }
  const mode = modes[0];
  if (mode === undefined && !check) {
    throw new UsageError("Cannot tell what to do: give -w, -W, -c, -r or -off");
  }
  if (check && (mode === "read" || mode === "off")) {
    throw new UsageError(`Cannot use -c with ${FLAG[mode]}: -c checks a table to install`);
  }
  const installs = check || mode === "write" || mode === "writeAnyway";
  for (const [name, flag] of [["id", "-p"], ["gateways", "-g"], ["net", "-n"]]) {
    if (options[name] !== undefined && !installs) {
      throw new UsageError(`Cannot use ${flag} with ${FLAG[mode!]}: it goes with -w, -W or -c`);
    }
  }
  if (mode === "off" && options.file !== undefined) {
    throw new UsageError("Cannot use -f with -off: -off reads no table");
  }
  if (options.net !== undefined && options.net !== "inet") {
    throw new UsageError(`Cannot use "${options.net}" for -n: only inet exists`);
  }
  return { mode, check };
}

/** The map files to try without -f: OM_MAP_FILES (colon-separated) or the defaults. */
function mapFiles(ctx: Context): string[] {
  const override = ctx.env("OM_MAP_FILES");
  if (override === undefined || override === "") return DEFAULT_MAP_FILES;
  return override.split(":").filter((p) => p !== "");
}

/** Reads the table's text: -f FILE, stdin for `-`, or the first default file that exists. */
async function readTable(
  file: string | undefined,
  ctx: Context,
): Promise<{ text: string; path: string }> {
  if (file === "-") return { text: await new Response(ctx.stdin).text(), path: "-" };
  const candidates = file === undefined ? mapFiles(ctx) : [file];
  for (const path of candidates) {
    try {
      return { text: await Deno.readTextFile(path), path };
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        if (file === undefined) continue;
        throw new Error(`Cannot read the map file "${path}": no such file`);
      }
      throw new Error(`Cannot read the map file "${path}": ${(error as Error).message}`);
    }
  }
  throw new Error(
    `Cannot find a map file: none of ${candidates.join(", ")} exists ` +
      `(name one with -f FILE, or -f - for standard input)`,
  );
}

/**
 * This host's IPv4 addresses: those its host name resolves to, then its interfaces'. The
 * OM_HOST_ADDRESSES override (comma-separated) replaces both, for tests and odd hosts.
 */
async function hostAddresses(ctx: Context): Promise<{ named: string[]; interfaces: string[] }> {
  const override = ctx.env("OM_HOST_ADDRESSES");
  if (override !== undefined && override !== "") {
    const named = override.split(",").map((a) => a.trim()).filter((a) => a !== "");
    const bad = named.find((a) => !isIPv4(a));
    if (bad !== undefined) {
      throw new Error(`Cannot use OM_HOST_ADDRESSES "${override}": "${bad}" is not an address`);
    }
    return { named, interfaces: [] };
  }
  let named: string[] = [];
  try {
    const { lookup } = await import("node:dns/promises");
    const found = await lookup(Deno.hostname(), { family: 4, all: true });
    named = found.map((a) => a.address);
  } catch {
    named = [];
  }
  let interfaces: string[] = [];
  try {
    interfaces = Deno.networkInterfaces().filter((i) => i.family === "IPv4").map((i) => i.address);
  } catch {
    interfaces = [];
  }
  return { named, interfaces };
}

function sameMap(a: ClusterMap, b: ClusterMap): boolean {
  return a.gateways === b.gateways && a.entries.length === b.entries.length &&
    a.entries.every((e, i) =>
      e.base === b.entries[i].base && e.address === b.entries[i].address &&
      e.count === b.entries[i].count
    );
}

async function statePaths(parsed: Parsed, ctx: Context): Promise<StatePaths> {
  const settings = await loadSettings({
    root: parsed.options.root as string | undefined,
    alpha: parsed.options.alpha === true ? true : undefined,
  }, ctx.env);
  return resolveStatePaths(settings);
}

/** Runs setpe; a bad table or a missing own address prints the original's message and exits 1. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length > 0) {
    throw new UsageError(`Cannot use "${parsed.args[0]}": setpe takes no arguments`);
  }
  const { mode, check } = modeOf(parsed.options);
  const file = parsed.options.file as string | undefined;

  if (mode === "off") {
    await writeMap(await statePaths(parsed, ctx), 0, { gateways: 0, entries: [] });
    return 0;
  }

  if (mode === "read") {
    const paths = await statePaths(parsed, ctx);
    const state = await readMap(paths);
    if (!state) {
      throw new Error(
        `Cannot read the map "${paths.config}": no map in force ` +
          `(is om discover running, or setpe -w done?)`,
      );
    }
    const text = formatMap(state.map.entries);
    if (file === undefined || file === "-") ctx.out(text);
    else await Deno.writeTextFile(file, text);
    return 0;
  }

  const table = await readTable(file, ctx);
  let entries;
  try {
    entries = await parseMapFile(table.text, table.path);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    ctx.err(`setpe: ${error.message}\n`);
    return 1;
  }

  let self: number;
  const given = parsed.options.id as number | undefined;
  if (given !== undefined) {
    if (!listNodes(entries).some((n) => n.id === given)) {
      throw new Error(`Cannot use node id ${given} (-p): the table does not define it`);
    }
    self = given;
  } else {
    const { named, interfaces } = await hostAddresses(ctx);
    const found = findNode(entries, [...named, ...interfaces]);
    if (found === undefined) {
      const mine = named[0] ?? interfaces.find((a) => !a.startsWith("127.")) ?? interfaces[0] ??
        "127.0.0.1";
      ctx.err(
        `setpe: the supplied table is well-formatted, but my IP address (${mine}) is not there!\n`,
      );
      return 1;
    }
    self = found;
  }
  if (check) return 0;

  const map: ClusterMap = {
    gateways: (parsed.options.gateways as number | undefined) ?? 0,
    entries,
  };
  const paths = await statePaths(parsed, ctx);
  if (mode === "write") {
    const current = await readMap(paths).catch(() => undefined);
    if (current && current.self === self && sameMap(current.map, map)) {
      ctx.out("setpe: this table is already in force; nothing changed (-W installs it anyway)\n");
      return 0;
    }
  }
  await writeMap(paths, self, map);
  return 0;
}
