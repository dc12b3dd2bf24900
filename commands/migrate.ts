/**
 * `om migrate` (openMosix's migrate): asks this node's om discover to move one of its jobs to
 * another node, stop-and-copy with CRIU, and prints what it took. Protocol: PROTOCOL.md §10-11.
 */
import { connectLocal, LocalAuthError } from "../lib/jobs/localauth.ts";
import type { CommandSpec, Parsed } from "../lib/cli/parser.ts";
import { UsageError } from "../lib/cli/parser.ts";
import { loadSettings, type Settings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { localSocketPath } from "../lib/jobs/deputy.ts";
import type { MigrationReport } from "../lib/migration/migration.ts";
import { readJobRecords } from "../lib/jobs/table.ts";
import { listNodeInfo, type NodeInfo } from "../lib/state/nodestate.ts";
import { chooseTarget, loadAfterLeaving, loadPerCpu } from "../lib/balance/placement.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("migrate"),
  usage: ["om migrate [--root DIR] PID NODE|home|balance", "migrate PID NODE|home|balance"],
  description: `Moves the job PID (a job of om run, by the PID om ps shows) to node NODE: CRIU
checkpoints it here (criu check and version are run on both nodes first), the images go to
NODE's om discover over the node-to-node channel, NODE restores it, and the job runs on there
with its terminal still at home: its output comes back to the om run that started it, its input
and signals follow it. This kernel has no dirty-memory tracking, so the job is stopped for the
whole copy (stop-and-copy). om migrate prints the frozen, transfer, restore and total times in
milliseconds.

Run it on the job's home node (where om run started it): only the home node knows its jobs. A
job that already runs elsewhere is moved by the node it runs on, at the home's request: back
home (om migrate PID home) or on to another node. If any step
fails (NODE blocks guests with mosctl block, NODE goes away, the restore fails), the job goes on
where it was, and om migrate says which step failed and where the CRIU log is, and exits 1.
Users may migrate their own jobs, root any job: for a job of another user om migrate says
"Cannot migrate job PID: Operation not permitted (it belongs to user NAME)" and exits 1. A
user's job runs in a mount namespace of its own (with its own /proc) and is checkpointed by CRIU
run as its user; every mount it sees must exist on NODE too (the restore binds each from NODE's
same path), or the restore fails and the job goes on where it was.

om migrate PID balance lets this node choose: among the nodes that are up, other than the one the
job runs on, with at least the job's resident memory available, the one least loaded per CPU (load
is already relative to speed), drawn at random among those within 0.1 of the best; and only when
it is less loaded per CPU than the job's node would be without the job. It says which node it
chose and why, then moves the job there; when no node is better, it says so, and the job stays.`,
  options: [ROOT_OPTION],
  args: [
    { name: "PID", help: "the job's PID, as om ps lists it", complete: "none" },
    {
      name: "NODE",
      help: "the node id to move it to (decimal or 0x hex), home, or balance",
      complete: ["home", "balance"],
    },
  ],
  examples: [
    { command: "om migrate 4711 2", says: "moves job 4711 to node 2 and prints the times" },
    { command: "om migrate 4711 0x0adc", says: "the same, with a node id as showmap prints it" },
    { command: "om migrate 4711 balance", says: "moves job 4711 to the least loaded node" },
  ],
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads NODE: a node id (decimal or 0x hex) or home. */
export function parseTarget(text: string): number | "home" {
  if (text === "home") return "home";
  if (/^\d+$/.test(text) || /^0x[0-9a-f]+$/i.test(text)) {
    const id = Number(text);
    if (id >= 1 && id <= 0xffff) return id;
  }
  throw new UsageError(`Cannot migrate to "${text}": not a node id (1-65535), home or balance`);
}

/** Moves the job and prints the step times. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const [pidText, nodeText, ...rest] = parsed.args;
  if (pidText === undefined || nodeText === undefined || rest.length > 0) {
    throw new UsageError("Cannot migrate: give a PID and a NODE (or home or balance)");
  }
  if (!/^\d+$/.test(pidText) || Number(pidText) < 1) {
    throw new UsageError(`Cannot use "${pidText}" as a PID: not a positive whole number`);
  }
  const id = Number(pidText);
  const to = nodeText === "balance" ? "balance" : parseTarget(nodeText);
  const settings = await loadSettings({ root: parsed.options.root as string | undefined }, ctx.env);
  if (to !== "balance") return await migrate(settings.root, id, to, ctx);
  const chosen = await balance(settings, id, ctx);
  return chosen === undefined
    ? 0
    : typeof chosen === "number"
    ? migrate(settings.root, id, chosen, ctx)
    : 1;
}

/** The job's resident memory (VmRSS of PID on this node), in bytes; 0 when unknown. */
async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The job's own share of this node's load: 100 × 10000 / speed times the fraction of 5 samples,
 * 20 ms apart, in which its PID is runnable (state R); 0 when it cannot be read.
 */
async function jobLoadHere(pid: number, here: NodeInfo | undefined): Promise<number> {
  let runnable = 0;
  const samples = 5;
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const end = stat.lastIndexOf(")");
      if (stat.slice(end + 2, end + 3) === "R") runnable++;
    } catch {
      return 0;
    }
  }
  return (runnable / samples) * 100 * 10000 / Math.max(1, here?.speed || 10000);
}

