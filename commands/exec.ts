/**
 * `om exec` (GOMD's SCX, Secure Cluster-wide eXecution): runs a command on the nodes that are up,
 * or those named, at most FANOUT at once, through this node's om discover (`exec.ask` on the local
 * socket, root only), which asks each node over the sealed channel; prints each node's lines marked
 * with the node, or gathered with -b, and exits with the largest status. Protocol: PROTOCOL.md §13.
 */
import { jsonBytes } from "../lib/base/json.ts";
import { type ChannelClient, RemoteError } from "../lib/channel/client.ts";
import { connectLocal, localFailure } from "../lib/jobs/localauth.ts";
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { parseNodeList } from "../lib/jobs/runoptions.ts";
import { readNodeInfo } from "../lib/state/nodestate.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import { gatherResults } from "../lib/exec/gather.ts";
import { renderGroups, renderResult } from "../lib/exec/render.ts";
import { mapNodes, selectNodes } from "../lib/exec/select.ts";
import { RELAY_SLACK_MS } from "../lib/exec/service.ts";
import {
  argvProblem,
  type ExecResult,
  MAX_TIMEOUT_MS,
  notRun,
  overallStatus,
  readResult,
} from "../lib/exec/wire.ts";
import { meta } from "./index.ts";

/** Nodes asked at once by default (-f). */
export const DEFAULT_FANOUT = 32;
/** The most nodes asked at once (-f): each holds a local connection and up to 1 MiB of output. */
export const MAX_FANOUT = 128;
/** The time limit per node by default (-t), in seconds. */
export const DEFAULT_TIMEOUT_S = 60;

export const spec: CommandSpec = {
  ...meta("exec"),
  usage: ["om exec [-w NODES] [-b] [-t SECONDS] [-f FANOUT] [--root DIR] [--] COMMAND [ARGS...]"],
  description: `Runs COMMAND with ARGS on every node that is up (or on the nodes of -w: ids and
ranges as om run -j takes them, 2-4,7), as root, and prints each line of its output marked with
the node: 'node 3: ...', standard output on standard output and standard error on standard
error, each node's lines together as soon as it is done, then how it ended when that was not
exit 0. With -b the nodes whose output and exit status are the same are gathered under one
header (as ClusterShell's clush -b does). om exec exits with the largest exit status of the
nodes: 124 for a node that timed out, 127 for a command not found, 126 for one that cannot be
executed, 128+N for signal N, and 255 for a node that is down, not in the cluster map, cannot be
reached or refuses.

Off unless a node allows it: each node runs only the commands its own exec_allow setting
permits (om.conf, OM_EXEC_ALLOW or om discover --exec-allow; none by default), and a node that
refuses says why. exec_allow is a comma-separated list of patterns matched against COMMAND as
given, never its basename: a bare name (uptime, mosctl*) is looked up in the node's own PATH
(/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), an absolute path must
match a pattern that is a path (/usr/local/bin/*); * and ? do not cross a /, and * alone
allows every command. Only root may ask, and only with a cluster key (the request goes over the
sealed node-to-node channel, so only nodes that hold the key can ask each other); every node
logs each command it runs or refuses, with who asked from where.

Each command runs without a shell (use sh -c for pipes and redirections), in /, with standard
input closed (/dev/null), in a process group and a cgroup of its own, with PATH, HOME=/root,
USER, LOGNAME, LANG and the node's OM_ROOT and OM_CONFIG in its environment. At the time limit
(-t, default ${DEFAULT_TIMEOUT_S} s per node) everything it started is killed (all of its cgroup,
or its process group on a node without cgroup v2); what it leaves running when it ends on its own
(a service it started) stays. A node keeps at most 1 MiB of
output per command, standard output and error together; the rest is dropped, and a line says how
much. Output is shown as text: invalid UTF-8 becomes U+FFFD and control characters (tab aside)
are written \\xNN. Ctrl-C stops om exec; commands already started run on until they end or
reach their time limit.`,
  options: [
    {
      name: "nodes",
      flags: ["-w"],
      value: "NODES",
      help: "the nodes to run on: ids and ranges, 2-4,7 (default: every node that is up)",
      complete: "none",
    },
    {
      name: "gather",
      flags: ["-b"],
      help: "gather the nodes whose output and status are the same",
    },
    {
      name: "timeout",
      flags: ["-t"],
      value: "SECONDS",
      help: `time limit per node, 0.1 to ${MAX_TIMEOUT_MS / 1000} (default ${DEFAULT_TIMEOUT_S})`,
      complete: "none",
    },
    {
      name: "fanout",
      flags: ["-f"],
      value: "FANOUT",
      integer: [1, MAX_FANOUT],
      help: `nodes asked at once (default ${DEFAULT_FANOUT})`,
      complete: "none",
    },
    ROOT_OPTION,
  ],
  args: [
    { name: "COMMAND", help: "the program to run on each node: a name or an absolute path" },
    { name: "ARGS", help: "its arguments, passed as they are (no shell)" },
  ],
  examples: [
    { command: "om exec -- uptime", says: "uptime on every node that is up, each line marked" },
    {
      command: "om exec -b -w 1-4 -- uname -r",
      says: "the kernel of nodes 1 to 4, identical answers gathered under one header",
    },
    {
      command: "om exec -t 5 -f 8 -- sh -c 'df -h / | tail -1'",
      says: "a pipeline, 8 nodes at a time, each killed after 5 s",
    },
    {
      command: "echo 'exec_allow = uptime, uname, /usr/local/bin/*' >> /etc/om/om.conf",
      says: "on a node: what om exec may run there (then systemctl reload om-discover)",
    },
  ],
  stopAtFirstArg: true,
};

