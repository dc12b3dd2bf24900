/**
 * `om mosctl`: the openMosix main configuration utility. Sets this node's admin flags and tuning
 * in admin/ (om's state tree, or /proc/hpc/admin on an openMosix kernel) and reads every node's
 * figures from nodes/<id>/, with the original verbs and spellings (HOWTO table 8-6).
 *
 * Every verb is one row of VERBS: its name and help (the declaration, so the help text and the
 * shell completions), the numbers of arguments it takes, whether it prints something to read
 * (and so takes --json), and what it does. run() finds the row and calls it; the reading and
 * writing are lib/views/'s and lib/state/admin.ts's, and this file parses and prints.
 */
import {
  type AdminRequest,
  setFlag,
  writeAdmin,
  writeDecay,
  writeRequest,
} from "../lib/state/admin.ts";
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { DASH_SPELLINGS, FLAG_VERBS } from "../lib/views/flags.ts";
import { isUp, upFigures } from "../lib/views/figures.ts";
import { readStatus, renderStatus, statusJson } from "../lib/views/status.ts";
import { SYSTEM_RESOLVER } from "../lib/views/systemresolver.ts";
import { requireSelf, selfId } from "../lib/views/thisnode.ts";
import {
  DECAY_INTERVAL_RANGE,
  DECAY_RATE_RANGE,
  formatYardstick,
  ownSpeed,
  PROCESSOR_TYPES,
  readDecay,
  readOverheads,
  readYardstick,
  SPEED_RANGE,
  writeYardstick,
  type Yardstick,
  yardstickOf,
} from "../lib/views/tuning.ts";
import {
  type HostResolver,
  type NodeQuery,
  parseNodeId,
  parseNodeQuery,
  whoisView,
} from "../lib/views/whois.ts";
import { readMap, resolveStatePaths, type StatePaths } from "../lib/state/tree.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";
import type { SweepReport } from "../lib/balance/balancer.ts";

/** One run: where the state is, who to talk to, whether to print JSON, how to look up names. */
interface Job {
  readonly paths: StatePaths;
  readonly ctx: Context;
  readonly json: boolean;
  readonly resolver: HostResolver;
}

/** One verb of mosctl, the one place that says what it is and what it does. */
interface Verb {
  readonly name: string;
  /** Its line in the help and in the shells' completions. */
  readonly help: string;
  /** The numbers of arguments it takes. */
  readonly args: readonly number[];
  /** It prints something to read, and so takes --json: that printed as one JSON object. */
  readonly json: boolean;
  /** Does it; returns the exit code (failures throw). */
  readonly run: (job: Job, args: readonly string[]) => Promise<number>;
}

