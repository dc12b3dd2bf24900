/**
 * Discovery benchmark on a real virtual cluster (root: network namespaces and cgroups). For each
 * cluster size N and each round, a fresh lab of N nodes is made and three figures are taken:
 *
 * - floor: N `om discover --help` started at once inside the N nodes (namespace and cgroups,
 *   as the daemons are), from the last spawn until all have exited. It is what N processes
 *   loading the daemon's code cost on this machine at this moment, protocol aside.
 * - convergence: the N daemons are started one after another as fast as possible, with the
 *   default intervals; from the return of the last start until every node's map holds all N
 *   node ids (maps polled every 5 ms). Compared with the floor as a ratio.
 * - leave: SIGTERM to one daemon (never node 1); from the signal until no other node's map
 *   holds it.
 *
 * The lab is always removed. Figures are medians over the rounds; the results go to
 * bench/results/discover-<timestamp>.json with every round and the daemons' counters.
 *
 *   deno run -A --unstable-net bench/discover.ts [N...] [--rounds 3] [--lab-dir DIR]
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { decodeConfig } from "../lib/state/hpcmap.ts";
import { nodeIdOf } from "../lib/base/ipv4.ts";
import { planLab } from "../lib/lab/plan.ts";
import { findNode, type Lab, labNodeIds, nodeStatePaths } from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
import { createLab } from "../lib/lab/create.ts";
import { destroyLab } from "../lib/lab/destroy.ts";
import { isAlive, startDaemon, stopDaemon } from "../lib/lab/daemons.ts";
import { mapNodeIds } from "../lib/lab/maps.ts";
import { omCommand } from "../lib/base/selfexec.ts";
import {
  benchMain,
  goalLine,
  labParent,
  machine,
  median,
  ms,
  ratio,
  renderTable,
  saveResults,
} from "./report.ts";

/** Cluster sizes measured unless others are given. */
export const DEFAULT_SIZES = [8, 16, 32] as const;
/** The size and time of the convergence goal: all maps complete this soon after the last start. */
export const CONVERGE_GOAL = { nodes: 32, ms: 1000 } as const;
/** The leave goal: gone from every other map this soon after SIGTERM. */
export const LEAVE_GOAL_MS = 200;
/** How often the maps are read. */
const POLL_MS = 5;
/** Giving up on a convergence or a leave after this long. */
const WAIT_LIMIT_MS = 20_000;

/** The daemons' counters, summed over the nodes (from each `$OM_ROOT/omdiscd.stats`). */
export interface CounterSums {
  /** Nodes whose counters could be read. */
  nodes: number;
  received: number;
  accepted: number;
  sent: number;
  sendErrors: number;
  dropped: Record<string, number>;
  joined: number;
  left: number;
  conflicts: number;
  /** Least and most datagrams one node received. */
  receivedMin: number;
  receivedMax: number;
}

/** A node whose map never became complete, and what it had to say. */
export interface StuckNode {
  readonly index: number;
  /** The nodes (by index) missing from its map at the end. */
  readonly missing: number[];
  /** Its `omdiscd.stats`, as the daemon last wrote it. */
  readonly stats?: unknown;
  /** The end of its discover.log. */
  readonly logTail: string[];
}

/** One round of one size. */
export interface RoundResult {
  readonly nodes: number;
  readonly round: number;
  /** The host's load averages when the round began: other work on the machine skews it. */
  readonly loadavg: number[];
  readonly floorMs: number;
  /** CPU time (user and system) of one node's floor process, mean over the nodes. */
  floorCpuMs?: number;
  /** CPU time of one daemon from its start until every map was complete, mean over the nodes. */
  daemonCpuMs?: number;
  /** From the first startDaemon call to the return of the last. */
  startSpreadMs?: number;
  /** From the last start until every map held all N ids; absent when that never happened. */
  convergeMs?: number;
  /** CPU time this benchmark spent reading the maps meanwhile: it competes with the daemons. */
  pollCpuMs?: number;
  /** When each node's map was first complete, from the last start, ascending. */
  completeMs?: number[];
  leaver?: number;
  /** From SIGTERM until no other map held the leaver; absent when not measured. */
  leaveMs?: number;
  /** Why a figure is missing. */
  failure?: string;
  /** On a failed convergence: what the first stuck nodes saw, for the results file. */
  stuck?: StuckNode[];
  counters?: CounterSums;
}

