/**
 * `om lab`: a local virtual cluster. `up` makes N nodes in network namespaces on one machine and
 * starts `om discover -n` in each; `exec` runs a command inside a node; `status` lists the
 * nodes; `down` removes exactly what `up` made. The work is done by lib/lab/, which tests and
 * benchmarks use directly.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import type { Context } from "../lib/cli/context.ts";
import { formatNodeId } from "../lib/base/ipv4.ts";
import { LAB_HTTP_PORT, MAX_NETS, MAX_NODES, parseSize, planLab } from "../lib/lab/plan.ts";
import {
  DEFAULT_LAB_DIR,
  DEFAULT_LAB_NAME,
  findNode,
  type Lab,
  labNodeIds,
  listLabs,
  loadLab,
} from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
import { createLab, LabExistsError } from "../lib/lab/create.ts";
import { provideCriu } from "../lib/lab/criu.ts";
import { destroyLab } from "../lib/lab/destroy.ts";
import { startDaemon } from "../lib/lab/daemons.ts";
import { type Agreement, waitForAgreement } from "../lib/lab/maps.ts";
import { type LabStatus, labStatus } from "../lib/lab/status.ts";
import { renderShowmap, showmapView } from "../lib/views/showmap.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("lab"),
  usage: [
    "om lab up N [--name NAME] [--nets K] [--cpus C] [--memory SIZE] [--timeout S] [--no-wait]" +
    " [-- DISCOVER-ARGS...]",
    "om lab exec I [--name NAME] -- CMD [ARGS...]",
    "om lab status [--name NAME] [--json]",
    "om lab down [--name NAME]",
  ],
  description: `Each node I is a network namespace NAME-I with eth0 = 10.77.0.I/24, a default route
on eth0 and lo up. The nodes of network K hang on bridge brK (multicast snooping off) in the
namespace NAME-sw: the host's own namespace gets no interface, address or route. With --nets K
the nodes go round-robin over K networks (node I on network (I-1) mod K) and node 1 is the gateway: it
has ethK on every network and its daemon runs with -i eth0,eth1,... to relay.

Every node has its own state tree <lab dir>/NAME/nodeI/root, configuration file
<lab dir>/NAME/nodeI/om.conf, and cgroups NAME/nodeI in the cgroup v1 cpu, cpuacct and memory
hierarchies (below the cgroup om runs in). Its processes see OM_ROOT, OM_CONFIG, OM_CGROUP_CPU,
OM_CGROUP_CPUACCT, OM_CGROUP_MEMORY, OM_LAB and OM_LAB_NODE, over up's own environment: an
OM_EXEC_ALLOW given to up reaches every daemon (om exec). The daemon of node I logs to
<lab dir>/NAME/nodeI/discover.log. The lab directory is /run/om-lab, or OM_LAB_DIR.

'up' waits until every node's map holds exactly the lab's nodes, then prints node 1's map; when
they do not agree in time it says who sees what, exits 1 and leaves the lab up to look at.
Everything 'up' makes is recorded in <lab dir>/NAME/lab.json as it is made; 'down' removes
exactly that, also after a failed 'up'. 'exec' exits with the command's status (128+n for
signal n). Needs root, ip (iproute2; installed with apt-get when missing), nsenter and setsid.

CRIU: 'up' gives every node's processes OM_CRIU, a CRIU that moves jobs, provided as scripts/test
provides it to the tests and by the same script of this clone, scripts/install-criu: the system's
criu when it passes 'criu check' and is 4 or later, else Debian 13's criu and its libraries,
fetched once with apt on private lists and unpacked into .deno/criu (the system is left as it
was; needs apt-get, dpkg and the Debian archive keyring). An OM_CRIU in up's environment is used
as given, unchecked. A lab is a tool of a clone of om: a compiled om has no scripts/, so it takes
a criu from PATH that passes 'criu check', and without one the nodes find each other but move no
jobs. After the map, 'up' prints the next things to try: a job, a move, om stress.

Status page: every node serves the cluster's live status page and its JSON API on its eth0
address, port ${LAB_HTTP_PORT} (http = 10.77.0.I:${LAB_HTTP_PORT} in its om.conf); 'up' prints node 1's.
The host's namespace has no route to the lab: open it from inside a node (om lab exec 1 --
curl -s http://10.77.0.1:${LAB_HTTP_PORT}/api/nodes, or a browser run there), or write a
snapshot to look at anywhere (om lab exec 1 -- om status --html /tmp/cluster.html).`,
  verbs: [
    { name: "up", help: "make the nodes, start their daemons, wait for their maps to agree" },
    { name: "exec", help: "run a command inside node I (its namespace, cgroups, OM_ROOT)" },
    { name: "status", help: "list the nodes: addresses, daemon, size of their map" },
    { name: "down", help: "stop the daemons and remove everything the lab made" },
  ],
  args: [
    { name: "N", help: `up: the number of nodes, 1 to ${MAX_NODES}` },
    { name: "I", help: "exec: the node to run in" },
  ],
  options: [
    {
      name: "name",
      flags: ["--name"],
      value: "NAME",
      help: `the lab's name (default ${DEFAULT_LAB_NAME})`,
    },
    {
      name: "nets",
      flags: ["--nets"],
      value: "K",
      integer: [1, MAX_NETS],
      help: "up: spread the nodes over K networks, node 1 relaying (default 1)",
    },
    { name: "cpus", flags: ["--cpus"], value: "C", help: "up: CPUs per node, e.g. 0.5" },
    {
      name: "memory",
      flags: ["--memory"],
      value: "SIZE",
      help: "up: memory per node, e.g. 512M or 2G",
    },
    {
      name: "timeout",
      flags: ["--timeout"],
      value: "SECONDS",
      help: "up: how long to wait for the maps to agree (default 30)",
    },
    { name: "noWait", flags: ["--no-wait"], help: "up: start the daemons and return" },
    {
      name: "noKey",
      flags: ["--no-key"],
      help: "up: no cluster key (the nodes find each other, but move no jobs)",
    },
    { name: "json", flags: ["--json"], help: "status: print JSON" },
  ],
  examples: [
    {
      command: "om lab up 4",
      says: "lab omlab: 4 nodes up, maps agree after 0.4 s; node 1's map, the key, what to try",
    },
    {
      command: "OM_EXEC_ALLOW='*' om lab up 3",
      says: "three nodes on which om exec runs any command (om lab exec 1 -- om exec -- uptime)",
    },
    {
      command: "OM_CRIU=/opt/criu/sbin/criu om lab up 3",
      says: "three nodes that move jobs with that CRIU, used as given",
    },
    {
      command: "om lab up 9 --nets 3",
      says: "three networks of three nodes; node 1 is on all three and relays",
    },
    {
      command: "om lab up 3 --cpus 0.5 --memory 512M -- --announce-interval 1",
      says: "limited nodes whose daemons re-announce every second",
    },
    { command: "om lab exec 2 -- om showmap", says: "the map as node 2 sees it" },
    {
      command: `om lab exec 1 -- curl -s http://10.77.0.1:${LAB_HTTP_PORT}/api/nodes`,
      says: "node 1's status API: every node's figures as JSON",
    },
    { command: "om lab status --json", says: "the nodes, their daemons and maps, as JSON" },
    { command: "om lab down", says: "stops the daemons, removes the namespaces and cgroups" },
  ],
};

const VERB_OPTIONS: Record<string, readonly string[]> = {
  up: ["name", "nets", "cpus", "memory", "timeout", "noWait", "noKey"],
  exec: ["name"],
  status: ["name", "json"],
  down: ["name"],
};

/** Runs one verb. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  const [verb, ...rest] = parsed.args;
  if (verb === undefined) throw new UsageError("Cannot run lab: say up, exec, status or down");
  const allowed = VERB_OPTIONS[verb];
  if (!allowed) throw new UsageError(`Cannot run lab "${verb}": say up, exec, status or down`);
  for (const option of spec.options) {
    if (parsed.options[option.name] !== undefined && !allowed.includes(option.name)) {
      throw new UsageError(`Cannot use ${option.flags[0]} with "lab ${verb}"`);
    }
  }
  const name = (parsed.options.name as string | undefined) ?? DEFAULT_LAB_NAME;
  const dir = ctx.env("OM_LAB_DIR") || DEFAULT_LAB_DIR;
  switch (verb) {
    case "up":
      return await up(parsed, rest, name, dir, ctx);
    case "exec":
      return await exec(rest, name, dir, ctx);
    case "status":
      if (rest.length) throw new UsageError(`Cannot use "${rest[0]}": status takes no arguments`);
      return await status(name, dir, parsed.options.json === true, ctx);
    default:
      if (rest.length) throw new UsageError(`Cannot use "${rest[0]}": down takes no arguments`);
      return await down(name, dir, ctx);
  }
}

function positiveNumber(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) <= 0) {
    throw new UsageError(`Cannot use "${raw}" for ${flag}: not a positive number`);
  }
  return Number(raw);
}

async function up(
  parsed: Parsed,
  rest: string[],
  name: string,
  dir: string,
  ctx: Context,
): Promise<number> {
  const [count, ...discoverArgs] = rest;
  if (count === undefined || !/^\d+$/.test(count)) {
    throw new UsageError(`Cannot make a lab of "${count ?? ""}" nodes: say how many, 1 to 250`);
  }
  const nodes = Number(count);
  const nets = (parsed.options.nets as number | undefined) ?? 1;
  let plan;
  try {
    plan = planLab(nodes, { nets });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const cpus = positiveNumber(parsed.options.cpus as string | undefined, "--cpus");
  const timeout = positiveNumber(parsed.options.timeout as string | undefined, "--timeout") ?? 30;
  let memory: number | undefined;
  if (parsed.options.memory !== undefined) {
    try {
      memory = parseSize(parsed.options.memory as string);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  await preflight(ctx);
  const existing = await loadLab(dir, name);
  if (existing) {
    ctx.err(
      `om lab: Cannot make lab "${name}": it exists (${existing.record.nodes.length} nodes, ` +
        `made ${existing.record.created}). Use it, or remove it first: om lab down --name ${name}\n`,
    );
    return 1;
  }

  const started = ctx.now();
  const criu = await labCriu(ctx);
  let lab: Lab;
  try {
    lab = await createLab({
      name,
      dir,
      nodes: plan,
      cpus,
      memory,
      key: parsed.options.noKey !== true,
      criu,
      http: LAB_HTTP_PORT,
      now: ctx.now,
      log: (message) => {
        if (message.startsWith("no cgroup")) ctx.err(`om lab: ${message}\n`);
      },
    });
  } catch (error) {
    if (error instanceof LabExistsError) {
      ctx.err(`om lab: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  try {
    for (const node of lab.record.nodes) {
      await startDaemon(lab, node.index, { args: discoverArgs });
    }
  } catch (error) {
    await destroyLab(lab).catch(() => {});
    throw error;
  }
  const size = `${nodes} node${nodes === 1 ? "" : "s"}`;
  if (parsed.options.noWait) {
    ctx.out(`lab ${name}: ${size} up, daemons started (not waiting for the maps)\n`);
    return 0;
  }
  const agreement = await waitForAgreement(lab, { timeoutMs: timeout * 1000 });
  const seconds = ((ctx.now() - started) / 1000).toFixed(2);
  if (agreement.agreed) {
    const first = agreement.views.find((v) => v.index === lab.record.nodes[0].index)!;
    ctx.out(`lab ${name}: ${size} up, maps agree after ${seconds} s\n`);
    ctx.out(renderShowmap(showmapView(first.self!, first.map!)));
    ctx.out(statusPage(lab, omProgram()));
    ctx.out(
      lab.record.key
        ? `cluster key: ${lab.record.key} (named by every node's om.conf)\n`
        : "no cluster key (--no-key): the nodes find each other, but move no jobs\n",
    );
    if (lab.record.key) ctx.out(nextSteps(lab, omProgram()));
    return 0;
  }
  ctx.err(await disagreement(lab, agreement, seconds));
  return 1;
}

/**
 * The lab's CRIU (lib/lab/criu.ts), or undefined, said why, when there is none: the lab is still
 * made, its nodes find each other but move no jobs.
 */
