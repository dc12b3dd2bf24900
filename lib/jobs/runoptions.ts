/**
 * mosrun's options (`om run`, the `mosrun` link and the runners nomig, runon, cpujob, ...): where
 * a job starts (`-h`, `-NODE`, `-jLIST`, `-F`), its lock (`-l`, `-L`, `-k`) and its hints (`-c`,
 * `-i`, `-n`, `-s`, `-f`). Pure: the caller says how om was invoked and what lock the caller has.
 *
 * Why a parser of its own: `-3` and `-j2-4,7` fit no declared flag, and options must end at the
 * first word that is not one, so that `om run sh -c 'echo hi'` passes `-c` to sh.
 */
import { UsageError } from "../cli/parser.ts";
import type { JobDecay, JobKind, JobPolicy } from "./table.ts";

/** Where a job is to start (job.run's `place`, PROTOCOL.md §10). */
export interface JobPlace {
  /** Candidate node ids; one that is up is drawn at random, the others tried if it fails. */
  readonly nodes: readonly number[];
  /** When no candidate works: run at home (true, mosrun -F) or fail (false). */
  readonly fallback: boolean;
}

/** What mosrun's options say. */
export interface RunOptions {
  /** The command and its arguments (empty only with help). */
  readonly args: string[];
  /** `--root DIR`, when given. */
  readonly root?: string;
  /** `--help` came before the command. */
  readonly help: boolean;
  readonly policy: JobPolicy;
  /** Undefined: start here (home). */
  readonly place?: JobPlace;
}

/** How the options are read. */
export interface RunParseOptions {
  /**
   * Invoked as `mosrun`: lock when a node was named or no decay option was given (mosrun's own
   * default). Otherwise (`om run`): lock only when a node was named (`-h`, `-NODE`, `-j`).
   */
  readonly mosrun?: boolean;
  /** The lock of the job `om run` runs in ($OM_JOB_LOCK); undefined outside a job. */
  readonly callerLock?: boolean;
  /**
   * Options a runner puts first (`runon 3` is `-3 -L`). With a preset, the words given on the
   * command line may only be `--root DIR`, `--help` and `--`: a runner is its preset.
   */
  readonly preset?: readonly string[];
}

/** Node ids, as the map has them. */
const MAX_NODE = 0xffff;

/**
 * Parses a `-j` list: node ids and ranges of ids, comma-separated (`2-4,7`). Returns the ids,
 * ascending, each once; throws UsageError naming the list.
 */
export function parseNodeList(text: string): number[] {
  const ids = new Set<number>();
  const bad = (why: string) =>
    new UsageError(`Cannot use node list "${text}": ${why} (ids 1-${MAX_NODE} and ranges, 2-4,7)`);
  if (text === "") throw bad("it is empty");
  for (const item of text.split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!match) throw bad(`"${item}" is not a node id or a range of ids`);
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (from < 1 || to > MAX_NODE) throw bad(`"${item}" is out of range`);
    if (to < from) throw bad(`"${item}" runs backwards`);
    for (let id = from; id <= to; id++) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/** Parses `-NODE`'s digits; throws UsageError. */
function nodeId(flag: string): number {
  const id = Number(flag.slice(1));
  if (id < 1 || id > MAX_NODE) {
    throw new UsageError(`Cannot use ${flag}: not a node id (1-${MAX_NODE})`);
  }
  return id;
}

/**
 * Parses mosrun's options and the command after them. Options end at `--` or at the first word
 * that is not an option; of `-h`/`-NODE`/`-j`, of `-l`/`-L`/`-k`, of `-c`/`-i` and of
 * `-n`/`-s`/`-f` the last one given counts. Throws UsageError.
 */
export function parseRunOptions(
  argv: readonly string[],
  options: RunParseOptions = {},
): RunOptions {
  let where: "home" | number[] | undefined;
  let fallback = false;
  let lock: "lock" | "unlock" | "keep" | undefined;
  let kind: JobKind | undefined;
  let decay: JobDecay | undefined;
  let root: string | undefined;
  let help = false;
  let args: string[] = [];

  const preset = options.preset ?? [];
  const words = [...preset, ...argv];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word === "--") {
      args = words.slice(i + 1);
      break;
    }
    if (word === "--help") {
      help = true;
      continue;
    }
    if (word === "--root" || word.startsWith("--root=")) {
      root = word === "--root" ? words[++i] : word.slice("--root=".length);
      if (root === undefined) {
        throw new UsageError("Cannot use --root: it needs DIR");
      }
      continue;
    }
    if (!word.startsWith("-") || word === "-") {
      args = words.slice(i);
      break;
    }
    if (options.preset !== undefined && i >= preset.length) {
      throw new UsageError(
        `Cannot use ${word}: this runner takes only --root (om run takes mosrun's options)`,
      );
    }
    if (/^-\d+$/.test(word)) {
      where = [nodeId(word)];
      continue;
    }
    if (word.startsWith("-j")) {
      const list = word === "-j" ? words[++i] : word.slice(2);
      if (list === undefined) throw new UsageError("Cannot use -j: it needs a node list, -j2-4,7");
      where = parseNodeList(list);
      continue;
    }
    switch (word) {
      case "-h":
        where = "home";
        break;
      case "-F":
        fallback = true;
        break;
      case "-l":
        lock = "unlock";
        break;
      case "-L":
        lock = "lock";
        break;
      case "-k":
        lock = "keep";
        break;
      case "-c":
        kind = "cpu";
        break;
      case "-i":
        kind = "io";
        break;
      case "-n":
        decay = "none";
        break;
      case "-s":
        decay = "slow";
        break;
      case "-f":
        decay = "fast";
        break;
      default:
        throw new UsageError(`Cannot use ${word}: unknown option (om run --help lists them)`);
    }
  }
  if (args.length === 0 && !help) throw new UsageError("Cannot run a job: no command given");

  const named = where !== undefined;
  const locked = lock === "lock"
    ? true
    : lock === "unlock"
    ? false
    : lock === "keep"
    ? options.callerLock ?? true
    : options.mosrun
    ? named || decay === undefined
    : named;
  const policy: JobPolicy = { lock: locked, ...(kind ? { kind } : {}), decay: decay ?? "slow" };
  return {
    args,
    help,
    policy,
    ...(root !== undefined ? { root } : {}),
    ...(Array.isArray(where) ? { place: { nodes: where, fallback } } : {}),
  };
}

/**
 * The lock of the job this process runs in, from the environment the deputy gives every job
 * (OM_JOB, OM_JOB_LOCK: PROTOCOL.md §10); undefined outside a job.
 */
export function callerLockOf(env: (name: string) => string | undefined): boolean | undefined {
  if (!env("OM_JOB")) return undefined;
  const lock = env("OM_JOB_LOCK");
  return lock === "0" ? false : lock === "1" ? true : undefined;
}
