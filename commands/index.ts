/**
 * The table of om's commands: names, link names and one-line summaries, with a loader for each.
 * main.ts reads only this file and loads the one command that runs, so start-up stays small.
 * Each command's declaration takes its name, links and summary from here (one source).
 */
import { type CommandSpec, parse, type Parsed, renderHelp, UsageError } from "../lib/cli/parser.ts";
import type { Context } from "../lib/cli/context.ts";

/** What a command file exports. */
export interface CommandModule {
  readonly spec: CommandSpec;
  run(parsed: Parsed, ctx: Context): Promise<number>;
}

/** Name, links and summary of one command. */
export interface CommandMeta {
  readonly name: string;
  readonly links: readonly string[];
  readonly summary: string;
  readonly load: () => Promise<CommandModule>;
}

/** Every command, in the order `om --help` lists them. */
export const COMMANDS: readonly CommandMeta[] = [
  {
    name: "discover",
    links: ["omdiscd"],
    summary: "the auto-discovery daemon: find the other nodes and keep the cluster map",
    load: () => import("./discover.ts"),
  },
  {
    name: "showmap",
    links: ["showmap"],
    summary: "print the cluster map in force",
    load: () => import("./showmap.ts"),
  },
  {
    name: "setpe",
    links: ["setpe"],
    summary: "install, check, print or clear a cluster map from a map file",
    load: () => import("./setpe.ts"),
  },
  {
    name: "mosctl",
    links: ["mosctl"],
    summary: "administer this node and read the cluster's: flags, speed, load, memory, whois",
    load: () => import("./mosctl.ts"),
  },
  {
    name: "run",
    links: ["mosrun"],
    summary: "run a command as a job that can move (mosrun)",
    load: () => import("./run.ts"),
  },
  {
    name: "nomig",
    links: ["nomig"],
    summary: "run a command here as a locked job: it never migrates",
    load: () => import("./runners.ts").then((m) => m.runner("nomig")),
  },
  {
    name: "runhome",
    links: ["runhome"],
    summary: "run a command at home, locked there (om run -h)",
    load: () => import("./runners.ts").then((m) => m.runner("runhome")),
  },
  {
    name: "runon",
    links: ["runon"],
    summary: "start a command on a given node at once and lock it there (om run -NODE -L)",
    load: () => import("./runners.ts").then((m) => m.runner("runon")),
  },
  {
    name: "cpujob",
    links: ["cpujob"],
    summary: "run a command as an unlocked cpu-bound job (om run -l -c)",
    load: () => import("./runners.ts").then((m) => m.runner("cpujob")),
  },
  {
    name: "iojob",
    links: ["iojob"],
    summary: "run a command as an unlocked io-bound job (om run -l -i)",
    load: () => import("./runners.ts").then((m) => m.runner("iojob")),
  },
  {
    name: "nodecay",
    links: ["nodecay"],
    summary: "run a command unlocked, with no decay of its load history (om run -l -n)",
    load: () => import("./runners.ts").then((m) => m.runner("nodecay")),
  },
  {
    name: "slowdecay",
    links: ["slowdecay"],
    summary: "run a command unlocked, with slow decay (om run -l -s)",
    load: () => import("./runners.ts").then((m) => m.runner("slowdecay")),
  },
  {
    name: "fastdecay",
    links: ["fastdecay"],
    summary: "run a command unlocked, with fast decay (om run -l -f)",
    load: () => import("./runners.ts").then((m) => m.runner("fastdecay")),
  },
  {
    name: "migrate",
    links: ["migrate"],
    summary: "move a running job to another node (stop-and-copy with CRIU)",
    load: () => import("./migrate.ts"),
  },
  {
    name: "exec",
    links: [],
    summary: "run a command on the nodes, as root, where their exec_allow lets it (GOMD's SCX)",
    load: () => import("./exec.ts"),
  },
  {
    name: "stress",
    links: [],
    summary: "the stress test: jobs moved at random between the nodes, every result checked",
    load: () => import("./stress.ts"),
  },
  {
    name: "status",
    links: [],
    summary: "this node and the cluster at a glance; --html: the status page as one file",
    load: () => import("./status.ts"),
  },
  {
    name: "ps",
    links: ["mps"],
    summary: "processes with the node they run on",
    load: () => import("./ps.ts"),
  },
  {
    name: "mon",
    links: ["mosmon"],
    summary: "a live terminal view of every node's load, speed and memory",
    load: () => import("./mon.ts"),
  },
  {
    name: "doctor",
    links: [],
    summary: "check this node for what om needs, and say how to fix each miss",
    load: () => import("./doctor.ts"),
  },
  {
    name: "keygen",
    links: [],
    summary: "write a new cluster key file",
    load: () => import("./keygen.ts"),
  },
  {
    name: "lab",
    links: [],
    summary: "a local virtual cluster: N nodes in network namespaces on one machine",
    load: () => import("./lab.ts"),
  },
  {
    name: "completions",
    links: [],
    summary: "print or check the bash, zsh and fish completion scripts",
    load: () => import("./completions.ts"),
  },
];

/** Finds a command by its name or a link name. */
export function findCommand(name: string): CommandMeta | undefined {
  return COMMANDS.find((c) => c.name === name || c.links.includes(name));
}

/** The declaration fields that come from this table. */
export function meta(name: string): Pick<CommandSpec, "name" | "links" | "summary"> {
  const found = COMMANDS.find((c) => c.name === name);
  if (!found) throw new TypeError(`Cannot find command "${name}" in commands/index.ts`);
  return { name: found.name, links: found.links, summary: found.summary };
}

/**
 * Runs a command as om does for the person at the terminal: help when asked, usage mistakes
 * exit 2 with a pointer to --help, other failures exit 1 with their message (and the stack with
 * OM_TRACE). main.ts and the commands' tests both go through here.
 */
export async function runCommand(
  module: Pick<CommandModule, "spec" | "run">,
  args: readonly string[],
  ctx: Context,
): Promise<number> {
  const name = module.spec.name;
  try {
    const parsed = parse(module.spec, args);
    if (parsed.help) {
      ctx.out(renderHelp(module.spec));
      return 0;
    }
    return await module.run(parsed, ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      ctx.err(`om ${name}: ${error.message}\nTry 'om ${name} --help'.\n`);
      return 2;
    }
    ctx.err(`om ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    if (ctx.env("OM_TRACE")) ctx.err(`${(error as Error)?.stack}\n`);
    return 1;
  }
}
