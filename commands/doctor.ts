/**
 * `om doctor`: checks this node for what om needs and says how to fix each miss (lib/doctor/):
 * the daemon, its ports, multicast, the cluster key, CRIU and the kernel features moves use, the
 * programs jobs start with, the state tree on tmpfs, cgroups. Exits 0 only when nothing essential
 * is missing.
 */
import type { CommandSpec, Parsed } from "../lib/cli/parser.ts";
import { UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { listInterfaces, type NetInterface } from "../lib/discovery/interfaces.ts";
import { runDoctor } from "../lib/doctor/doctor.ts";
import { renderReport } from "../lib/doctor/report.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("doctor"),
  usage: ["om doctor [--json] [--root DIR]"],
  description: `Checks this node for what om needs, one line per check (ok, warn or FAIL), and
says how to fix each miss:
  daemon       om discover runs: its pid file <root>/omdiscd.pid names a live om discover
  udp-port     UDP port (20301) free, or held by that daemon
  tcp-port     TCP channel_port (20302) free, or held by that daemon
  multicast    the interface om discover talks on has an address, and a route leads to the group
  key          a cluster key is set, is an om key file and readable by root alone (no key: no
               job moves between nodes)
  criu         the daemon's CRIU (its OM_CRIU, else criu on its PATH) passes criu check and is
               4 or later
  pre-copy     dirty-memory tracking (criu check --feature mem_dirty_track): a job's memory is
               copied while it runs, so it is frozen only for the last of it
  userfaultfd  criu check --feature uffd (CRIU's lazy, post-copy restores)
  page-cipher  OpenSSL's libcrypto.so.3 seals moved jobs' pages (without it node:crypto does,
               about 3 times slower, and jobs stay frozen longer)
  tools        perl, unshare and setsid, which every job starts with
  state-tree   the state tree is on tmpfs (a moved job's images land there)
  cgroups      for om lab: cgroup v1 cpu, cpuacct, memory; in a lab node, the node's groups
  exec-cgroup  cgroup v2 for the daemon: om exec runs each command in a group of its own, and
               its time limit kills all it started
A FAIL is something om needs; a warn is optional, or could not be checked (run om doctor as
root: criu check and other processes' descriptors need it). Exits 0 only when nothing failed.`,
  options: [
    { name: "json", flags: ["--json"], help: "print the checks as one JSON object" },
    ROOT_OPTION,
  ],
  examples: [
    { command: "om doctor", says: "one line per check, a fix under each miss, a verdict" },
    {
      command: "om doctor --json | jq '.checks[] | select(.status != \"ok\")'",
      says: "the misses, with their fixes",
    },
    { command: "om lab exec 2 -- om doctor", says: "the same, for node 2 of a lab" },
  ],
};

/**
 * Runs the checks and prints them. `options.interfaces` and `options.uid` replace this machine's
 * interfaces and this process's uid (tests); every other input comes from the settings (a test
 * points OM_PROC at a fake /proc).
 */
export async function run(
  parsed: Parsed,
  ctx: Context,
  options: { interfaces?: readonly NetInterface[]; uid?: number } = {},
): Promise<number> {
  if (parsed.args.length > 0) {
    throw new UsageError(`Cannot use "${parsed.args[0]}": doctor takes no arguments`);
  }
  const settings = await loadSettings(
    { root: parsed.options.root as string | undefined },
    ctx.env,
  );
  const report = await runDoctor({
    settings,
    env: ctx.env,
    uid: options.uid ?? Deno.uid() ?? -1,
    interfaces: options.interfaces ?? listInterfaces(),
    now: ctx.now,
  });
  if (parsed.options.json) {
    ctx.out(JSON.stringify(report, null, 2) + "\n");
  } else {
    ctx.out(
      renderReport(
        report,
        `om doctor: this node (configuration ${settings.configFile}, state tree ${settings.root})`,
      ),
    );
  }
  return report.ok ? 0 : 1;
}
