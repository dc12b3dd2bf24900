/**
 * `om migrate` (openMosix's migrate): asks this node's om discover to move one of its jobs to
 * another node, stop-and-copy with CRIU, and prints what it took. Protocol: PROTOCOL.md §10-11.
 */
import { connectChannel } from "../lib/channel.ts";
import type { CommandSpec, Parsed } from "../lib/cli.ts";
import { UsageError } from "../lib/cli.ts";
import { loadSettings } from "../lib/config.ts";
import type { Context } from "../lib/context.ts";
import { localSocketPath } from "../lib/deputy.ts";
import type { MigrationReport } from "../lib/migration.ts";
import { ROOT_OPTION } from "../lib/stateflags.ts";
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
home (om migrate PID home) or on to another node (balance is still to come). If any step
fails (NODE blocks guests with mosctl block, NODE goes away, the restore fails), the job goes on
where it was, and om migrate says which step failed and where the CRIU log is, and exits 1.
Root only for now (the local socket $OM_ROOT/omdiscd.sock).`,
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
    throw new UsageError("Cannot migrate: give a PID and a NODE (or home)");
  }
  if (!/^\d+$/.test(pidText) || Number(pidText) < 1) {
    throw new UsageError(`Cannot use "${pidText}" as a PID: not a positive whole number`);
  }
  if (nodeText === "balance") {
    ctx.err("om migrate: not yet: the load balancer comes with a later om\n");
    return 1;
  }
  const to = parseTarget(nodeText);
  const id = Number(pidText);
  const settings = await loadSettings({ root: parsed.options.root as string | undefined }, ctx.env);
  const path = localSocketPath(settings.root);
  let client;
  try {
    client = await connectChannel({ path, timeoutMs: 5000 });
  } catch {
    ctx.err(`om migrate: Cannot reach om discover at ${path}: is it running?\n`);
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
