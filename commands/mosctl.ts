/**
 * `om mosctl`: the openMosix main configuration utility. Sets this node's admin flags and tuning
 * in admin/ (om's state tree, or /proc/hpc/admin on an openMosix kernel) and reads every node's
 * figures from nodes/<id>/, with the original verbs and spellings (HOWTO table 8-6).
 */
import {
  ADMIN_FLAGS,
  type AdminFlag,
  readAdmin,
  readFlag,
  writeAdmin,
} from "../lib/state/admin.ts";
import { type ArgSpec, type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import type { ClusterMap } from "../lib/state/hpcmap.ts";
import { formatNodeId } from "../lib/base/ipv4.ts";
import { DASH_SPELLINGS, FLAG_VERBS, type FlagVerb } from "../lib/views/flags.ts";
import { clusterSummary, renderStatus, statusJson, type StatusView } from "../lib/views/status.ts";
import {
  DECAY_FILES,
  DECAY_INTERVAL_RANGE,
  DECAY_RATE_RANGE,
  DEFAULT_DECAY,
  DEFAULT_OVERHEADS,
  DEFAULT_YARDSTICK,
  formatYardstick,
  parseYardstick,
  PROCESSOR_TYPES,
  SPEED_RANGE,
  type Yardstick,
} from "../lib/views/tuning.ts";
import {
  addressesOf,
  type HostResolver,
  nameAddresses,
  type NodeQuery,
  parseNodeId,
  parseNodeQuery,
  renderAddresses,
  renderId,
  renderSelf,
  whois,
  type WhoisAnswer,
  whoisJson,
} from "../lib/views/whois.ts";
import { listNodeInfo, type NodeInfo, readNodeInfo } from "../lib/state/nodestate.ts";
import { readMap, resolveStatePaths, type StatePaths } from "../lib/state/tree.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";
import type { SweepReport } from "../lib/balance/balancer.ts";

/** Per-node figures: the file of nodes/<id>/ each verb prints, and how messages name it. */
const FIGURE_VERBS = {
  getload: { key: "load", what: "load" },
  getmem: { key: "mem", what: "available memory" },
  getfree: { key: "rmem", what: "free memory" },
  getutil: { key: "util", what: "utilisation" },
} as const;

const VERBS: readonly ArgSpec[] = [
  { name: "stay", help: "no automatic process migration (admin/stay 1)" },
  { name: "nostay", help: "automatic process migration, the default (also -stay)" },
  { name: "lstay", help: "local processes stay here (admin/lstay 1)" },
  { name: "nolstay", help: "local processes may migrate (also -lstay)" },
  { name: "block", help: "block the arrival of guest processes (admin/block 1)" },
  { name: "noblock", help: "allow the arrival of guest processes (also -block)" },
  { name: "quiet", help: "stop gathering load-balancing information (admin/quiet 1)" },
  { name: "noquiet", help: "gather load-balancing information (also -quiet)" },
  { name: "nomfs", help: "disable MFS (admin/nomfs 1)" },
  { name: "mfs", help: "enable MFS (admin/nomfs 0)" },
  { name: "expel", help: "send guest jobs home, return when done; implies block" },
  { name: "bring", help: "bring this node's jobs home, return when done; implies lstay" },
  { name: "gettune", help: "show the overhead parameters (admin/overheads)" },
  { name: "getyard", help: "show the yardstick: NAME SPEED" },
  { name: "setyard", help: "set the yardstick: PIII-1000, node ID's speed, or this node's" },
  { name: "getdecay", help: "show the decay parameters: INTERVAL SLOW FAST" },
  { name: "setdecay", help: "set the decay interval in seconds [and slow and fast, per mille]" },
  { name: "setspeed", help: "set this node's speed, 1 to 1000000 (10000 = PIII at 1 GHz)" },
  { name: "getspeed", help: "show the speed of node ID (default: this node)" },
  { name: "getload", help: "show the load of node ID (100 = one busy PIII at 1 GHz)" },
  { name: "getmem", help: "show the available memory of node ID, in bytes" },
  { name: "getfree", help: "show the free memory of node ID, in bytes" },
  { name: "getutil", help: "show the utilisation of node ID, in percent" },
  { name: "isup", help: "print yes and exit 0 when node ID is up, else no and exit 1" },
  { name: "whois", help: "node id <-> address <-> host name; alone: this node" },
  { name: "status", help: "this node's flags and figures and the cluster's (or node ID's)" },
];

/** The verbs that print something to read, and so take --json. */
const JSON_VERBS = new Set([
  "gettune",
  "getyard",
  "getdecay",
  "getspeed",
  "getload",
  "getmem",
  "getfree",
  "getutil",
  "isup",
  "whois",
  "status",
]);

export const spec: CommandSpec = {
  ...meta("mosctl"),
  usage: [
    "om mosctl stay|nostay|lstay|nolstay|block|noblock|quiet|noquiet|nomfs|mfs",
    "om mosctl -stay|-lstay|-block|-quiet",
    "om mosctl expel|bring",
    "om mosctl gettune|getyard|getdecay [--json]",
    "om mosctl setyard PIII-1000|ID|this",
    "om mosctl setdecay INTERVAL [SLOW FAST]",
    "om mosctl setspeed N",
    "om mosctl getload|getspeed|getmem|getfree|getutil|isup|status [ID] [--json]",
    "om mosctl whois [ID|ADDRESS|HOST] [--json]",
  ],
  description:
    `Every verb reads or writes a file of admin/ or nodes/<ID>/: in om's state tree (OM_ROOT,
default /run/om), or in /proc/hpc on an openMosix kernel (when <OM_PROC>/hpc exists). A node ID
is a number, 1 to 65535, or hex as showmap prints it (0x0adc); without one, the verb is about
this node, whose id is the one of the map in force (om discover, or setpe -w).

The on/off verbs write 1 or 0 to the file of their name (mfs and nomfs: admin/nomfs). When the
flag is already so they change nothing and say so, e.g. "automatic load-balancing already
enabled." (an absent file counts as 0).

expel writes admin/block 1 (no new guests) and admin/expel 1, then has om discover send every
guest job home and returns when that is done; bring writes admin/lstay 1 (this node's jobs stay
home) and admin/bring 1, then has om discover bring every job of this node home, and returns when
done. Each prints the jobs it could not move and then fails (they go on where they were). om
discover clears admin/expel or admin/bring when done. On an openMosix kernel the kernel acts on
the files.

Tuning, with om's defaults when the file is absent:
  setspeed N     admin/speed; getspeed without ID prints it, else this node's published speed
  setyard        admin/yardstick, one line "NAME SPEED": PIII-1000 (the HOWTO's reference,
                 speed 10000, the default), nodeID (the speed of node ID) or this node's speed
  setdecay       admin/decayinterval (seconds, 1 to 3600, default 1), admin/slowdecay and
                 admin/fastdecay (per mille kept at each decay, 0 to 1000, defaults 975 and
                 926); getdecay prints "INTERVAL SLOW FAST", the order setdecay takes
  gettune        prints admin/overheads as it is; without it, 0 (no overhead counted)

getload, getmem (memory available as om counts it), getfree (raw free memory), getutil and
getspeed ID print one plain decimal of nodes/<ID>/ (bytes for memory). A node that is down, or
unknown, is an error (exit 1). whois ID prints the node's addresses, one per line, each with its
host name when the address resolves back to one; whois ADDRESS or HOST prints the node id as
"2780 (0x0adc)"; whois alone prints "This is om node #2780 (0x0adc) at 192.168.10.220".

--json: the read verbs print one JSON object instead, e.g. {"id":2,"load":123}.
Exit status: 0 done, 1 failed (or isup: not up), 2 usage mistake.`,
  verbs: VERBS,
  args: [
    {
      name: "ID",
      help: "a node id (whois: also an address or a host name)",
      complete: "host",
    },
    { name: "N", help: "setspeed: the new speed; setdecay: INTERVAL SLOW FAST" },
  ],
  options: [
    { name: "json", flags: ["--json"], help: "print what a read verb shows as JSON" },
    ...DASH_SPELLINGS.map((d) => ({
      name: d.name,
      flags: [d.flag],
      help: `the original's spelling of ${d.verb}`,
    })),
    ROOT_OPTION,
    ALPHA_OPTION,
  ],
  examples: [
    { command: "mosctl block", says: "no guest processes may arrive (admin/block is 1)" },
    {
      command: "mosctl -lstay",
      says: "Local processes already allowed to leave automatically. (when they were)",
    },
    {
      command: "mosctl block; mosctl expel",
      says: "takes the node out of service: returns once every guest job is back home",
    },
    { command: "mosctl bring", says: "returns once every job of this node runs here again" },
    { command: "mosctl setspeed 15000", says: "this node is 1.5 times a PIII at 1 GHz" },
    { command: "mosctl getspeed 2", says: "10000" },
    { command: "mosctl setdecay 2 980 900", says: "decay every 2 s, keeping 98.0% or 90.0%" },
    { command: "mosctl getdecay", says: "1 975 926 (the defaults)" },
    { command: "mosctl getyard", says: "PIII-1000 10000" },
    { command: "mosctl getload 2 --json", says: '{"id":2,"load":123}' },
    { command: "mosctl getfree", says: "this node's free memory in bytes: 2147483648" },
    { command: "mosctl isup 5 || echo gone", says: "no, then gone: node 5 is down or unknown" },
    { command: "mosctl whois 2780", says: "192.168.10.220 (node220.example)" },
    { command: "mosctl whois node78.example", says: "2638 (0x0a4e)" },
    { command: "mosctl whois", says: "This is om node #2780 (0x0adc) at 192.168.10.220" },
    {
      command: "mosctl status",
      says: "this node's flags, speed, load and memory, and the cluster's",
    },
  ],
};

/** How long a host-name look-up may take before whois gives up on it. */
const LOOKUP_TIMEOUT_MS = 3000;

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Cannot ${what}: no answer in ${LOOKUP_TIMEOUT_MS / 1000} s`)),
      LOOKUP_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The system's resolver (/etc/hosts, DNS), IPv4 only, each look-up bounded in time. */
const SYSTEM_RESOLVER: HostResolver = {
  async lookup(host) {
    const { lookup } = await import("node:dns/promises");
    const found = await withTimeout(lookup(host, { family: 4, all: true }), `look up "${host}"`);
    return found.map((a) => a.address);
  },
  async reverse(address) {
    const { reverse } = await import("node:dns/promises");
    return await withTimeout(reverse(address), `look up the name of ${address}`);
  },
};

/** The node id and map in force, as readMap gives them. */
type MapState = { self: number; map: ClusterMap };

/** One run: where the state is, who to talk to, and whether to print JSON. */
interface Job {
  readonly paths: StatePaths;
  readonly ctx: Context;
  readonly json: boolean;
}

function print(job: Job, text: string, json: unknown): void {
  job.ctx.out(job.json ? JSON.stringify(json) + "\n" : text);
}

/** Finds the verb (a word, or a dash spelling) and its arguments. */
function verbOf(parsed: Parsed): { verb: string; args: string[] } {
  const dashed = DASH_SPELLINGS.filter((d) => parsed.options[d.name] === true);
  if (dashed.length > 1 || (dashed.length === 1 && parsed.args.length > 0)) {
    const given = [...dashed.map((d) => d.flag), ...parsed.args.slice(0, 1)];
    throw new UsageError(`Cannot use ${given.join(" and ")} together: give one command`);
  }
  if (dashed.length === 1) return { verb: dashed[0].verb, args: [] };
  const [verb, ...args] = parsed.args;
  if (verb === undefined) {
    throw new UsageError("Cannot tell what to do: give a command such as status");
  }
  if (!VERBS.some((v) => v.name === verb)) {
    throw new UsageError(`Cannot run "${verb}": no such mosctl command`);
  }
  return { verb, args };
}

/** Checks the number of arguments of a verb. */
function expectArgs(verb: string, args: readonly string[], counts: readonly number[]): void {
  if (counts.includes(args.length)) return;
  if (args.length > Math.max(...counts)) {
    const allowed = Math.max(...counts) === 0 ? "takes no arguments" : "takes fewer arguments";
    throw new UsageError(`Cannot use "${args[Math.max(...counts)]}": ${verb} ${allowed}`);
  }
  const needs = counts.filter((c) => c > 0).join(" or ");
  throw new UsageError(
    `Cannot run ${verb}: it needs ${needs} argument${Math.max(...counts) === 1 ? "" : "s"}`,
  );
}

/** A node id argument; a malformed one is a usage mistake. */
function nodeIdArg(text: string): number {
  try {
    return parseNodeId(text);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** A whole number argument in a range; anything else is a usage mistake. */
function numberArg(text: string, what: string, [min, max]: readonly [number, number]): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(
      `Cannot use "${text}" as ${what}: not a whole number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

/** The map in force, or undefined (a map that cannot be read is an error). */
function mapInForce(job: Job): Promise<MapState | undefined> {
  return readMap(job.paths);
}

/** This node's id and the map; throws when no map is in force or openMosix is off. */
function requireSelf(job: Job, state: MapState | undefined): MapState {
  if (!state) {
    throw new Error(
      `Cannot tell this node's id: no map in force in "${job.paths.config}" ` +
        `(is om discover running, or setpe -w done?)`,
    );
  }
  if (state.self === 0) {
    throw new Error("Cannot tell this node's id: openMosix is off here (node id 0, setpe -off)");
  }
  return state;
}

/** This node's id from the map in force (see requireSelf). */
async function selfId(job: Job): Promise<number> {
  return requireSelf(job, await mapInForce(job)).self;
}

/** The figures of a node that is up; throws, naming `what`, when it is unknown or down. */
async function figuresOf(job: Job, id: number, what: string): Promise<NodeInfo> {
  const info = await readNodeInfo(job.paths.nodes, id);
  if (info === undefined) {
    throw new Error(
      `Cannot read the ${what} of node ${id}: nothing is known about it ` +
        `(no "${job.paths.nodes}/${id}")`,
    );
  }
  if (info.status !== "up") throw new Error(`Cannot read the ${what} of node ${id}: it is down`);
  return info;
}

/** The node an optional ID argument names: that one, or this node. */
async function nodeOf(job: Job, args: readonly string[]): Promise<number> {
  return args.length ? nodeIdArg(args[0]) : await selfId(job);
}

async function flagVerb(job: Job, verb: FlagVerb): Promise<number> {
  if (await readFlag(job.paths, verb.file) === verb.on) {
    job.ctx.out(`${verb.already}\n`);
    return 0;
  }
  await writeAdmin(job.paths, verb.file, verb.on ? "1" : "0");
  return 0;
}

/**
 * expel (with block) or bring (with lstay): the files, then om discover does it (`node.expel`,
 * `node.bring` on the local socket) and replies when done. The kernel acts on the files itself.
 */
async function request(job: Job, file: "expel" | "bring", implies: AdminFlag): Promise<number> {
  if (!await readFlag(job.paths, implies)) await writeAdmin(job.paths, implies, "1");
  await writeAdmin(job.paths, file, "1");
  if (job.paths.backend === "kernel") return 0;
  // Loaded here only: every other verb starts without the channel's code.
  const { connectLocal, localSocketPath, LocalAuthError } = await import(
    "../lib/jobs/localauth.ts"
  );
  const path = localSocketPath(job.paths.root);
  let client;
  try {
    client = await connectLocal(job.paths.root, { timeoutMs: 5000 });
  } catch (error) {
    job.ctx.err(
      error instanceof LocalAuthError
        ? `mosctl: ${error.message}\n`
        : `mosctl: Cannot reach om discover at ${path}: is it running?\n`,
    );
    return 1;
  }
  try {
    const reply: SweepReport = JSON.parse(
      new TextDecoder().decode(
        await client.request(`node.${file}`, new Uint8Array(), { timeoutMs: 0 }),
      ),
    );
    if (job.json) job.ctx.out(JSON.stringify(reply) + "\n");
    for (const failed of reply.failed) {
      job.ctx.err(
        `mosctl: Cannot ${
          file === "expel" ? "send job" : "bring job"
        } ${failed.id} home: ${failed.error}\n`,
      );
    }
    return reply.failed.length ? 1 : 0;
  } catch (error) {
    job.ctx.err(`mosctl: ${file} failed: ${error instanceof Error ? error.message : error}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
  }
}

/** A decimal setting of admin/ in a range, its default when absent; anything else is an error. */
async function readSetting(
  job: Job,
  name: string,
  fallback: number,
  range: readonly [number, number],
): Promise<number> {
  const text = await readAdmin(job.paths, name);
  return text === undefined ? fallback : numberSetting(job, name, text, range);
}

/** This node's speed: admin/speed as set, else what nodes/<self>/speed publishes. */
async function ownSpeed(job: Job): Promise<{ id: number | null; speed: number }> {
  const set = await readAdmin(job.paths, "speed");
  const state = await mapInForce(job);
  const id = state && state.self !== 0 ? state.self : null;
  if (set !== undefined) {
    return { id, speed: numberSetting(job, "speed", set, SPEED_RANGE) };
  }
  if (id === null) {
    throw new Error(
      `Cannot read this node's speed: "${job.paths.admin}/speed" is not set (mosctl setspeed N) ` +
        `and no map in force tells this node's id`,
    );
  }
  return { id, speed: (await figuresOf(job, id, "speed")).speed };
}

/** The number an admin file holds, checked against its range. */
function numberSetting(
  job: Job,
  name: string,
  text: string,
  [min, max]: readonly [number, number],
): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(
      `Cannot read "${job.paths.admin}/${name}": "${text}" is not a number from ${min} to ${max}`,
    );
  }
  return Number(text);
}