/** One size's medians over its rounds. */
export interface SizeSummary {
  readonly nodes: number;
  readonly rounds: number;
  readonly floorMs: number;
  readonly floorCpuMs?: number;
  readonly daemonCpuMs?: number;
  readonly convergeMs?: number;
  readonly ratio?: number;
  readonly leaveMs?: number;
  /** Worst rounds, for the goal lines. */
  readonly convergeWorstMs?: number;
  readonly leaveWorstMs?: number;
  readonly failedRounds: number;
}

/** What the benchmark measured. */
export interface DiscoverResults {
  readonly benchmark: "discover";
  readonly date: string;
  readonly machine: Record<string, unknown>;
  readonly rounds: RoundResult[];
  readonly sizes: SizeSummary[];
  readonly goals: {
    readonly converge?: { readonly nodes: number; readonly limitMs: number; readonly met: boolean };
    readonly leave: { readonly limitMs: number; readonly met: boolean };
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** N processes loading the daemon's code at once in the N nodes: last spawn to last exit. */
async function measureFloor(lab: Lab): Promise<number> {
  const argv = omCommand(["discover", "--help"]);
  const children = lab.record.nodes.map((node) =>
    execInNode(lab, node.index, argv, { stdin: "null", stdout: "null", stderr: "piped" })
  );
  const lastSpawn = performance.now();
  const outputs = await Promise.all(children.map((child) => child.output()));
  const elapsed = performance.now() - lastSpawn;
  const failed = outputs.findIndex((output) => output.code !== 0);
  if (failed >= 0) {
    throw new Error(
      `Cannot measure the floor: node ${lab.record.nodes[failed].index} exited ${
        outputs[failed].code
      }: ${new TextDecoder().decode(outputs[failed].stderr).trim()}`,
    );
  }
  return elapsed;
}

/**
 * The node ids in each node's map, by node index; undefined while a node has none. Reads only
 * admin/config, synchronously: every 5 ms for up to 250 nodes, the benchmark's own reading
 * competes with the daemons for the CPU, and the asynchronous readNodeMap (two files through
 * Deno's thread pool, per node) cost several times more.
 */
function mapReader(lab: Lab): (index: number) => number[] | undefined {
  const configs = new Map(
    lab.record.nodes.map((node) => [node.index, nodeStatePaths(lab, node.index).config]),
  );
  return (index) => {
    try {
      return mapNodeIds(decodeConfig(Deno.readFileSync(configs.get(index)!)));
    } catch {
      return undefined; // not written yet (or caught between two writes of another version)
    }
  };
}

/**
 * Reads the maps of `nodes` every POLL_MS until `done` holds for each, and returns when each
 * first did (ms after `since`). A node is read until it is done, then once more at the end with
 * the others, so the answer is a moment at which all of them held. On time-out, `stuck` has
 * what the nodes not done last held.
 */
async function pollMaps(
  nodes: readonly number[],
  read: (index: number) => number[] | undefined,
  done: (ids: readonly number[] | undefined) => boolean,
  since: number,
): Promise<{ at: Map<number, number>; stuck?: Map<number, number[] | undefined> }> {
  const at = new Map<number, number>();
  const last = new Map<number, number[] | undefined>();
  while (performance.now() - since < WAIT_LIMIT_MS) {
    const pending = nodes.filter((index) => !at.has(index));
    if (pending.length === 0) {
      // All were done at some point: check they still are, together.
      const undone = nodes.filter((index) => !done(read(index)));
      if (undone.length === 0) return { at };
      for (const index of undone) at.delete(index);
      continue;
    }
    for (const index of pending) last.set(index, read(index));
    const now = performance.now() - since;
    for (const index of pending) if (done(last.get(index))) at.set(index, now);
    if (at.size < nodes.length) await sleep(POLL_MS);
  }
  const stuck = new Map([...last].filter(([index]) => !at.has(index)));
  return { at, stuck };
}

/**
 * The CPU time the nodes' processes used so far, mean per node, from each node's cpuacct group
 * (nanoseconds in cpuacct.usage); undefined when there is no cpuacct hierarchy.
 */
async function meanNodeCpuMs(lab: Lab): Promise<number | undefined> {
  let total = 0;
  for (const node of lab.record.nodes) {
    if (!node.cgroups.cpuacct) return undefined;
    total += Number(await Deno.readTextFile(`${node.cgroups.cpuacct}/cpuacct.usage`)) / 1e6;
  }
  return total / lab.record.nodes.length;
}

async function readCounters(lab: Lab): Promise<CounterSums> {
  const sums: CounterSums = {
    nodes: 0,
    received: 0,
    accepted: 0,
    sent: 0,
    sendErrors: 0,
    dropped: {},
    joined: 0,
    left: 0,
    conflicts: 0,
    receivedMin: Infinity,
    receivedMax: 0,
  };
  for (const node of lab.record.nodes) {
    let stats;
    try {
      stats = JSON.parse(await Deno.readTextFile(`${node.root}/omdiscd.stats`));
    } catch {
      continue;
    }
    sums.nodes++;
    for (const key of ["received", "accepted", "sent", "sendErrors", "joined", "left"] as const) {
      sums[key] += Number(stats[key] ?? 0);
    }
    sums.conflicts += Number(stats.conflicts ?? 0);
    for (const [reason, count] of Object.entries(stats.dropped ?? {})) {
      sums.dropped[reason] = (sums.dropped[reason] ?? 0) + Number(count);
    }
    sums.receivedMin = Math.min(sums.receivedMin, Number(stats.received ?? 0));
    sums.receivedMax = Math.max(sums.receivedMax, Number(stats.received ?? 0));
  }
  if (sums.nodes === 0) sums.receivedMin = 0;
  return sums;
}

/** "node 5 lacks 17, node 9 has no map, ..." */
function describeStuck(lab: Lab, stuck: Map<number, number[] | undefined>): string {
  const nodes = [...stuck];
  return nodes.slice(0, 6).map(([index, held]) =>
    held ? `node ${index} lacks ${missingNodes(lab, held).join(" ")}` : `node ${index} has no map`
  ).join(", ") + (nodes.length > 6 ? `, ... (${nodes.length} nodes)` : "");
}

/** The lab's nodes (by index) whose ids are not in `held`. */
function missingNodes(lab: Lab, held: readonly number[]): number[] {
  const ids = labNodeIds(lab);
  return lab.record.nodes.filter((_, i) => !held.includes(ids[i])).map((node) => node.index);
}

/** What the first few stuck nodes saw: missing nodes, counters, the end of the log. */
async function stuckNodes(lab: Lab, stuck: Map<number, number[] | undefined>) {
  const found: StuckNode[] = [];
  for (const [index, held] of [...stuck].slice(0, 3)) {
    const node = findNode(lab, index);
    const text = (path: string) => Deno.readTextFile(path).catch(() => "");
    const stats = await text(`${node.root}/omdiscd.stats`);
    found.push({
      index,
      missing: held ? missingNodes(lab, held) : lab.record.nodes.map((n) => n.index),
      ...(stats ? { stats: JSON.parse(stats) } : {}),
      logTail: (await text(`${node.dir}/discover.log`)).trimEnd().split("\n").slice(-40),
    });
  }
  return found;
}

/** One round on a fresh lab of `size` nodes, made in `dir` and always removed. */
async function runRound(
  dir: string,
  size: number,
  round: number,
  current: { lab?: Lab },
): Promise<RoundResult> {
  const lab = await createLab({
    name: `bench-${Deno.pid}-${size}r${round}`,
    dir,
    nodes: planLab(size),
  });
  current.lab = lab;
  try {
    const result: RoundResult = {
      nodes: size,
      round,
      loadavg: Deno.loadavg(),
      floorMs: await measureFloor(lab),
    };
    const cpuBefore = await meanNodeCpuMs(lab);
    result.floorCpuMs = cpuBefore;
    const indices = lab.record.nodes.map((node) => node.index);
    const ids = labNodeIds(lab);

    const firstStart = performance.now();
    for (const index of indices) await startDaemon(lab, index);
    const lastStart = performance.now();
    result.startSpreadMs = lastStart - firstStart;
    const read = mapReader(lab);
    const complete = (held?: readonly number[]) => ids.every((id) => held?.includes(id));
    const pollCpu = process.cpuUsage();
    const converged = await pollMaps(indices, read, complete, lastStart);
    const pollUsage = process.cpuUsage(pollCpu);
    result.pollCpuMs = (pollUsage.user + pollUsage.system) / 1000;
    if (converged.stuck) {
      const dead = [];
      for (const index of indices) {
        const daemon = findNode(lab, index).daemon;
        if (daemon && !await isAlive(daemon)) dead.push(index);
      }
      result.failure = `not converged after ${WAIT_LIMIT_MS} ms: ${
        describeStuck(lab, converged.stuck)
      }${dead.length ? `; daemons dead: ${dead.join(", ")}` : ""}`;
      result.stuck = await stuckNodes(lab, converged.stuck);
    } else {
      const cpuAfter = await meanNodeCpuMs(lab);
      if (cpuBefore !== undefined && cpuAfter !== undefined) {
        result.daemonCpuMs = cpuAfter - cpuBefore;
      }
      result.completeMs = [...converged.at.values()].sort((a, b) => a - b);
      result.convergeMs = result.completeMs.at(-1);

      const leaver = indices.at(-1)!;
      const node = findNode(lab, leaver);
      const leaverId = nodeIdOf(node.nics[0].address);
      const others = indices.filter((index) => index !== leaver);
      result.leaver = leaver;
      const sent = performance.now();
      Deno.kill(node.daemon!.pid, "SIGTERM");
      const gone = await pollMaps(
        others,
        read,
        (held) => held !== undefined && !held.includes(leaverId),
        sent,
      );
      if (gone.stuck) {
        result.failure = `node ${leaver} still in maps after ${WAIT_LIMIT_MS} ms: ${
          [...gone.stuck.keys()].map((index) => `node ${index}`).join(", ")
        }`;
      } else {
        result.leaveMs = Math.max(...gone.at.values());
      }
      await stopDaemon(lab, leaver, { graceMs: 2000 });
    }
    // The daemons write their counters every 250 ms when they changed.
    await sleep(300);
    result.counters = await readCounters(lab);
    return result;
  } finally {
    current.lab = undefined;
    await destroyLab(lab, { graceMs: 2000 });
  }
}

function summarize(rounds: readonly RoundResult[], size: number): SizeSummary {
  const mine = rounds.filter((r) => r.nodes === size);
  const converges = mine.flatMap((r) => r.convergeMs === undefined ? [] : [r.convergeMs]);
  const leaves = mine.flatMap((r) => r.leaveMs === undefined ? [] : [r.leaveMs]);
  const floorMs = median(mine.map((r) => r.floorMs));
  const cpu = (pick: (r: RoundResult) => number | undefined) => {
    const values = mine.flatMap((r) => pick(r) === undefined ? [] : [pick(r)!]);
    return values.length ? median(values) : undefined;
  };
  const convergeMs = converges.length ? median(converges) : undefined;
  return {
    nodes: size,
    rounds: mine.length,
    floorMs,
    floorCpuMs: cpu((r) => r.floorCpuMs),
    daemonCpuMs: cpu((r) => r.daemonCpuMs),
    convergeMs,
    ratio: convergeMs === undefined ? undefined : convergeMs / floorMs,
    leaveMs: leaves.length ? median(leaves) : undefined,
    convergeWorstMs: converges.length ? Math.max(...converges) : undefined,
    leaveWorstMs: leaves.length ? Math.max(...leaves) : undefined,
    failedRounds: mine.filter((r) => r.failure !== undefined).length,
  };
}

function roundLine(r: RoundResult): string {
  const parts = [
    `N=${r.nodes} round ${r.round} (load ${r.loadavg[0].toFixed(1)}): floor ${ms(r.floorMs)} ms`,
  ];
  if (r.floorCpuMs !== undefined && r.daemonCpuMs !== undefined) {
    parts.push(`cpu/node floor ${ms(r.floorCpuMs)} ms, daemon ${ms(r.daemonCpuMs)} ms`);
  }
  if (r.startSpreadMs !== undefined) parts.push(`starts spread ${ms(r.startSpreadMs)} ms`);
  if (r.completeMs) {
    parts.push(
      `complete ${ms(r.completeMs[0])}..${ms(r.convergeMs)} ms after the last start ` +
        `(median node ${ms(median(r.completeMs))}; polling used ${ms(r.pollCpuMs)} ms cpu)`,
    );
  }
  if (r.leaveMs !== undefined) parts.push(`leave of node ${r.leaver} ${ms(r.leaveMs)} ms`);
  if (r.counters) {
    const c = r.counters;
    const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
    parts.push(
      `datagrams sent ${c.sent}, received ${c.received} (${c.receivedMin}..${c.receivedMax}` +
        ` per node), dropped ${dropped}, send errors ${c.sendErrors}` +
        (c.conflicts ? `, id conflicts ${c.conflicts}` : ""),
    );
  }
  if (r.failure) parts.push(`FAILED: ${r.failure}`);
  return parts.join("; ");
}

/** Runs the benchmark, prints the rounds, the table and the goal lines, returns the figures. */
export async function runDiscover(
  options: {
    sizes?: readonly number[];
    rounds?: number;
    /** Where the temporary lab directory is made (the nodes' state trees); default $TMPDIR. */
    labParent?: string;
    save?: boolean;
  } = {},
): Promise<DiscoverResults> {
  if (Deno.uid() !== 0) {
    throw new Error("Cannot run the discovery benchmark: it needs root (namespaces, cgroups)");
  }
  const sizes = options.sizes ?? DEFAULT_SIZES;
  const roundsPerSize = options.rounds ?? 3;
  const dir = await Deno.makeTempDir({
    prefix: "om-bench-lab-",
    ...((options.labParent ?? labParent()) ? { dir: options.labParent ?? labParent() } : {}),
  });
  const current: { lab?: Lab } = {};
  // Ctrl-C must not leave namespaces and cgroups behind.
  const interrupt = () => {
    const lab = current.lab;
    (lab ? destroyLab(lab, { graceMs: 500 }) : Promise.resolve())
      .finally(() => Deno.remove(dir, { recursive: true }).catch(() => {}))
      .finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", interrupt);
  const rounds: RoundResult[] = [];
  try {
    console.log(
      `discovery: ${sizes.join(", ")} nodes, ${roundsPerSize} rounds each, a fresh lab per round`,
    );
    for (const size of sizes) {
      for (let round = 1; round <= roundsPerSize; round++) {
        const result = await runRound(dir, size, round, current);
        rounds.push(result);
        console.log(roundLine(result));
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", interrupt);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }

  const summaries = sizes.map((size) => summarize(rounds, size));
  const goalSize = summaries.find((s) => s.nodes === CONVERGE_GOAL.nodes);
  const leaveMedians = summaries.map((s) => s.leaveMs);
  const leaveMet = leaveMedians.every((m) => m !== undefined && m <= LEAVE_GOAL_MS);
  const results: DiscoverResults = {
    benchmark: "discover",
    date: new Date().toISOString(),
    machine: machine(),
    rounds,
    sizes: summaries,
    goals: {
      ...(goalSize
        ? {
          converge: {
            nodes: CONVERGE_GOAL.nodes,
            limitMs: CONVERGE_GOAL.ms,
            met: goalSize.convergeMs !== undefined && goalSize.convergeMs <= CONVERGE_GOAL.ms,
          },
        }
        : {}),
      leave: { limitMs: LEAVE_GOAL_MS, met: leaveMet },
    },
  };

  console.log();
  console.log(renderTable(
    [
      "N",
      "floor ms",
      "converge ms",
      "x floor",
      "leave ms",
      "cpu/node floor",
      "cpu/node daemon",
      "failed",
    ],
    summaries.map((s) => [
      String(s.nodes),
      ms(s.floorMs),
      ms(s.convergeMs),
      ratio(s.ratio),
      ms(s.leaveMs),
      ms(s.floorCpuMs),
      ms(s.daemonCpuMs),
      `${s.failedRounds}/${s.rounds}`,
    ]),
  ));
  console.log(
    "(medians over the rounds; converge is from the return of the last daemon start; cpu/node\n" +
      " is the CPU time, user and system, of one node's processes: one `om discover --help`,\n" +
      " or its daemon from start to convergence)\n",
  );
  const convergeWhat =
    `${CONVERGE_GOAL.nodes} nodes complete within ${CONVERGE_GOAL.ms} ms of the last start`;
  if (goalSize) {
    console.log(goalLine(
      convergeWhat,
      results.goals.converge!.met,
      `median ${ms(goalSize.convergeMs)} ms, worst ${ms(goalSize.convergeWorstMs)} ms`,
    ));
  } else {
    console.log(`goal: ${convergeWhat}: not measured (no ${CONVERGE_GOAL.nodes}-node run)`);
  }
  const worstLeave = Math.max(...summaries.map((s) => s.leaveWorstMs ?? Infinity));
  const worstMedian = Math.max(...leaveMedians.map((m) => m ?? Infinity));
  console.log(goalLine(
    `leave everywhere within ${LEAVE_GOAL_MS} ms`,
    leaveMet,
    `worst median ${ms(worstMedian)} ms, worst round ${ms(worstLeave)} ms`,
  ));
  if (options.save ?? true) console.log(`results: ${await saveResults("discover", results)}`);
  return results;
}

/** Parses this benchmark's arguments: node counts, --rounds K, --lab-dir DIR. */
export function parseDiscoverArgs(
  args: readonly string[],
): { sizes?: number[]; rounds?: number; labParent?: string } {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { rounds: { type: "string" }, "lab-dir": { type: "string" } },
    allowPositionals: true,
  });
  const sizes = positionals.map((text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 2 || n > 250) {
      throw new RangeError(`Cannot use "${text}" as a cluster size: from 2 to 250 nodes`);
    }
    return n;
  });
  let rounds: number | undefined;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1) {
      throw new RangeError(`Cannot use "${values.rounds}" for --rounds: an integer of at least 1`);
    }
  }
  return {
    ...(sizes.length ? { sizes } : {}),
    ...(rounds !== undefined ? { rounds } : {}),
    ...(values["lab-dir"] !== undefined ? { labParent: values["lab-dir"] } : {}),
  };
}

if (import.meta.main) {
  await benchMain("bench/discover.ts", () => parseDiscoverArgs(Deno.args), runDiscover);
}
