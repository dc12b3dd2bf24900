/**
 * Shared by the integration tests: a fresh lab per test with a unique name, always removed
 * afterwards, with a sweep of anything left carrying its name.
 */
import assert from "node:assert/strict";
import type { NodeSpec } from "../../lib/lab/plan.ts";
import { CGROUP_CONTROLLERS, type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { cgroupParent } from "../../lib/lab/cgroups.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { createLab } from "../../lib/lab/create.ts";
import { destroyLab } from "../../lib/lab/destroy.ts";
import { startDaemon } from "../../lib/lab/daemons.ts";
import { waitForAgreement } from "../../lib/lab/maps.ts";
import { exists } from "../../lib/base/fs.ts";
import { sleep } from "../../lib/base/time.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import type { MigrationFaults } from "../../lib/migration/faults.ts";

/** Whether something is at a path (lib/base/fs.ts's answer; the tests import it from here). */
export { exists };

/** Integration tests need root (namespaces, cgroups). */
export const ROOT = Deno.uid() === 0;
const decoder = new TextDecoder();

let serial = 0;
/** A lab name no other test (or run) uses. */
export function uniqueName(tag: string): string {
  return `t${tag}${Deno.pid}x${serial++}`;
}

export async function sh(command: string): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command("sh", { args: ["-c", command], stderr: "inherit" })
    .output();
  return { code: output.code, out: decoder.decode(output.stdout) };
}

/** The namespaces with this lab's names. */
export async function namespacesOf(name: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir("/run/netns")) {
      if (new RegExp(`^${name}-(sw|\\d+)$`).test(entry.name)) found.push(entry.name);
    }
  } catch { /* no /run/netns */ }
  return found.sort();
}

/** The lab's cgroup directories that exist. */
export async function cgroupsOf(name: string): Promise<string[]> {
  const [mountinfo, self] = await Promise.all([
    Deno.readTextFile("/proc/self/mountinfo"),
    Deno.readTextFile("/proc/self/cgroup"),
  ]);
  const found: string[] = [];
  for (const controller of CGROUP_CONTROLLERS) {
    const parent = cgroupParent(controller, mountinfo, self);
    if (parent && await exists(`${parent}/${name}`)) found.push(`${parent}/${name}`);
  }
  return found;
}

/** The backstop: removes whatever carries this lab's name, whatever destroyLab did. */
export async function sweep(name: string): Promise<void> {
  for (const group of await cgroupsOf(name)) {
    for await (const entry of Deno.readDir(group)) {
      if (!entry.isDirectory) continue;
      const procs = await Deno.readTextFile(`${group}/${entry.name}/cgroup.procs`);
      for (const pid of procs.split("\n").filter(Boolean)) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* gone */ }
      }
      for (let i = 0; i < 50; i++) {
        try {
          await Deno.remove(`${group}/${entry.name}`);
          break;
        } catch {
          await sleep(20);
        }
      }
    }
    await Deno.remove(group).catch(() => {});
  }
  for (const namespace of await namespacesOf(name)) await sh(`ip netns delete ${namespace}`);
}