async function labCriu(ctx: Context): Promise<string | undefined> {
  try {
    const criu = await provideCriu({
      env: ctx.env,
      now: ctx.now,
      log: (line) => ctx.err(`om lab: ${line}\n`),
    });
    return criu.binary;
  } catch (error) {
    ctx.err(`om lab: ${(error as Error).message}; the nodes will move no jobs\n`);
    return undefined;
  }
}

/** How to run om in a node's command line: ./om in the clone it comes from, else its path. */
function omProgram(): string {
  // A compiled om is its own executable; from a clone, the launcher beside main.ts.
  if (!/(^|\/)deno$/.test(Deno.execPath())) return Deno.execPath();
  const launcher = decodeURIComponent(new URL("../om", import.meta.url).pathname);
  return launcher === `${Deno.cwd()}/om` ? "./om" : launcher;
}

/**
 * Where node 1's status page is, and how to look at it: the host's namespace has no route to the
 * lab, so from inside a node, or as a snapshot file.
 */
export function statusPage(lab: Lab, om: string): string {
  const { http, name } = lab.record;
  if (http === undefined) return "";
  const first = lab.record.nodes[0];
  const url = `http://${first.nics[0].address}:${http}/`;
  const inNode = `${om} lab exec ${first.index}${
    name === DEFAULT_LAB_NAME ? "" : ` --name ${name}`
  } --`;
  return [
    `status page: ${url} (every node serves one on its address, port ${http})`,
    `  from inside the lab: ${inNode} curl -s ${url}api/nodes`,
    `  as a file to open anywhere: ${inNode} ${om} status --html /tmp/cluster.html`,
    "",
  ].join("\n");
}