async function getspeed(job: Job, args: readonly string[]): Promise<number> {
  let answer: { id: number | null; speed: number };
  if (args.length) {
    const id = nodeIdArg(args[0]);
    answer = { id, speed: (await figuresOf(job, id, "speed")).speed };
  } else {
    answer = await ownSpeed(job);
  }
  print(job, `${answer.speed}\n`, answer);
  return 0;
}

async function figure(
  job: Job,
  args: readonly string[],
  { key, what }: (typeof FIGURE_VERBS)[keyof typeof FIGURE_VERBS],
): Promise<number> {
  const id = await nodeOf(job, args);
  const value = (await figuresOf(job, id, what))[key];
  print(job, `${value}\n`, { id, [key]: value });
  return 0;
}

async function isup(job: Job, args: readonly string[]): Promise<number> {
  const id = await nodeOf(job, args);
  const up = (await readNodeInfo(job.paths.nodes, id))?.status === "up";
  print(job, up ? "yes\n" : "no\n", { id, up });
  return up ? 0 : 1;
}

async function gettune(job: Job): Promise<number> {
  const text = await readAdmin(job.paths, "overheads");
  const tuned = text !== undefined && text !== "";
  const overheads = tuned ? text : DEFAULT_OVERHEADS;
  print(job, `${overheads}\n`, { overheads, tuned });
  return 0;
}