const perCpu = (load: number) => (load / 100).toFixed(2);

/**
 * Chooses where job `id` should go (lib/balance/placement.ts) and says why: the node id, undefined when
 * it stays (said on stdout), or "failed" (said on stderr).
 */
async function balance(
  settings: Settings,
  id: number,
  ctx: Context,
): Promise<number | undefined | "failed"> {
  const paths = resolveStatePaths(settings);
  const self = (await readMap(paths).catch(() => undefined))?.self;
  const job = (await readJobRecords(`${settings.root}/jobs`)).find((j) => j.pid === id);
  if (!job || self === undefined || job.home !== self) {
    ctx.err(
      `om migrate: Cannot balance job ${id}: no such job on this node (run it on the job's home)\n`,
    );
    return "failed";
  }
  const nodes = await listNodeInfo(paths.nodes);
  const current = job.node;
  const runsHere = current === self;
  const needMem = runsHere ? await residentBytes(id) : 0;
  const jobLoad = runsHere ? await jobLoadHere(id, nodes.find((n) => n.id === current)) : 0;
  const target = chooseTarget(nodes, { current, needMem, jobLoad });
  const stay = loadAfterLeaving(nodes, current, jobLoad);
  if (target === undefined) {
    ctx.out(`balance: no node is better than node ${current} for job ${id}; it stays\n`);
    return undefined;
  }
  const chosen = nodes.find((n) => n.id === target)!;
  const where = runsHere ? "here" : `on node ${current}`;
  ctx.out(
    `balance: node ${target} (load ${perCpu(loadPerCpu(chosen))} per CPU against ${
      stay === undefined ? "unknown" : perCpu(stay)
    } ${where} without the job)\n`,
  );
  return target;
}

/** Asks this node's om discover to move job `id` to `to`; prints the step times. */
async function migrate(
  root: string,
  id: number,
  to: number | "home",
  ctx: Context,
): Promise<number> {
  const path = localSocketPath(root);
  let client;
  try {
    client = await connectLocal(root, { timeoutMs: 5000 });
  } catch (error) {
    ctx.err(
      error instanceof LocalAuthError
        ? `om migrate: ${error.message}\n`
        : `om migrate: Cannot reach om discover at ${path}: is it running?\n`,
    );
    return 1;
  }
  try {
    const reply = await client.request(
      "job.migrate",
      encoder.encode(JSON.stringify({ id, to })),
      { timeoutMs: 0 },
    );
    const report: MigrationReport = JSON.parse(decoder.decode(reply));
    ctx.out(
      `job ${report.id}: node ${report.from} -> node ${report.to}: frozen ${report.frozenMs} ms, ` +
        `transfer ${report.transferMs} ms, restore ${report.restoreMs} ms, ` +
        `total ${report.totalMs} ms (${(report.bytes / 1048576).toFixed(1)} MiB)\n`,
    );
    return 0;
  } catch (error) {
    const text = error instanceof Error && "error" in error
      ? String((error as { error: unknown }).error)
      : error instanceof Error
      ? error.message
      : String(error);
    ctx.err(`om migrate: ${text}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
  }
}
