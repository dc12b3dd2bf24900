/**
 * The local processes as Linux shows them in `/proc/<pid>/{stat,status,cmdline}`: pure parsers of
 * each file (om's one `stat` parser), readers over a proc directory (tests point them at a fake
 * tree), and the processes below one (`descendants`, for what a migration continues or kills).
 * `om ps` builds its rows from these; where a process runs (the NODE column) is not a /proc fact
 * and is added by the caller.
 */
import { exists } from "./fs.ts";

/** Clock ticks per second of the times in `stat`: USER_HZ, 100 on every Linux architecture. */
export const CLOCK_TICKS = 100;

/** The fields of `/proc/<pid>/stat` that ps shows or selects by (proc(5) numbers them). */
export interface ProcStat {
  /** Field 1. */
  readonly pid: number;
  /** Field 2: the executable's name, at most 15 bytes, as the kernel keeps it. */
  readonly comm: string;
  /** Field 3: R running, S sleeping, D disk wait, Z zombie, T stopped, t traced, I idle, X dead. */
  readonly state: string;
  /** Field 4. */
  readonly ppid: number;
  /** Field 5: process group. */
  readonly pgrp: number;
  /** Field 6: session id (the session leader's pid). */
  readonly session: number;
  /** Field 7: the controlling terminal's device number; 0 = none. */
  readonly ttyNr: number;
  /** Field 8: the terminal's foreground process group; -1 = none. */
  readonly tpgid: number;
  /** Fields 14 + 15: user and system time, in clock ticks. */
  readonly cpuTicks: number;
  /** Field 19: -20 (favoured) to 19. */
  readonly nice: number;
  /** Field 20. */
  readonly threads: number;
  /**
   * Field 22: when the process started, in clock ticks since boot. With the pid, it tells a
   * process from a later one that reuses the pid. Every kernel writes it; absent only from a line
   * cut short before it.
   */
  readonly startTime?: number;
}

/** Everything ps knows about one local process. */
export interface ProcessInfo extends ProcStat {
  /** Effective user id (the second number of `Uid:` in status). */
  readonly uid: number;
  /** The command line; empty for kernel threads and zombies. */
  readonly argv: readonly string[];
}

/** The number of fields after `(comm)` that parseStat needs: fields 3 to 20. */
const FIELDS_AFTER_COMM = 18;
/** Field 22 (the start time) is the 20th after `(comm)`. */
const START_TIME_AFTER_COMM = 20;

/**
 * Parses one `/proc/<pid>/stat` line. The name in parentheses may itself hold spaces and
 * parentheses (`(my (odd) job)`), so it runs from the first `(` to the LAST `)`. Throws a
 * SyntaxError naming the byte offset where the line stops making sense.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) {
    throw new SyntaxError(`Cannot parse stat line "${text.slice(0, 40)}": no "(name)" at byte 0`);
  }
  const pidText = text.slice(0, open).trim();
  if (!/^\d+$/.test(pidText)) {
    throw new SyntaxError(`Cannot parse stat line "${text.slice(0, 40)}": no pid at byte 0`);
  }
  const rest = text.slice(close + 1).trim().split(/\s+/);
  if (rest.length < FIELDS_AFTER_COMM) {
    throw new SyntaxError(
      `Cannot parse stat line "${text.slice(0, 40)}": ${rest.length} fields after the name ` +
        `at byte ${close + 1}, need ${FIELDS_AFTER_COMM}`,
    );
  }
  /** Field `n` (proc(5) numbering, 3 onwards) as an integer. */
  const field = (n: number): number => {
    const raw = rest[n - 3];
    if (!/^-?\d+$/.test(raw)) {
      throw new SyntaxError(`Cannot parse stat line "${text.slice(0, 40)}": field ${n} "${raw}"`);
    }
    return Number(raw);
  };
  return {
    pid: Number(pidText),
    comm: text.slice(open + 1, close),
    state: rest[0],
    ppid: field(4),
    pgrp: field(5),
    session: field(6),
    ttyNr: field(7),
    tpgid: field(8),
    cpuTicks: field(14) + field(15),
    nice: field(19),
    threads: field(20),
    ...(rest.length >= START_TIME_AFTER_COMM ? { startTime: field(22) } : {}),
  };
}

/**
 * Reads and parses `/proc/<pid>/stat` of one process (`procDir` is the proc directory, for tests).
 * Throws what reading throws (NotFound when there is no such process) and parseStat's SyntaxError.
 */
export async function readStat(pid: number, procDir = "/proc"): Promise<ProcStat> {
  return parseStat(await Deno.readTextFile(`${procDir}/${pid}/stat`));
}

/** Splits `/proc/<pid>/cmdline` (arguments ended by NUL bytes) into the argument list. */
export function parseCmdline(text: string): string[] {
  if (text === "") return [];
  const args = text.split("\0");
  if (args[args.length - 1] === "") args.pop();
  return args;
}

/** The effective uid from `/proc/<pid>/status` (`Uid: real effective saved fs`). */
export function parseStatusUid(text: string): number {
  const lines = text.split("\n");
  const index = lines.findIndex((l) => l.startsWith("Uid:"));
  const ids = index < 0 ? [] : lines[index].slice(4).trim().split(/\s+/);
  if (ids.length < 2 || !/^\d+$/.test(ids[1])) {
    throw new SyntaxError(`Cannot parse status: no "Uid:" line with an effective uid`);
  }
  return Number(ids[1]);
}