/** -t's seconds as milliseconds; throws UsageError. */
export function parseTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const ms = Math.round(Number(text) * 1000);
  if (!/^\d+(\.\d+)?$/.test(text) || ms < 100 || ms > MAX_TIMEOUT_MS) {
    throw new UsageError(
      `Cannot use "${text}" for -t: not a number of seconds from 0.1 to ${MAX_TIMEOUT_MS / 1000}`,
    );
  }
  return ms;
}

/** The asking went wrong for every node alike (not root, no key here, the daemon is gone). */
class AskingFailed extends Error {
  override name = "AskingFailed";
}

/** Runs the command on the nodes and prints what each did. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const argv = parsed.args;
  const problem = argvProblem(argv);
  if (problem) throw new UsageError(`Cannot run it on the nodes: ${problem}`);
  const timeoutMs = parseTimeout(parsed.options.timeout as string | undefined);
  const fanout = (parsed.options.fanout as number | undefined) ?? DEFAULT_FANOUT;
  const wanted = parsed.options.nodes === undefined
    ? undefined
    : parseNodeList(String(parsed.options.nodes));
  const gather = parsed.options.gather === true;

  const settings = await loadSettings({ root: parsed.options.root as string | undefined }, ctx.env);
  const paths = resolveStatePaths(settings);
  const found = await readMap(paths).catch(() => undefined);
  if (!found) {
    ctx.err(`om exec: Cannot read the cluster map in ${paths.config}: is om discover running?\n`);
    return 1;
  }
  const members = mapNodes(found.map);
  const status = new Map<number, "up" | "down" | undefined>();
  for (const node of new Set([...members, ...(wanted ?? [])])) {
    const info = await readNodeInfo(paths.nodes, node).catch(() => undefined);
    status.set(node, info?.status);
  }
  const selection = selectNodes({
    self: found.self,
    members,
    status: (node) => status.get(node),
    wanted,
  });

  const results: ExecResult[] = [];
  const report = (result: ExecResult) => {
    results.push(result);
    if (gather) return;
    const shown = renderResult(result);
    ctx.out(shown.out);
    ctx.err(shown.err);
  };
  selection.notAsked.forEach(report);

  let failed: AskingFailed | undefined;
  const queue = [...selection.ask];
  const worker = async () => {
    let client: ChannelClient | undefined;
    try {
      for (let node = queue.shift(); node !== undefined && !failed; node = queue.shift()) {
        client ??= await connect(settings.root);
        try {
          const reply = await client.request(
            "exec.ask",
            jsonBytes({ node, argv, timeoutMs }),
            { timeoutMs: timeoutMs + RELAY_SLACK_MS + 25_000 },
          );
          report(readResult(reply, "exec.ask"));
        } catch (error) {
          if (error instanceof RemoteError) throw new AskingFailed(error.error);
          // This node's answer is lost; the next one gets a new connection.
          report(
            notRun(node, {
              kind: "unreachable",
              reason: error instanceof Error ? error.message : String(error),
            }),
          );
          await client.close().catch(() => {});
          client = undefined;
        }
      }
    } catch (error) {
      failed ??= error instanceof AskingFailed ? error : new AskingFailed(String(error));
    } finally {
      await client?.close().catch(() => {});
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(fanout, selection.ask.length) }, () => worker()),
  );
  if (failed) {
    ctx.err(`om exec: ${failed.message}\n`);
    return Math.max(1, overallStatus(results));
  }
  if (results.length === 0) {
    ctx.err("om exec: no node to run on\n");
    return 1;
  }
  if (gather) {
    const shown = renderGroups(gatherResults(results));
    ctx.out(shown.out);
    ctx.err(shown.err);
  }
  return overallStatus(results);
}

/** A connection to this node's om discover, or AskingFailed saying why there is none. */
async function connect(root: string): Promise<ChannelClient> {
  try {
    return await connectLocal(root, { timeoutMs: 5000 });
  } catch (error) {
    throw new AskingFailed(localFailure(error, root));
  }
}
