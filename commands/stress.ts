/**
 * `om stress`: the openMosix stress test (the HOWTO's chapter 14, omtest) reborn, every result
 * checked. It starts workloads as jobs of this node, moves them between the nodes at random while
 * they run, and passes only if every job computed the right answer, none was lost and every move
 * it asked for was done (lib/stress/). Writes a text report; --json prints the same.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { systemClock } from "../lib/base/clock.ts";
import { readJobRecords } from "../lib/jobs/table.ts";
import { resolveStatePaths } from "../lib/state/tree.ts";
import { runLocal } from "../lib/stress/calibrate.ts";
import { WORKLOADS } from "../lib/stress/catalogue.ts";
import { readCluster, readMeasuredCluster, readSoftware, upIds } from "../lib/stress/cluster.ts";
import { omRunStarter } from "../lib/stress/jobrun.ts";
import { localMigrate } from "../lib/stress/mover.ts";
import { readFlags, resolveSettings, type StressFlags } from "../lib/stress/options.ts";
import { progressLine } from "../lib/stress/progress.ts";
import { renderReport, reportJson } from "../lib/stress/report.ts";
import { runStress } from "../lib/stress/stress.ts";
import { summaryLine, verdictOf } from "../lib/stress/verdict.ts";
import { meta } from "./index.ts";

const tests = WORKLOADS.map((w) => `  ${w.name.padEnd(10)} ${w.summary}`).join("\n");

export const spec: CommandSpec = {
  ...meta("stress"),
  usage: [
    "om stress [--duration SECONDS] [--jobs N] [--interval SECONDS] [--tests LIST] " +
    "[--memory MIB] [--report FILE] [--json] [--root DIR]",
  ],
  description: `Runs workloads as jobs of this node (om run) and, while they run, every
--interval seconds moves a running job chosen at random to another node that is up, chosen at
random (this node, their home, included, and on from one node to a third), as omtest's
moving.sh did; the balancer moves jobs of its own too, and both kinds of move are counted.
Each workload knows the result it must produce, computed by om stress itself. The test passes
only if every job ended with the right result, none was lost, and every move om stress asked
for was done: a move that failed safely (the job went on where it was) still fails it. Exits 0
when it passed, 1 when it failed, 130 when interrupted (Ctrl-C stops the jobs it started and
writes the report so far).

The workloads (--tests, comma-separated; default all):
${tests}
A workload whose program is not on PATH is skipped and reported as skipped. The jobs start one
after the other and take the workloads in turn; when one ends, another starts while time is
left. Before the jobs start, each workload runs here once as a plain process, to size it and
to check that it computes right without om. Each job is sized to run for two fifths of
--duration, or less so that every workload gets its turn, on its share of a CPU.

Defaults, sized to the cluster: --jobs the CPUs of the nodes that are up (in a lab, whose nodes
share this machine, this machine's CPUs), at least 2; --duration 60, --interval 5, --memory an
eighth of the smallest memory a node has available (16 to 256 MiB). Jobs still running 60 s
(or --duration, if longer) after the end are stopped and count as failures.

The report (default om-stress-<UTC date and time>.txt in the current directory) lists om's
version, the kernel, CRIU, every node, the settings, each job (its command, the nodes it ran
on, its moves, the expected and the actual result) and each move (who asked, from, to, frozen
and total milliseconds, or the failed step and CRIU's log), and ends with the summary line.
On a terminal the progress is redrawn in place; otherwise (and on standard error with --json)
it comes as plain lines.

Run it on a node of a cluster whose om discover runs with a cluster key: on a real cluster
after installing om, or in a lab (om lab exec 1 -- om stress).`,
  options: [
    {
      name: "duration",
      flags: ["--duration"],
      value: "SECONDS",
      help: "how long jobs run and move (default 60)",
      complete: "none",
    },
    {
      name: "jobs",
      flags: ["--jobs"],
      value: "N",
      integer: [1, 1000],
      help: "jobs running at once (default: the CPUs of the nodes that are up, at least 2)",
      complete: "none",
    },
    {
      name: "interval",
      flags: ["--interval"],
      value: "SECONDS",
      help: "seconds between two moves om stress makes (default 5; 0: none, the balancer's only)",
      complete: "none",
    },
    {
      name: "tests",
      flags: ["--tests"],
      value: "LIST",
      help: `the workloads, comma-separated: ${
        WORKLOADS.map((w) => w.name).join(",")
      } (default all)`,
      complete: "none",
    },
    {
      name: "memory",
      flags: ["--memory"],
      value: "MIB",
      integer: [1, 65536],
      help: "MiB the memory workload holds (default from the nodes' memory)",
      complete: "none",
    },
    {
      name: "report",
      flags: ["--report"],
      value: "FILE",
      help: "where the text report goes (default om-stress-<UTC date and time>.txt)",
      complete: "file",
    },
    { name: "json", flags: ["--json"], help: "print the report as one JSON object" },
    ROOT_OPTION,
  ],
  examples: [
    { command: "om stress", says: "a minute of jobs moving between the nodes; PASSED or FAILED" },
    {
      command: "om stress --duration 600 --interval 2",
      says: "ten minutes, a move every two seconds",
    },
    {
      command: "om stress --tests memory,stream --memory 512",
      says: "only the memory and stream workloads, holding 512 MiB",
    },
    {
      command: "om lab up 3 && om lab exec 1 -- om stress --duration 30",
      says: "the stress test in a lab of three nodes",
    },
    {
      command: "om stress --json --report /tmp/stress.txt | jq .passed",
      says: "the verdict for a script; the text report in /tmp/stress.txt",
    },
  ],
};

const CLEAR_LINE = "\r\x1b[K";
/** How long om stress waits for every node's figures (a node that just joined has none yet). */
const FIGURES_WAIT_MS = 5000;
/** Seconds between two plain progress lines. */
const PLAIN_PROGRESS_MS = 10_000;