/**
 * A terminal's name from its device number as ps prints it: `pts/N` (majors 136-143),
 * `ttyN` (major 4 below 64), `ttySN` (major 4 from 64), `console` (5:1), `?` for none;
 * any other device as `MAJOR:MINOR`.
 */
export function decodeTty(ttyNr: number): string {
  if (ttyNr === 0) return "?";
  const major = (ttyNr >>> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >>> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return minor < 64 ? `tty${minor}` : `ttyS${minor - 64}`;
  if (major === 5 && minor === 1) return "console";
  return `${major}:${minor}`;
}

/**
 * ps's STAT: the state letter, then `<` (nice below 0) or `N` (above 0), `s` session leader,
 * `l` several threads, `+` in its terminal's foreground process group.
 */
export function statFlags(stat: ProcStat): string {
  let flags = stat.state;
  if (stat.nice < 0) flags += "<";
  else if (stat.nice > 0) flags += "N";
  if (stat.session === stat.pid) flags += "s";
  if (stat.threads > 1) flags += "l";
  if (stat.tpgid >= 0 && stat.tpgid === stat.pgrp) flags += "+";
  return flags;
}

/** The numeric entries of a proc directory: every process's pid, ascending. */
export async function listPids(procDir: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir(procDir)) {
    if (/^\d+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  return pids.sort((a, b) => a - b);
}

/**
 * Reads one process; undefined when it does not exist (or ended while being read, which
 * /proc reports with a variety of errors).
 */
export async function readProcess(procDir: string, pid: number): Promise<ProcessInfo | undefined> {
  const dir = `${procDir}/${pid}`;
  try {
    const [stat, status, cmdline] = await Promise.all([
      Deno.readTextFile(`${dir}/stat`),
      Deno.readTextFile(`${dir}/status`),
      Deno.readTextFile(`${dir}/cmdline`),
    ]);
    return { ...parseStat(stat), uid: parseStatusUid(status), argv: parseCmdline(cmdline) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || !(await exists(dir))) return undefined;
    throw error;
  }
}

/** How many processes are read at once (3 files each, well below the usual 1024 open files). */
const READ_BATCH = 64;

/** Reads the given processes (default: all), ascending by pid, skipping those that are gone. */
export async function readProcesses(
  procDir: string,
  options: { pids?: readonly number[] } = {},
): Promise<ProcessInfo[]> {
  const pids = options.pids
    ? [...new Set(options.pids)].sort((a, b) => a - b)
    : await listPids(procDir);
  const infos: ProcessInfo[] = [];
  // In batches: three open files per process, and a busy host has thousands of processes.
  for (let i = 0; i < pids.length; i += READ_BATCH) {
    const batch = pids.slice(i, i + READ_BATCH);
    for (const info of await Promise.all(batch.map((pid) => readProcess(procDir, pid)))) {
      if (info) infos.push(info);
    }
  }
  return infos;
}

/**
 * The processes below `pid`: its children, theirs, and so on, parents before their children,
 * found through each task's `task/<tid>/children` (a child of any thread counts). Processes that
 * end while they are read are left out; a process forked meanwhile may be missed.
 */
export async function descendants(pid: number, procDir = "/proc"): Promise<number[]> {
  const found: number[] = [];
  const seen = new Set([pid]);
  for (let i = -1; i < found.length; i++) {
    const parent = i < 0 ? pid : found[i];
    let tids: string[] = [];
    try {
      for await (const entry of Deno.readDir(`${procDir}/${parent}/task`)) tids.push(entry.name);
    } catch { /* gone */ }
    tids = tids.filter((tid) => /^\d+$/.test(tid));
    for (const tid of tids) {
      const text = await Deno.readTextFile(`${procDir}/${parent}/task/${tid}/children`).catch(
        () => "",
      );
      for (const child of text.split(/\s+/).filter((word) => /^\d+$/.test(word))) {
        const number = Number(child);
        if (!seen.has(number)) {
          seen.add(number);
          found.push(number);
        }
      }
    }
  }
  return found;
}

/**
 * What a dump of `pid` and the processes below it will hold of their memory, in bytes, by each
 * process's PID in its innermost PID namespace (the last of `NSpid`, the id CRIU names its images
 * by): the anonymous memory resident (`RssAnon`) and swapped out (`VmSwap`) of
 * `/proc/<pid>/status`. An estimate, read before the freeze; processes gone meanwhile are left out.
 */
export async function privateMemory(
  pid: number,
  procDir = "/proc",
): Promise<Record<string, number>> {
  const bytes: Record<string, number> = {};
  for (const process of [pid, ...await descendants(pid, procDir)]) {
    const status = await Deno.readTextFile(`${procDir}/${process}/status`).catch(() => "");
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    const id = /^NSpid:\s*(.*)$/m.exec(status)?.[1].trim().split(/\s+/).at(-1);
    if (id && /^\d+$/.test(id)) bytes[id] = (kb("RssAnon") + kb("VmSwap")) * 1024;
  }
  return bytes;
}