/** What to try once the lab is up: a job on node 1, moving it, and the stress test. */
export function nextSteps(lab: Lab, om: string): string {
  const { name, criu } = lab.record;
  const [first, second] = lab.record.nodes;
  const flag = name === DEFAULT_LAB_NAME ? "" : ` --name ${name}`;
  const inNode = (index: number) => `${om} lab exec ${index}${flag} --`;
  const lines = [
    "",
    "Try next:",
    `  ${inNode(first.index)} ${om} run -- sh -c 'echo job $OM_JOB; i=0; while sleep 1; ` +
    `do i=$((i+1)); echo $i; done'`,
    `      a job on node ${first.index}: it prints its PID, then counts (Ctrl-C ends it)`,
  ];
  if (second && criu) {
    lines.push(
      `  ${inNode(first.index)} ${om} migrate PID ${second.index}`,
      `      from another terminal: moves it to node ${second.index}, counting on ` +
        `(${inNode(first.index)} ${om} ps lists it)`,
    );
  }
  if (criu) {
    lines.push(
      `  ${inNode(first.index)} ${om} stress`,
      "      the stress test: jobs that move between the nodes and must compute the right answer",
    );
  } else {
    lines.push("  (no CRIU for the nodes, said above: jobs run, but do not move)");
  }
  return lines.join("\n") + "\n";
}