/** Prints the text, or with --json the JSON form, of what a verb shows. */
function print(job: Job, text: string, json: unknown): void {
  job.ctx.out(job.json ? JSON.stringify(json) + "\n" : text);
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

/** The node an optional ID argument names: that one, or this node. */
async function nodeOf(job: Job, args: readonly string[]): Promise<number> {
  return args.length ? nodeIdArg(args[0]) : await selfId(job.paths);
}

/** An on/off verb of FLAG_VERBS: sets its flag, or says it is so already. */
function onOff(name: string): Verb["run"] {
  const flag = FLAG_VERBS[name];
  if (flag === undefined) throw new TypeError(`Cannot declare "${name}": not an on/off verb`);
  return async (job) => {
    if (!await setFlag(job.paths, flag.file, flag.on)) job.ctx.out(`${flag.already}\n`);
    return 0;
  };
}

/** getload, getmem, getfree, getutil: the figure `key` of nodes/<ID>/, called `what`. */
function figure(key: "load" | "mem" | "rmem" | "util", what: string): Verb["run"] {
  return async (job, args) => {
    const id = await nodeOf(job, args);
    const value = (await upFigures(job.paths.nodes, id, what))[key];
    print(job, `${value}\n`, { id, [key]: value });
    return 0;
  };
}

/**
 * expel (with block) or bring (with lstay): the files, then om discover does it (`node.expel`,
 * `node.bring` on the local socket) and replies when done. The kernel acts on the files itself.
 */
async function request(job: Job, name: AdminRequest): Promise<number> {
  await writeRequest(job.paths, name);
  if (job.paths.backend === "kernel") return 0;
  // Loaded here only: every other verb starts without the channel's code.
  const { connectLocal, localFailure } = await import("../lib/jobs/localauth.ts");
  let client;
  try {
    client = await connectLocal(job.paths.root, { timeoutMs: 5000 });
  } catch (error) {
    job.ctx.err(`mosctl: ${localFailure(error, job.paths.root)}\n`);
    return 1;
  }
  try {
    const reply: SweepReport = JSON.parse(
      new TextDecoder().decode(
        await client.request(`node.${name}`, new Uint8Array(), { timeoutMs: 0 }),
      ),
    );
    if (job.json) job.ctx.out(JSON.stringify(reply) + "\n");
    for (const failed of reply.failed) {
      job.ctx.err(
        `mosctl: Cannot ${
          name === "expel" ? "send job" : "bring job"
        } ${failed.id} home: ${failed.error}\n`,
      );
    }
    return reply.failed.length ? 1 : 0;
  } catch (error) {
    job.ctx.err(`mosctl: ${name} failed: ${error instanceof Error ? error.message : error}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
  }
}

/** setyard's argument: a processor type, a node id or this; anything else is a usage mistake. */
async function yardstickArg(job: Job, arg: string): Promise<Yardstick> {
  if (arg === "this") return await yardstickOf(job.paths, "this");
  if (/^(\d+|0[xX][0-9a-fA-F]+)$/.test(arg)) return await yardstickOf(job.paths, nodeIdArg(arg));
  if (Object.hasOwn(PROCESSOR_TYPES, arg)) return { name: arg, speed: PROCESSOR_TYPES[arg] };
  throw new UsageError(
    `Cannot use "${arg}" as a yardstick: give a processor type ` +
      `(${Object.keys(PROCESSOR_TYPES).join(", ")}), a node id or this`,
  );
}

/** whois [ID|ADDRESS|HOST]. */
async function whoisVerb(job: Job, args: readonly string[]): Promise<number> {
  let asked: { text: string; query: NodeQuery } | undefined;
  if (args.length) {
    try {
      asked = { text: args[0], query: parseNodeQuery(args[0]) };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const { text, json } = await whoisView(job.paths, asked, {
    resolver: job.resolver,
    json: job.json,
  });
  print(job, text, json);
  return 0;
}

/** status [ID]: this node's or node ID's. */
async function status(job: Job, args: readonly string[]): Promise<number> {
  const state = await readMap(job.paths);
  const id = args.length ? nodeIdArg(args[0]) : requireSelf(job.paths, state).self;
  const view = await readStatus(job.paths, id, state);
  print(job, renderStatus(view), statusJson(view));
  return 0;
}

/** The verbs, in the order the help lists them. */
const VERBS: readonly Verb[] = [
  {
    name: "stay",
    help: "no automatic process migration (admin/stay 1)",
    args: [0],
    json: false,
    run: onOff("stay"),
  },
  {
    name: "nostay",
    help: "automatic process migration, the default (also -stay)",
    args: [0],
    json: false,
    run: onOff("nostay"),
  },
  {
    name: "lstay",
    help: "local processes stay here (admin/lstay 1)",
    args: [0],
    json: false,
    run: onOff("lstay"),
  },
  {
    name: "nolstay",
    help: "local processes may migrate (also -lstay)",
    args: [0],
    json: false,
    run: onOff("nolstay"),
  },
  {
    name: "block",
    help: "block the arrival of guest processes (admin/block 1)",
    args: [0],
    json: false,
    run: onOff("block"),
  },
  {
    name: "noblock",
    help: "allow the arrival of guest processes (also -block)",
    args: [0],
    json: false,
    run: onOff("noblock"),
  },
  {
    name: "quiet",
    help: "stop gathering load-balancing information (admin/quiet 1)",
    args: [0],
    json: false,
    run: onOff("quiet"),
  },
  {
    name: "noquiet",
    help: "gather load-balancing information (also -quiet)",
    args: [0],
    json: false,
    run: onOff("noquiet"),
  },
  {
    name: "nomfs",
    help: "disable MFS (admin/nomfs 1)",
    args: [0],
    json: false,
    run: onOff("nomfs"),
  },
  { name: "mfs", help: "enable MFS (admin/nomfs 0)", args: [0], json: false, run: onOff("mfs") },
  {
    name: "expel",
    help: "send guest jobs home, return when done; implies block",
    args: [0],
    json: false,
    run: (job) => request(job, "expel"),
  },
  {
    name: "bring",
    help: "bring this node's jobs home, return when done; implies lstay",
    args: [0],
    json: false,
    run: (job) => request(job, "bring"),
  },
  {
    name: "gettune",
    help: "show the overhead parameters (admin/overheads)",
    args: [0],
    json: true,
    run: async (job) => {
      const tune = await readOverheads(job.paths);
      print(job, `${tune.overheads}\n`, tune);
      return 0;
    },
  },
  {
    name: "getyard",
    help: "show the yardstick: NAME SPEED",
    args: [0],
    json: true,
    run: async (job) => {
      const yardstick = await readYardstick(job.paths);
      print(job, `${formatYardstick(yardstick)}\n`, {
        yardstick: yardstick.name,
        speed: yardstick.speed,
      });
      return 0;
    },
  },
  {
    name: "setyard",
    help: "set the yardstick: PIII-1000, node ID's speed, or this node's",
    args: [1],
    json: false,
    run: async (job, [arg]) => {
      await writeYardstick(job.paths, await yardstickArg(job, arg));
      return 0;
    },
  },
  {
    name: "getdecay",
    help: "show the decay parameters: INTERVAL SLOW FAST",
    args: [0],
    json: true,
    run: async (job) => {
      const { interval, slow, fast } = await readDecay(job.paths);
      print(job, `${interval} ${slow} ${fast}\n`, { interval, slow, fast });
      return 0;
    },
  },
  {
    name: "setdecay",
    help: "set the decay interval in seconds [and slow and fast, per mille]",
    args: [1, 3],
    json: false,
    run: async (job, args) => {
      const interval = numberArg(args[0], "the decay interval (seconds)", DECAY_INTERVAL_RANGE);
      const [slow, fast] = args.slice(1).map((arg, i) =>
        numberArg(arg, `the ${i === 0 ? "slow" : "fast"} decay (per mille)`, DECAY_RATE_RANGE)
      );
      await writeDecay(job.paths, { interval, slow, fast });
      return 0;
    },
  },
  {
    name: "setspeed",
    help: "set this node's speed, 1 to 1000000 (10000 = PIII at 1 GHz)",
    args: [1],
    json: false,
    run: async (job, [arg]) => {
      await writeAdmin(job.paths, "speed", String(numberArg(arg, "the speed", SPEED_RANGE)));
      return 0;
    },
  },
  {
    name: "getspeed",
    help: "show the speed of node ID (default: this node)",
    args: [0, 1],
    json: true,
    run: async (job, args) => {
      const id = args.length ? nodeIdArg(args[0]) : undefined;
      const answer = id === undefined
        ? await ownSpeed(job.paths)
        : { id, speed: (await upFigures(job.paths.nodes, id, "speed")).speed };
      print(job, `${answer.speed}\n`, answer);
      return 0;
    },
  },
  {
    name: "getload",
    help: "show the load of node ID (100 = one busy PIII at 1 GHz)",
    args: [0, 1],
    json: true,
    run: figure("load", "load"),
  },
  {
    name: "getmem",
    help: "show the available memory of node ID, in bytes",
    args: [0, 1],
    json: true,
    run: figure("mem", "available memory"),
  },
  {
    name: "getfree",
    help: "show the free memory of node ID, in bytes",
    args: [0, 1],
    json: true,
    run: figure("rmem", "free memory"),
  },
  {
    name: "getutil",
    help: "show the utilisation of node ID, in percent",
    args: [0, 1],
    json: true,
    run: figure("util", "utilisation"),
  },
  {
    name: "isup",
    help: "yes and exit 0 when node ID is up (in the map, not reported down), else no, exit 1",
    args: [0, 1],
    json: true,
    run: async (job, args) => {
      const id = await nodeOf(job, args);
      const up = await isUp(job.paths.nodes, id, (await readMap(job.paths))?.map);
      print(job, up ? "yes\n" : "no\n", { id, up });
      return up ? 0 : 1;
    },
  },
  {
    name: "whois",
    help: "node id <-> address <-> host name; alone: this node",
    args: [0, 1],
    json: true,
    run: whoisVerb,
  },
  {
    name: "status",
    help: "this node's flags and figures and the cluster's (or node ID's)",
    args: [0, 1],
    json: true,
    run: status,
  },
];

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
  verbs: VERBS.map(({ name, help }) => ({ name, help })),
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

/** Finds the verb (a word, or a dash spelling) and its arguments. */
function verbOf(parsed: Parsed): { verb: Verb; args: string[] } {
  const dashed = DASH_SPELLINGS.filter((d) => parsed.options[d.name] === true);
  if (dashed.length > 1 || (dashed.length === 1 && parsed.args.length > 0)) {
    const given = [...dashed.map((d) => d.flag), ...parsed.args.slice(0, 1)];
    throw new UsageError(`Cannot use ${given.join(" and ")} together: give one command`);
  }
  const [name, ...args] = dashed.length === 1 ? [dashed[0].verb] : parsed.args;
  if (name === undefined) {
    throw new UsageError("Cannot tell what to do: give a command such as status");
  }
  const verb = VERBS.find((v) => v.name === name);
  if (!verb) throw new UsageError(`Cannot run "${name}": no such mosctl command`);
  return { verb, args };
}

/** Checks the number of arguments of a verb. */
function expectArgs(verb: Verb, args: readonly string[]): void {
  const counts = verb.args;
  if (counts.includes(args.length)) return;
  if (args.length > Math.max(...counts)) {
    const allowed = Math.max(...counts) === 0 ? "takes no arguments" : "takes fewer arguments";
    throw new UsageError(`Cannot use "${args[Math.max(...counts)]}": ${verb.name} ${allowed}`);
  }
  const needs = counts.filter((c) => c > 0).join(" or ");
  throw new UsageError(
    `Cannot run ${verb.name}: it needs ${needs} argument${Math.max(...counts) === 1 ? "" : "s"}`,
  );
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
  if (json && !verb.json) {
    throw new UsageError(`Cannot use --json with ${verb.name}: it prints nothing to read`);
  }
  const settings = await loadSettings({
    root: parsed.options.root as string | undefined,
    alpha: parsed.options.alpha === true ? true : undefined,
  }, ctx.env);
  const paths = resolveStatePaths(settings);
  expectArgs(verb, args);
  return await verb.run({ paths, ctx, json, resolver: options.resolver ?? SYSTEM_RESOLVER }, args);
}
