/**
 * `om ps` (mps): processes with the node they run on, as the original mps printed them, or as
 * JSON. Both forms come from the same rows, so the table and the JSON never disagree.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import type { Context } from "../lib/cli/context.ts";
import {
  CLOCK_TICKS,
  decodeTty,
  type ProcessInfo,
  readProcesses,
  statFlags,
} from "../lib/base/procs.ts";
import { type JobPolicy, type JobRecord, readJobRecords } from "../lib/jobs/table.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("ps"),
  usage: ["om ps [--json] [-a|--all] [PID...]"],
  description:
    `Lists processes with the node each one runs on (NODE 0 = this node), under mps's header
  PID TTY NODE STAT TIME COMMAND
By default: your own processes that have a terminal, and om run's jobs, as ps does. -a lists every process; PIDs list
just those (whoever owns them), and om ps exits 1 when none of them exists. TIME is the CPU time
used so far (M:SS, or H:MM:SS from an hour on); STAT is ps's (R running, S sleeping, D disk wait,
Z zombie, T stopped, I idle; < high and N low priority, s session leader, l threads, + foreground).
The header is mps's exactly; a value wider than its column (pts/12) pushes its row along.
A job of om run is listed by its job PID (the PID its home node gave it, whichever node runs
it) with the node it runs on and its home node (from $OM_ROOT/jobs); with --json a job's row also
has its "policy" (lock, kind, decay: om run's options) and "migrations" (how often it moved). A
job that moved away is that one row: the copy it left here, stopped or dead until it is reaped,
is not listed again.`,
  options: [
    { name: "json", flags: ["--json"], help: "print the same rows as a JSON array" },
    {
      name: "all",
      flags: ["-a", "--all"],
      help: "every process, of every user, with or without a terminal",
    },
  ],
  args: [{ name: "PID...", help: "list just these processes", complete: "none" }],
  examples: [
    { command: "om ps", says: "your processes with a terminal, and the node each runs on" },
    { command: "mps -a", says: "every process on this node" },
    { command: "om ps --json 1 | jq '.[0].node'", says: "0: init runs here" },
  ],
};

/**
 * Where a process runs and which node it belongs to; openMosix numbered this node 0 in both.
 * Every process is local today; om's migrated jobs will be placed from their own records.
 */
export interface Placement {
  readonly node: number;
  readonly home: number;
  /** For a job of om run: its lock and hints, and how many times it moved. */
  readonly job?: Pick<JobRecord, "policy" | "migrations">;
}

/** A process of this node, running here. */
export const HERE: Placement = { node: 0, home: 0 };

/** One row of the listing; the `--json` form prints these objects as they are. */
export interface PsRow {
  readonly pid: number;
  readonly ppid: number;
  readonly uid: number;
  /** Where the process runs: 0 = this node, else the node id. */
  readonly node: number;
  /** The node the process belongs to: 0 = this node. */
  readonly home: number;
  /** Terminal name (`pts/0`, `tty1`) or `?`. */
  readonly tty: string;
  readonly stat: string;
  /** CPU time used so far, in seconds. */
  readonly time: number;
  /** The command line, or `[name]` when it has none (kernel threads, zombies). */
  readonly command: string;
  /** A job's lock and hints (om run's options); only on a job's row. */
  readonly policy?: JobPolicy;
  /** How many times a job moved; only on a job's row. */
  readonly migrations?: number;
}

/** Which processes a plain `om ps` shows: the user's own that have a terminal, or are jobs. */
export function defaultSelection(
  uid: number,
  jobs: ReadonlySet<number> = new Set(),
): (p: ProcessInfo) => boolean {
  return (p) => p.uid === uid && (p.ttyNr !== 0 || jobs.has(p.pid));
}

/** The states of a moved job's old copy: left stopped by the dump, then killed and not yet reaped. */
const OLD_COPY_STATES = new Set(["T", "t", "Z", "X"]);

/**
 * Where the jobs of this node's table run, as mps shows it: NODE and home are node ids, 0 meaning
 * this node (`self`). A local process that is a job's PID 1 gets its job's node and home; a job
 * of this home running elsewhere, and a guest running here for another home, get a row of their
 * own under the job's PID (the PID its home gave it).
 *
 * `oldCopy` tells the local process a move left behind: the job's record says it runs on another
 * node, yet its PID is still in /proc, stopped by the dump or killed and not yet reaped by its
 * parent (`[sh]`, `Zs`). The job's own row stands for the job; listing that process too would show
 * one job twice, at home and where it went. A later process that reuses the PID runs or sleeps,
 * and is listed as itself.
 */