/** Says which nodes do not see the expected map, and what they see instead. */
async function disagreement(lab: Lab, agreement: Agreement, seconds: string): Promise<string> {
  const { name } = lab.record;
  const ids = (list: readonly number[]) => list.map(formatNodeId).join(" ");
  const lines = [
    agreement.dead.length
      ? `om lab: lab ${name}: the daemon of node ${agreement.dead.join(", ")} exited`
      : `om lab: lab ${name}: the maps do not agree after ${seconds} s`,
    `  expected ${agreement.expected.length} nodes: ${ids(agreement.expected)}`,
  ];
  const want = agreement.expected.join(",");
  for (const view of agreement.views) {
    const node = findNode(lab, view.index);
    const where = `  node ${view.index} (${node.nics[0].address})`;
    if (agreement.dead.includes(view.index)) {
      lines.push(`${where}: daemon exited; last lines of ${node.daemon?.log}:`);
      for (const line of await tail(node.daemon?.log, 5)) lines.push(`      ${line}`);
    } else if (view.error) {
      lines.push(`${where}: ${view.error}`);
    } else if (!view.ids) {
      lines.push(`${where}: no map yet`);
    } else if (view.ids.join(",") !== want) {
      const missing = agreement.expected.filter((id) => !view.ids!.includes(id));
      const extra = view.ids.filter((id) => !agreement.expected.includes(id));
      lines.push(
        `${where}: sees ${view.ids.length} (${ids(view.ids)})` +
          (missing.length ? `, misses ${ids(missing)}` : "") +
          (extra.length ? `, also ${ids(extra)}` : ""),
      );
    }
  }
  lines.push(
    `The lab is left up to look at: om lab status --name ${name}; logs in ${lab.record.dir}; ` +
      `remove it with: om lab down --name ${name}`,
  );
  return lines.join("\n") + "\n";
}

async function tail(path: string | undefined, count: number): Promise<string[]> {
  if (!path) return [];
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-count);
  } catch {
    return ["(no log)"];
  }
}

async function exec(rest: string[], name: string, dir: string, ctx: Context): Promise<number> {
  const [index, ...argv] = rest;
  if (index === undefined || !/^\d+$/.test(index)) {
    throw new UsageError(`Cannot run in node "${index ?? ""}": say which node, then -- CMD`);
  }
  if (argv.length === 0) throw new UsageError("Cannot run nothing: give -- CMD [ARGS...]");
  requireRoot();
  const lab = await requireLab(name, dir, ctx);
  if (!lab) return 1;
  findNode(lab, Number(index));
  const child = execInNode(lab, Number(index), argv);
  // The terminal sends ^C to the child too: let it decide. Pass a SIGTERM on.
  const ignore = () => {};
  const forward = () => {
    try {
      child.kill("SIGTERM");
    } catch { /* ended already */ }
  };
  Deno.addSignalListener("SIGINT", ignore);
  Deno.addSignalListener("SIGTERM", forward);
  try {
    const status = await child.status;
    return status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", ignore);
    Deno.removeSignalListener("SIGTERM", forward);
  }
}

