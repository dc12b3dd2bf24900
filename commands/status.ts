/**
 * `om status`: in a terminal, this node's flags and figures and the cluster's summary (what
 * `om mosctl status` prints, from the same view: lib/views/status.ts); with `--html FILE`, the
 * cluster's status page as one self-contained file (GOMD's clusterSnapshot): the page `om
 * discover --http` serves, with the cluster's data inlined and no stream, which opens in any
 * browser without a network. The data comes from this node's `om discover` (`status.cluster` on
 * its local socket, PROTOCOL.md §14.6), which gathers it from every node.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { RemoteError } from "../lib/channel/client.ts";
import { connectLocal, localFailure } from "../lib/jobs/localauth.ts";
import { jsonOf } from "../lib/base/json.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { readStatus, renderStatus, statusJson } from "../lib/views/status.ts";
import { requireSelf } from "../lib/views/thisnode.ts";
import { parseNodeId } from "../lib/views/whois.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("status"),
  usage: ["om status [ID] [--json]", "om status --html FILE|-"],
  description: `Without --html: this node's state, flags, speed, load and memory, and the cluster's
nodes, CPUs and memory (what 'om mosctl status' prints); with ID, node ID's figures; --json prints
the same as one JSON object (as 'om mosctl status --json' does).

--html FILE writes the cluster's status page as one file (- for standard output): every node with
its figures, flags, network load and load history, every job of the cluster with where it runs,
and the recent migrations, as this node's om discover sees them now (it asks the other nodes;
without a cluster key only this node's jobs are known). The file holds its data, style and script,
fetches nothing and does not update: open it in any browser, mail it, keep it. The live page is
om discover's, with http = ADDR:PORT (--http).`,
  args: [{ name: "ID", help: "a node id (default this node)", complete: "host" }],
  options: [
    { name: "json", flags: ["--json"], help: "print the summary as JSON" },
    {
      name: "html",
      flags: ["--html"],
      value: "FILE",
      help: "write the status page, data inlined, to FILE (- for standard output)",
      complete: "file",
    },
    ROOT_OPTION,
    ALPHA_OPTION,
  ],
  examples: [
    { command: "om status", says: "this node's flags and figures, and the cluster's summary" },
    { command: "om status 3 --json", says: "node 3's figures as JSON" },
    {
      command: "om status --html /tmp/cluster.html",
      says: "the whole cluster's page as one file: nodes, jobs, migrations",
    },
    {
      command: "om status --html - | ssh web 'cat > /var/www/cluster.html'",
      says: "publish a snapshot elsewhere",
    },
  ],
};

/** How long the daemon may take to gather the cluster (it asks every node). */
const GATHER_TIMEOUT_MS = 30_000;

export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const settings = await loadSettings({
    root: parsed.options.root as string | undefined,
    alpha: parsed.options.alpha === true ? true : undefined,
  }, ctx.env);
  const html = parsed.options.html as string | undefined;
  if (parsed.args.length > 1) {
    throw new UsageError(`Cannot use "${parsed.args[1]}": one ID at most`);
  }
  if (html !== undefined) {
    if (parsed.args.length) {
      throw new UsageError(`Cannot use "${parsed.args[0]}" with --html: the page is the cluster's`);
    }
    if (parsed.options.json) throw new UsageError("Cannot use --json with --html");
    if (html === "") throw new UsageError("Cannot write the page to an empty file name");
    return await snapshot(settings.root, html, ctx);
  }
  const paths = resolveStatePaths(settings);
  const state = await readMap(paths);
  let id: number;
  try {
    id = parsed.args.length ? parseNodeId(parsed.args[0]) : requireSelf(paths, state).self;
  } catch (error) {
    if (parsed.args.length) throw new UsageError((error as Error).message);
    throw error;
  }
  const view = await readStatus(paths, id, state);
  ctx.out(parsed.options.json ? JSON.stringify(statusJson(view)) + "\n" : renderStatus(view));
  return 0;
}

/** `--html FILE`: the page with the cluster's data, from this node's daemon. */
async function snapshot(root: string, file: string, ctx: Context): Promise<number> {
  let client;
  try {
    client = await connectLocal(root, { timeoutMs: 5000 });
  } catch (error) {
    ctx.err(`om status: ${localFailure(error, root)}\n`);
    return 1;
  }
  let data;
  try {
    data = jsonOf<{ view: { nodes: unknown[]; jobs: unknown[]; moves: unknown[] } }>(
      await client.request("status.cluster", undefined, { timeoutMs: GATHER_TIMEOUT_MS }),
    );
  } catch (error) {
    const text = error instanceof RemoteError ? error.error : (error as Error).message;
    ctx.err(`om status: Cannot get the cluster from om discover: ${text}\n`);
    return 1;
  } finally {
    await client.close().catch(() => {});
  }
  // The page's module is loaded only here: a plain `om status` does not pay for it.
  const { snapshotHtml } = await import("../lib/web/page.ts");
  // deno-lint-ignore no-explicit-any
  const page = await snapshotHtml(data as any);
  if (file === "-") {
    ctx.out(page);
    return 0;
  }
  await Deno.writeTextFile(file, page);
  const { nodes, jobs, moves } = data.view;
  ctx.out(
    `om status: wrote ${file}: ${nodes.length} node${nodes.length === 1 ? "" : "s"}, ` +
      `${jobs.length} job${jobs.length === 1 ? "" : "s"}, ${moves.length} recent migration${
        moves.length === 1 ? "" : "s"
      }\n`,
  );
  return 0;
}