/**
 * The CPUs the jobs have: the nodes' that are up, but in a lab (OM_LAB, set by om lab exec) the
 * nodes share this machine, whose CPUs are then all there is.
 */
function jobCpus(nodeCpus: number, ctx: Context): number {
  return ctx.env("OM_LAB") ? Math.min(nodeCpus, navigator.hardwareConcurrency) : nodeCpus;
}

/** The terminal's width; 80 when it cannot be read. */
function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 80;
  }
}

/** Runs the stress test and reports it. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length > 0) {
    throw new UsageError(`Cannot use "${parsed.args[0]}": stress takes no arguments`);
  }
  const o = parsed.options;
  const flags: StressFlags = {
    ...(o.duration !== undefined ? { duration: String(o.duration) } : {}),
    ...(o.interval !== undefined ? { interval: String(o.interval) } : {}),
    ...(o.jobs !== undefined ? { jobs: o.jobs as number } : {}),
    ...(o.tests !== undefined ? { tests: String(o.tests) } : {}),
    ...(o.memory !== undefined ? { memory: o.memory as number } : {}),
    ...(o.report !== undefined ? { report: String(o.report) } : {}),
  };
  const choices = readFlags(flags);
  const json = o.json === true;
  const settings = await loadSettings({ root: o.root as string | undefined }, ctx.env);
  const paths = resolveStatePaths(settings);
  const cluster = await readMeasuredCluster(paths, systemClock, FIGURES_WAIT_MS);
  const up = cluster.nodes.filter((n) => n.up);
  const stress = resolveSettings(
    choices,
    {
      cpus: jobCpus(up.reduce((sum, n) => sum + n.cpus, 0), ctx),
      minMem: up.length > 0 ? Math.min(...up.map((n) => n.mem)) : undefined,
    },
    ctx.now(),
  );
  if (up.length < 2) {
    ctx.err(
      `om stress: Cannot run the stress test: ${
        up.length === 0 ? "no node is up" : `only node ${up[0].id} is up`
      }; moving jobs needs two nodes or more\n`,
    );
    return 1;
  }
  const software = await readSoftware(settings, ctx.env, () => performance.now());

  // Progress: redrawn in place on a terminal; plain lines otherwise (on stderr with --json).
  const live = ctx.isTerminal && !json;
  const say = json ? ctx.err : ctx.out;
  let status = "";
  let lastPlain = -Infinity;
  let lastPhase = "";
  const onEvent = (line: string) => {
    if (live) say(`${CLEAR_LINE}${line}\n${status}`);
    else say(`om stress: ${line}\n`);
  };
  const onProgress = (progress: Parameters<typeof progressLine>[0]) => {
    const line = progressLine(progress);
    if (live) {
      // One line, cut to the terminal's width, so that the next redraw clears all of it.
      status = line.slice(0, Math.max(20, terminalColumns() - 1));
      say(`${CLEAR_LINE}${status}`);
    } else if (ctx.now() - lastPlain >= PLAIN_PROGRESS_MS || progress.phase !== lastPhase) {
      lastPlain = ctx.now();
      lastPhase = progress.phase;
      say(`om stress: ${line}\n`);
    }
  };

  const controller = new AbortController();
  const stop = () => controller.abort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  let result;
  try {
    say(
      `om stress: ${stress.jobs} jobs at once for ${stress.durationMs / 1000} s on nodes ` +
        `${up.map((n) => n.id).join(", ")} (home ${cluster.self}); report ${stress.reportPath}\n`,
    );
    result = await runStress({ settings: stress, cluster, software }, {
      clock: systemClock,
      random: Math.random,
      start: omRunStarter({
        env: { ...ctx.envAll(), OM_ROOT: settings.root },
        clock: systemClock,
      }),
      migrate: localMigrate(settings.root),
      runLocal,
      readJobs: () => readJobRecords(`${settings.root}/jobs`),
      upNodes: async () => upIds(await readCluster(paths)),
      path: ctx.env("PATH") ?? "/usr/bin:/bin",
      signal: controller.signal,
      onEvent,
      onProgress,
    });
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
    if (live) say(`${CLEAR_LINE}`);
  }
  const verdict = verdictOf(result);
  let written = true;
  try {
    await Deno.writeTextFile(stress.reportPath, renderReport(result, verdict));
  } catch (error) {
    written = false;
    ctx.err(
      `om stress: Cannot write the report "${stress.reportPath}": ${(error as Error).message}\n`,
    );
  }
  if (json) {
    ctx.out(JSON.stringify(reportJson(result, verdict), null, 2) + "\n");
  } else {
    ctx.out(`om stress: ${summaryLine(verdict)}\n`);
    if (written) ctx.out(`om stress: report ${stress.reportPath}\n`);
  }
  if (result.interrupted) return 130;
  return verdict.passed && written ? 0 : 1;
}