async function status(name: string, dir: string, json: boolean, ctx: Context): Promise<number> {
  const lab = await requireLab(name, dir, ctx);
  if (!lab) return 1;
  const view = await labStatus(lab);
  ctx.out(json ? JSON.stringify(view, null, 2) + "\n" : renderStatus(view, labNodeIds(lab).length));
  return 0;
}

/** The human table of `om lab status`. */
export function renderStatus(view: LabStatus, size: number): string {
  const limits = [
    view.cpus !== undefined ? `${view.cpus} CPUs` : "",
    view.memory !== undefined ? `${view.memory} bytes` : "",
  ].filter(Boolean).join(", ");
  const rows = view.nodes.map((node) => [
    String(node.index),
    node.namespace,
    node.addresses.join(" "),
    node.pid === undefined ? "-" : `${node.pid} ${node.alive ? "alive" : "dead"}`,
    node.mapNodes === undefined ? "no map" : `${node.mapNodes} of ${size}`,
  ]);
  const head = ["NODE", "NAMESPACE", "ADDRESSES", "DAEMON", "MAP"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [
    `lab ${view.name}: ${view.nodes.length} nodes, made ${view.created}, switch ` +
    `${view.switchNamespace}, files in ${view.dir}${limits ? `; per node ${limits}` : ""}`,
    line(head),
    ...rows.map(line),
  ].join("\n") + "\n";
}

async function down(name: string, dir: string, ctx: Context): Promise<number> {
  requireRoot();
  const lab = await requireLab(name, dir, ctx);
  if (!lab) return 1;
  await destroyLab(lab, { log: (message) => ctx.err(`om lab: ${message}\n`) });
  ctx.out(`lab ${name}: removed (${lab.record.nodes.length} nodes)\n`);
  return 0;
}

async function requireLab(name: string, dir: string, ctx: Context): Promise<Lab | undefined> {
  const lab = await loadLab(dir, name);
  if (lab) return lab;
  const others = await listLabs(dir);
  ctx.err(
    `om lab: Cannot find lab "${name}" in ${dir}: no such lab` +
      (others.length ? ` (labs there: ${others.join(", ")}; choose one with --name)` : "") + "\n",
  );
  return undefined;
}

function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error("Cannot make or remove a lab: om lab needs root (namespaces and cgroups)");
  }
}

/** Finds `program` in PATH (and the sbin directories, which a user's PATH may lack). */
async function which(program: string, ctx: Context): Promise<string | undefined> {
  const dirs = [...(ctx.env("PATH") ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of dirs.filter(Boolean)) {
    try {
      const info = await Deno.stat(`${dir}/${program}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111)) return `${dir}/${program}`;
    } catch { /* not here */ }
  }
  return undefined;
}

/** Root, and the programs a lab needs; installs iproute2 when `ip` is missing. */
async function preflight(ctx: Context): Promise<void> {
  requireRoot();
  if (!await which("ip", ctx)) {
    ctx.err("om lab: ip is missing: installing iproute2 (apt-get install -y iproute2)\n");
    const install = () =>
      new Deno.Command("apt-get", {
        args: ["install", "-y", "--no-install-recommends", "iproute2"],
        env: { DEBIAN_FRONTEND: "noninteractive" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    let result: Deno.CommandOutput;
    try {
      result = await install();
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error("Cannot install iproute2: apt-get is missing; install iproute2 by hand");
      }
      throw error;
    }
    if (!result.success) {
      // A fresh system may have no package lists yet.
      ctx.err("om lab: apt-get install failed; running apt-get update and trying again\n");
      await new Deno.Command("apt-get", { args: ["update"], stdout: "null", stderr: "null" })
        .output();
      result = await install();
    }
    if (!result.success || !await which("ip", ctx)) {
      const why = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-3).join("; ");
      throw new Error(`Cannot install iproute2 with apt-get: ${why || "ip is still missing"}`);
    }
  }
  for (const program of ["nsenter", "setsid"]) {
    if (!await which(program, ctx)) {
      throw new Error(`Cannot make a lab: ${program} (util-linux) is missing`);
    }
  }
}