async function getyard(job: Job): Promise<number> {
  const text = await readAdmin(job.paths, "yardstick");
  let yardstick = DEFAULT_YARDSTICK;
  if (text !== undefined) {
    try {
      yardstick = parseYardstick(text);
    } catch {
      throw new Error(
        `Cannot read "${job.paths.admin}/yardstick": expected "NAME SPEED", found "${text}"`,
      );
    }
  }
  print(job, `${formatYardstick(yardstick)}\n`, {
    yardstick: yardstick.name,
    speed: yardstick.speed,
  });
  return 0;
}

async function setyard(job: Job, arg: string): Promise<number> {
  let yardstick: Yardstick;
  if (arg === "this") {
    const { id, speed } = await ownSpeed(job);
    yardstick = { name: id === null ? "this" : `node${id}`, speed };
  } else if (/^(\d+|0[xX][0-9a-fA-F]+)$/.test(arg)) {
    const id = nodeIdArg(arg);
    yardstick = { name: `node${id}`, speed: (await figuresOf(job, id, "speed")).speed };
  } else if (Object.hasOwn(PROCESSOR_TYPES, arg)) {
    yardstick = { name: arg, speed: PROCESSOR_TYPES[arg] };
  } else {
    throw new UsageError(
      `Cannot use "${arg}" as a yardstick: give a processor type ` +
        `(${Object.keys(PROCESSOR_TYPES).join(", ")}), a node id or this`,
    );
  }
  await writeAdmin(job.paths, "yardstick", formatYardstick(yardstick));
  return 0;
}