/** Runs `fn` with a fresh lab; always removes it (and sweeps) afterwards. */
export async function withLab(
  tag: string,
  nodes: NodeSpec[],
  fn: (lab: Lab) => Promise<void>,
  options: { cpus?: number; memory?: number; key?: boolean; http?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
  const name = uniqueName(tag);
  let lab: Lab | undefined;
  try {
    lab = await createLab({ name, dir, nodes, ...options });
    await fn(lab);
  } finally {
    try {
      if (lab) await destroyLab(lab, { graceMs: 1000 });
    } finally {
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/** Runs a command in a node and returns its standard output (asserting success). */
export async function inNode(lab: Lab, index: number, argv: string[]): Promise<string> {
  const output = await execInNode(lab, index, argv, { stdout: "piped", stderr: "piped" }).output();
  assert.equal(output.code, 0, `${argv.join(" ")}: ${decoder.decode(output.stderr)}`);
  return decoder.decode(output.stdout);
}

/** Runs a command in a node; returns code, stdout and stderr (whatever the code). */
export async function runIn(
  lab: Lab,
  index: number,
  argv: string[],
  env?: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> {
  const output = await execInNode(lab, index, argv, { stdout: "piped", stderr: "piped", env })
    .output();
  return {
    code: output.code,
    out: decoder.decode(output.stdout),
    err: decoder.decode(output.stderr),
  };
}

/**
 * Starts a command in a node with its output piped and collected as it comes (`sink`); `finish`
 * waits for its exit code and the rest of its output.
 */
export function startIn(lab: Lab, index: number, argv: string[], stdin: "null" | "piped" = "null") {
  const child = execInNode(lab, index, argv, { stdin, stdout: "piped", stderr: "piped" });
  const sink = { out: "", err: "" };
  const done = Promise.all([
    (async () => {
      for await (const c of child.stdout) sink.out += decoder.decode(c, { stream: true });
    })(),
    (async () => {
      for await (const c of child.stderr) sink.err += decoder.decode(c, { stream: true });
    })(),
  ]);
  return {
    child,
    sink,
    async finish() {
      const status = await child.status;
      await done;
      return status.code;
    },
  };
}

/** A node daemon's counters (`omdiscd.stats`, written every 250 ms). */
export async function stats(lab: Lab, index: number) {
  return JSON.parse(await Deno.readTextFile(`${nodeRoot(lab, index)}/omdiscd.stats`));
}

/** Starts every node's daemon (with extra flags and environment) and waits until all maps agree. */
export async function startAll(
  lab: Lab,
  args: string[] = [],
  env: Record<string, string> = {},
  faults?: MigrationFaults,
): Promise<void> {
  const program = faults ? faultProgram(faults) : undefined;
  for (const node of lab.record.nodes) {
    await startDaemon(lab, node.index, { args, env, ...(program ? { program } : {}) });
  }
  const agreement = await waitForAgreement(lab, { timeoutMs: 20_000 });
  assert.ok(agreement.agreed, `maps do not agree: ${JSON.stringify(agreement.views)}`);
}

/**
 * What the lab runs in place of `om discover` for a node whose migrations suffer `faults`
 * (tests/tools/faultnode.ts, under the same Deno and flags as om itself).
 */
export function faultProgram(faults: MigrationFaults): string[] {
  const [deno, ...rest] = omCommand([]);
  const main = rest.findIndex((arg) => arg.endsWith("/main.ts"));
  return [
    deno,
    ...rest.slice(0, main),
    decodeURIComponent(new URL("./faultnode.ts", import.meta.url).pathname),
    JSON.stringify(faults),
  ];
}

/**
 * For tests that move jobs by hand: every node gets admin/stay (mosctl stay), so that the
 * balancer (tests/integration/balance_test.ts) moves nothing behind their back.
 */
export async function manualOnly(lab: Lab): Promise<void> {
  for (const node of lab.record.nodes) {
    await Deno.mkdir(`${nodeRoot(lab, node.index)}/admin`, { recursive: true });
    await Deno.writeTextFile(`${nodeRoot(lab, node.index)}/admin/stay`, "1\n");
  }
}

/**
 * One request over the node-to-node channel from inside node `index` to `host`
 * (tests/tools/chanreq.ts): with a key file or none, a JSON body or none, as root or as uid
 * `asUid` (with its primary group `gid`). Its output is the reply, or "refused: ..." / "error: ...".
 */
export function channelRequest(
  lab: Lab,
  index: number,
  host: string,
  command: string,
  options: { key?: string; body?: unknown; as?: { uid: number; gid: number } } = {},
) {
  const argv = [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    new URL("./chanreq.ts", import.meta.url).pathname,
    host,
    command,
    options.key ?? "-",
    ...(options.body === undefined ? [] : [JSON.stringify(options.body)]),
  ];
  const as = options.as;
  const user = as
    ? [
      "setpriv",
      `--reuid=${as.uid}`,
      `--regid=${as.gid}`,
      "--clear-groups",
      "--",
      "env",
      "HOME=/tmp",
    ]
    : [];
  return runIn(lab, index, [...user, ...argv]);
}