export function jobPlacement(
  jobs: readonly JobRecord[],
  self = 0,
): {
  placement: (p: ProcessInfo) => Placement;
  elsewhere: PsRow[];
  oldCopy: (p: ProcessInfo) => boolean;
} {
  const byPid = new Map(jobs.map((j) => [j.pid, j]));
  const relative = (node: number) => (node === self ? 0 : node);
  const row = (j: JobRecord): PsRow => ({
    pid: j.pid,
    ppid: 0,
    uid: 0,
    node: relative(j.node),
    home: relative(j.home),
    tty: "?",
    stat: "-",
    time: 0,
    command: j.command.join(" "),
    policy: j.policy,
    migrations: j.migrations,
  });
  return {
    placement: (p) => {
      const job = byPid.get(p.pid);
      return job && job.node === job.home
        ? { node: 0, home: 0, job: { policy: job.policy, migrations: job.migrations } }
        : HERE;
    },
    elsewhere: jobs.filter((j) => j.node !== j.home).map(row),
    oldCopy: (p) => {
      const job = byPid.get(p.pid);
      return job !== undefined && job.node !== job.home && relative(job.node) !== 0 &&
        OLD_COPY_STATES.has(p.state);
    },
  };
}

/** Builds the rows; `placement` says where each process runs (default: here). */
export function psRows(
  processes: readonly ProcessInfo[],
  placement: (p: ProcessInfo) => Placement = () => HERE,
): PsRow[] {
  return processes.map((p) => {
    const { node, home, job } = placement(p);
    return {
      pid: p.pid,
      ppid: p.ppid,
      uid: p.uid,
      node,
      home,
      tty: decodeTty(p.ttyNr),
      stat: statFlags(p),
      time: p.cpuTicks / CLOCK_TICKS,
      command: p.argv.length > 0 ? p.argv.join(" ") : `[${p.comm}]`,
      ...(job ? { policy: job.policy, migrations: job.migrations } : {}),
    };
  });
}

/** CPU time as ps's TIME: M:SS below an hour, H:MM:SS from then on (whole seconds). */
export function formatCpuTime(seconds: number): string {
  const total = Math.floor(seconds);
  const s = String(total % 60).padStart(2, "0");
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes}:${s}`;
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${s}`;
}

/** mps's table; `width` (a terminal's columns) cuts long lines as ps does on a terminal. */
export function renderPs(rows: readonly PsRow[], options: { width?: number } = {}): string {
  const cells = rows.map((r) => [
    String(r.pid),
    r.tty,
    String(r.node),
    r.stat,
    formatCpuTime(r.time),
    // Control characters (a newline in an argument) would break the table.
    // deno-lint-ignore no-control-regex
    r.command.replace(/[\x00-\x1f\x7f]/g, "?"),
  ]);
  const labels = ["PID", "TTY", "NODE", "STAT", "TIME", "COMMAND"];
  // mps's widths, and its header exactly: a value wider than its column (pts/0 under TTY)
  // pushes the rest of its row along, as it did in mps, instead of widening every row.
  const widths = [5, 3, 4, 4, 4, 0];
  // PID, NODE and TIME are right-aligned, as ps aligns numbers.
  const right = [true, false, true, false, true, false];
  const line = (values: string[]) => {
    const text = values.map((v, i) =>
      i === values.length - 1 ? v : right[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])
    ).join(" ");
    return options.width !== undefined ? text.slice(0, options.width) : text;
  };
  return [line(labels), ...cells.map(line)].map((l) => l.trimEnd() + "\n").join("");
}

function parsePids(args: readonly string[]): number[] {
  return args.map((arg) => {
    if (!/^\d+$/.test(arg) || Number(arg) < 1) {
      throw new UsageError(`Cannot use "${arg}" as a PID: not a positive whole number`);
    }
    return Number(arg);
  });
}

function terminalWidth(): number | undefined {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return undefined;
  }
}

/** Lists the processes. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const pids = parsed.args.length > 0 ? parsePids(parsed.args) : undefined;
  const settings = await loadSettings({}, ctx.env);
  const processes = await readProcesses(settings.proc, { pids });
  const jobs = await readJobRecords(`${settings.root}/jobs`);
  const selected = pids || parsed.options.all
    ? processes
    : processes.filter(defaultSelection(Deno.uid() ?? -1, new Set(jobs.map((j) => j.pid))));
  const map = await readMap(resolveStatePaths(settings)).catch(() => undefined);
  const { placement, elsewhere, oldCopy } = jobPlacement(jobs, map?.self ?? 0);
  const rows = [
    ...psRows(selected.filter((p) => !oldCopy(p)), placement),
    ...elsewhere.filter((row) => !pids || pids.includes(row.pid)),
  ];
  if (parsed.options.json) {
    ctx.out(JSON.stringify(rows, null, 2) + "\n");
  } else {
    ctx.out(renderPs(rows, { width: ctx.isTerminal ? terminalWidth() : undefined }));
  }
  return pids && rows.length === 0 ? 1 : 0;
}