async function getdecay(job: Job): Promise<number> {
  const interval = await readSetting(
    job,
    DECAY_FILES.interval,
    DEFAULT_DECAY.interval,
    DECAY_INTERVAL_RANGE,
  );
  const slow = await readSetting(job, DECAY_FILES.slow, DEFAULT_DECAY.slow, DECAY_RATE_RANGE);
  const fast = await readSetting(job, DECAY_FILES.fast, DEFAULT_DECAY.fast, DECAY_RATE_RANGE);
  print(job, `${interval} ${slow} ${fast}\n`, { interval, slow, fast });
  return 0;
}

async function setdecay(job: Job, args: readonly string[]): Promise<number> {
  const interval = numberArg(args[0], "the decay interval (seconds)", DECAY_INTERVAL_RANGE);
  const rates = args.slice(1).map((arg, i) =>
    numberArg(arg, `the ${i === 0 ? "slow" : "fast"} decay (per mille)`, DECAY_RATE_RANGE)
  );
  await writeAdmin(job.paths, DECAY_FILES.interval, String(interval));
  if (rates.length === 2) {
    await writeAdmin(job.paths, DECAY_FILES.slow, String(rates[0]));
    await writeAdmin(job.paths, DECAY_FILES.fast, String(rates[1]));
  }
  return 0;
}

