/**
 * The runners: nomig, runhome, runon, cpujob, iojob, nodecay, slowdecay and fastdecay, each `om
 * run` with one preset of mosrun's options (openMosix shipped them as one-line scripts around
 * mosrun). One file for the eight, against the house's one command per file, because they are
 * one command: a preset and a help text each, and commands/run.ts's runJob.
 */
import { type CommandSpec, type Parsed, renderHelp, UsageError } from "../lib/cli/parser.ts";
import type { Context } from "../lib/cli/context.ts";
import { parseRunOptions } from "../lib/jobs/runoptions.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { type CommandModule, meta } from "./index.ts";
import { runJob } from "./run.ts";

/** One runner: its preset, and what its help says about it. */
interface Runner {
  /** mosrun's options it stands for; runon's depend on its NODE. */
  readonly preset: (node?: number) => string[];
  /** Whether it takes a NODE before the command (runon). */
  readonly node?: boolean;
  readonly description: string;
  readonly example: { readonly command: string; readonly says: string };
}

const RUNNERS: Readonly<Record<string, Runner>> = {
  nomig: {
    preset: () => ["-L"],
    description: "Runs COMMAND here, locked: it never migrates (om run -L).",
    example: { command: "nomig -- sh -c 'hostname; sleep 60'", says: "stays on this node" },
  },
  runhome: {
    preset: () => ["-h"],
    description: "Runs COMMAND at home (this node), locked there (om run -h).",
    example: { command: "runhome make install", says: "runs here and stays here" },
  },
  runon: {
    node: true,
    preset: (node) => [`-${node}`, "-L"],
    description:
      `Starts COMMAND on node NODE (a decimal id) at once and locks it there (om run -NODE -L).
Its output, input, signals and exit status still go through runon, here. When NODE is down,
blocks guests or cannot take the job, runon fails with 125 and nothing of COMMAND ran.`,
    example: { command: "runon 3 -- sh -c 'ip -4 -o addr'", says: "node 3's addresses" },
  },
  cpujob: {
    preset: () => ["-l", "-c"],
    description: "Runs COMMAND as an unlocked cpu-bound job (om run -l -c).",
    example: { command: "cpujob ./simulate 1000", says: "a job that may move, said to compute" },
  },
  iojob: {
    preset: () => ["-l", "-i"],
    description: "Runs COMMAND as an unlocked io-bound job (om run -l -i).",
    example: { command: "iojob rsync -a src/ dst/", says: "a job that may move, said to do I/O" },
  },
  nodecay: {
    preset: () => ["-l", "-n"],
    description: "Runs COMMAND unlocked, its load history never decaying (om run -l -n).",
    example: { command: "nodecay ./server", says: "a steady job that may move" },
  },
  slowdecay: {
    preset: () => ["-l", "-s"],
    description: "Runs COMMAND unlocked, its load history decaying slowly (om run -l -s).",
    example: { command: "slowdecay ./batch", says: "as a plain om run" },
  },
  fastdecay: {
    preset: () => ["-l", "-f"],
    description: "Runs COMMAND unlocked, its load history decaying fast (om run -l -f).",
    example: { command: "fastdecay ./bursty", says: "a job whose load comes and goes" },
  },
};

/** The runners' names, in the order of the command table. */
export const RUNNER_NAMES: readonly string[] = Object.keys(RUNNERS);

/** Splits runon's NODE from the rest of its words: the first word that is not --root's. */
function takeNode(argv: readonly string[]): { node: number; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === "--root") {
      i++;
      continue;
    }
    if (word.startsWith("--root=") || word === "--help") continue;
    if (!/^\d+$/.test(word) || Number(word) < 1 || Number(word) > 0xffff) {
      throw new UsageError(`Cannot run on "${word}": not a node id (1-65535)`);
    }
    return { node: Number(word), rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  throw new UsageError("Cannot run a job: give a NODE and a command");
}

/** The command module of runner `name` (commands/index.ts loads them through this). */
export function runner(name: string): CommandModule {
  const found = RUNNERS[name];
  if (!found) throw new TypeError(`Cannot find runner "${name}"`);
  const spec: CommandSpec = {
    ...meta(name),
    usage: [
      `om ${name} [--root DIR] ${found.node ? "NODE " : ""}[--] COMMAND [ARGS...]`,
      `${name} ${found.node ? "NODE " : ""}[--] COMMAND [ARGS...]`,
    ],
    description: `${found.description}

Otherwise as om run (see om run --help): COMMAND runs as a job of this node's om discover,
its output, input, signals and exit status passing through. A runner takes no other option of
om run: it is its preset.`,
    options: [ROOT_OPTION],
    rawArgs: true,
    args: [
      ...(found.node
        ? [{ name: "NODE", help: "the node id to start on", complete: "none" as const }]
        : []),
      { name: "COMMAND", help: "the program to run as a job", complete: "none" },
      { name: "ARGS...", help: "its arguments", complete: "file" },
    ],
    examples: [found.example, {
      command: `om ${name} ${found.node ? "2 " : ""}-- sh -c 'echo $OM_JOB_LOCK'`,
      says: found.preset(2).includes("-l") ? "prints 0: unlocked" : "prints 1: locked",
    }],
  };
  const run = async (parsed: Parsed, ctx: Context): Promise<number> => {
    const { node, rest } = found.node
      ? takeNode(parsed.args)
      : { node: undefined, rest: parsed.args };
    const options = parseRunOptions(rest, { preset: found.preset(node) });
    if (options.help) {
      ctx.out(renderHelp(spec));
      return 0;
    }
    return await runJob(options, ctx);
  };
  return { spec, run };
}
