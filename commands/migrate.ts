/**
 * `om migrate` (openMosix's migrate): asks this node's om discover to move one of its jobs to
 * another node, stop-and-copy with CRIU, and prints what it took; with balance, to the node the
 * daemon's balancer would send it to (`job.place`). Protocol: PROTOCOL.md §10-12.
 */
import { connectLocal, localFailure } from "../lib/jobs/localauth.ts";
import type { CommandSpec, Parsed } from "../lib/cli/parser.ts";
import { UsageError } from "../lib/cli/parser.ts";
import { loadSettings, type Settings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import type { MigrationReport } from "../lib/migration/errors.ts";
import { readJobRecords } from "../lib/jobs/table.ts";
import type { JobPlacement } from "../lib/balance/balancer.ts";
import { type ChannelClient, RemoteError } from "../lib/channel/client.ts";
import { jsonBytes, jsonOf } from "../lib/base/json.ts";
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

om migrate PID balance sends the job where this node's load balancer would send it now, by the
balancer's own rule and figures: among the nodes that are up, do not block guests (mosctl block)
and have the job's resident memory available, one that with the job would still be less loaded
per CPU than the job's node is now, by more than half the job's own load per CPU and at least 0.1
(load is relative to speed), drawn at random among those within 0.1 of the least loaded; when the
job's node is short of memory, one that keeps a fifth of its memory available after taking it. It
says which node it chose and why, then moves the job there; when no node is better, it says so,
and the job stays.`,
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
    { command: "om migrate 4711 balance", says: "moves job 4711 where the balancer would send it" },
  ],
};

/** Reads NODE: a node id (decimal or 0x hex) or home. */
export function parseTarget(text: string): number | "home" {
  if (text === "home") return "home";
  if (/^\d+$/.test(text) || /^0x[0-9a-f]+$/i.test(text)) {
    const id = Number(text);
    if (id >= 1 && id <= 0xffff) return id;
  }
  throw new UsageError(`Cannot migrate to "${text}": not a node id (1-65535), home or balance`);
}

/** Moves the job (to the node balancing chooses, for balance) and prints the step times. */
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
  if (to !== "balance") {
    return await withDaemon(settings.root, ctx, (client) => migrate(client, id, to, ctx));
  }
  const self = await homeOf(settings, id, ctx);
  if (self === undefined) return 1;
  return await withDaemon(settings.root, ctx, async (client) => {
    const target = await balance(client, id, self, ctx);
    return target === undefined ? 0 : await migrate(client, id, target, ctx);
  });
}

/**
 * This node's id when job `id` is one of its jobs (it is the job's home); undefined, said on
 * stderr, when it is not.
 */
async function homeOf(settings: Settings, id: number, ctx: Context): Promise<number | undefined> {
  const self = (await readMap(resolveStatePaths(settings)).catch(() => undefined))?.self;
  const job = (await readJobRecords(`${settings.root}/jobs`)).find((j) => j.pid === id);
  if (!job || self === undefined || job.home !== self) {
    ctx.err(
      `om migrate: Cannot balance job ${id}: no such job on this node (run it on the job's home)\n`,
    );
    return undefined;
  }
  return self;
}

/** Runs `work` over a connection to this node's om discover; a failure is said on stderr. */
async function withDaemon(
  root: string,
  ctx: Context,
  work: (client: ChannelClient) => Promise<number>,
): Promise<number> {
  let client;
  try {
    client = await connectLocal(root, { timeoutMs: 5000 });
  } catch (error) {
    ctx.err(`om migrate: ${localFailure(error, root)}\n`);
    return 1;
  }
  try {
    return await work(client);
  } catch (error) {
    const text = error instanceof RemoteError
      ? error.error
      : error instanceof Error
      ? error.message
      : String(error);
    ctx.err(`om migrate: ${text}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
  }
}

/** Load per CPU as printed: in CPUs (100 load units = one busy reference-speed CPU). */
const perCpu = (load: number) => (load / 100).toFixed(2);

/**
 * Asks this node's balancer where job `id` should go (`job.place`: lib/balance/placement.ts, the
 * rule of its own moves) and says why: the node id, or undefined when the job stays.
 */
async function balance(
  client: ChannelClient,
  id: number,
  self: number,
  ctx: Context,
): Promise<number | undefined> {
  const reply = await client.request("job.place", jsonBytes({ id }));
  const placement = jsonOf<JobPlacement>(reply);
  const { from, to, here, there = 0 } = placement;
  if (to === undefined) {
    const at = here === null || here === undefined ? "" : ` (load ${perCpu(here)} per CPU there)`;
    ctx.out(`balance: no node is better than node ${from}${at} for job ${id}; it stays\n`);
    return undefined;
  }
  const where = from === self ? "here" : `on node ${from}`;
  const short = placement.reason === "memory" ? `; node ${from} is short of memory` : "";
  ctx.out(
    `balance: node ${to} (load ${perCpu(there)} per CPU against ${
      here === null || here === undefined ? "unknown" : perCpu(here)
    } ${where}, each with the job${short})\n`,
  );
  return to;
}

/** Asks this node's om discover to move job `id` to `to`; prints the step times. */
async function migrate(
  client: ChannelClient,
  id: number,
  to: number | "home",
  ctx: Context,
): Promise<number> {
  const reply = await client.request("job.migrate", jsonBytes({ id, to }), { timeoutMs: 0 });
  const report = jsonOf<MigrationReport>(reply);
  ctx.out(
    `job ${report.id}: node ${report.from} -> node ${report.to}: frozen ${report.frozenMs} ms, ` +
      `transfer ${report.transferMs} ms, restore ${report.restoreMs} ms, ` +
      `total ${report.totalMs} ms (${(report.bytes / 1048576).toFixed(1)} MiB)\n`,
  );
  return 0;
}