async function setspeed(job: Job, arg: string): Promise<number> {
  await writeAdmin(job.paths, "speed", String(numberArg(arg, "the speed", SPEED_RANGE)));
  return 0;
}

async function whoisVerb(
  job: Job,
  args: readonly string[],
  resolver: HostResolver,
): Promise<number> {
  let query: NodeQuery | undefined;
  if (args.length) {
    try {
      query = parseNodeQuery(args[0]);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const state = await mapInForce(job);
  let answer: WhoisAnswer;
  if (query === undefined) {
    const { self, map } = requireSelf(job, state);
    answer = { id: self, addresses: addressesOf(map.entries, self) };
  } else if (state === undefined) {
    throw new Error(
      `Cannot find "${args[0]}": no map in force in "${job.paths.config}" ` +
        `(is om discover running, or setpe -w done?)`,
    );
  } else {
    answer = await whois(query, state.map.entries, resolver);
  }
  const named = job.json || query?.kind === "id"
    ? await nameAddresses(answer.addresses, resolver)
    : [];
  const text = query === undefined
    ? renderSelf(answer)
    : query.kind === "id"
    ? renderAddresses(named)
    : renderId(answer);
  print(job, text, whoisJson(answer, named, state?.self === answer.id));
  return 0;
}

async function status(job: Job, args: readonly string[]): Promise<number> {
  const state = args.length ? await mapInForce(job) : requireSelf(job, await mapInForce(job));
  const id = args.length ? nodeIdArg(args[0]) : state!.self;
  const entries = state?.map.entries ?? [];
  const addresses = addressesOf(entries, id);
  const node = await readNodeInfo(job.paths.nodes, id);
  if (addresses.length === 0 && node === undefined) {
    throw new Error(
      `Cannot show node ${id} (${formatNodeId(id)}): it is neither in the map in force ` +
        `nor in "${job.paths.nodes}"`,
    );
  }
  let view: StatusView = { id, addresses, node };
  if (state && state.self === id) {
    const flags = Object.fromEntries(
      await Promise.all(ADMIN_FLAGS.map(async (f) => [f, await readFlag(job.paths, f)])),
    ) as Record<AdminFlag, boolean>;
    const admin = job.paths.admin;
    view = {
      ...view,
      local: { backend: job.paths.backend, state: admin.slice(0, admin.lastIndexOf("/")), flags },
      cluster: clusterSummary(entries, await listNodeInfo(job.paths.nodes)),
    };
  }
  print(job, renderStatus(view), statusJson(view));
  return 0;
}

/**
 * Runs one verb. `options.resolver` replaces the system's resolver for whois (tests).
 * Returns 0, or 1 for isup of a node that is not up; failures throw.
 */
export async function run(
  parsed: Parsed,
  ctx: Context,
  options: { resolver?: HostResolver } = {},
): Promise<number> {
  const { verb, args } = verbOf(parsed);
  const json = parsed.options.json === true;
  if (json && !JSON_VERBS.has(verb)) {
    throw new UsageError(`Cannot use --json with ${verb}: it prints nothing to read`);
  }
  const settings = await loadSettings({
    root: parsed.options.root as string | undefined,
    alpha: parsed.options.alpha === true ? true : undefined,
  }, ctx.env);
  const job: Job = { paths: resolveStatePaths(settings), ctx, json };

  const flag = FLAG_VERBS[verb];
  if (flag) {
    expectArgs(verb, args, [0]);
    return await flagVerb(job, flag);
  }
  if (verb in FIGURE_VERBS) {
    expectArgs(verb, args, [0, 1]);
    return await figure(job, args, FIGURE_VERBS[verb as keyof typeof FIGURE_VERBS]);
  }
  switch (verb) {
    case "expel":
      expectArgs(verb, args, [0]);
      return await request(job, "expel", "block");
    case "bring":
      expectArgs(verb, args, [0]);
      return await request(job, "bring", "lstay");
    case "gettune":
      expectArgs(verb, args, [0]);
      return await gettune(job);
    case "getyard":
      expectArgs(verb, args, [0]);
      return await getyard(job);
    case "setyard":
      expectArgs(verb, args, [1]);
      return await setyard(job, args[0]);
    case "getdecay":
      expectArgs(verb, args, [0]);
      return await getdecay(job);
    case "setdecay":
      expectArgs(verb, args, [1, 3]);
      return await setdecay(job, args);
    case "setspeed":
      expectArgs(verb, args, [1]);
      return await setspeed(job, args[0]);
    case "getspeed":
      expectArgs(verb, args, [0, 1]);
      return await getspeed(job, args);
    case "isup":
      expectArgs(verb, args, [0, 1]);
      return await isup(job, args);
    case "whois":
      expectArgs(verb, args, [0, 1]);
      return await whoisVerb(job, args, options.resolver ?? SYSTEM_RESOLVER);
    case "status":
      expectArgs(verb, args, [0, 1]);
      return await status(job, args);
  }
  throw new TypeError(`Cannot run "${verb}": declared but not handled`);
}
