/**
 * The node-information benchmark (root only):
 *
 * - propagation: in a 16-node lab, `om mosctl setspeed` on one node, and the time until every
 *   other node's `nodes/<id>/speed` shows it, beside the information interval (the design bound:
 *   a node publishes once per interval) and a datagram's own way (a leave to every node) measured
 *   in the same lab.
 * - cost at idle: the daemon's CPU time and resident memory over a quiet period, alone in a
 *   1-node lab and as one of 32 nodes, beside an idle Deno process in the same kind of node.
 *
 *   deno run -A --unstable-net bench/info.ts [--rounds 3] [--idle-seconds 10]
 */
import { parseArgs } from "node:util";
import { LAB_PARENT, startDaemons, withBenchLab } from "./benchlab.ts";
import { findNode, type Lab, nodeRoot } from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
import { stopDaemon } from "../lib/lab/daemons.ts";
import { retryUntil } from "../lib/base/retry.ts";
import { omCommand } from "../lib/base/selfexec.ts";
import { benchMain, goalLine, machine, median, ms, renderTable, saveResults } from "./report.ts";

interface Options {
  rounds: number;
  idleSeconds: number;
}

export function parseInfoArgs(args: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...args],
    options: { rounds: { type: "string" }, "idle-seconds": { type: "string" } },
  });
  const rounds = Number(values.rounds ?? 3);
  const idleSeconds = Number(values["idle-seconds"] ?? 10);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new TypeError(`Cannot use --rounds ${values.rounds}`);
  }
  if (!(idleSeconds > 0)) {
    throw new TypeError(`Cannot use --idle-seconds ${values["idle-seconds"]}`);
  }
  return { rounds, idleSeconds };
}

/** Time until every node but `target` sees `target`'s speed as `speed`. */
async function everyoneSees(lab: Lab, target: number, speed: number): Promise<void> {
  const others = lab.record.nodes.map((n) => n.index).filter((i) => i !== target);
  await retryUntil(
    async () => {
      for (const viewer of others) {
        const text = await Deno.readTextFile(`${nodeRoot(lab, viewer)}/nodes/${target}/speed`)
          .catch(() => "");
        if (text.trim() !== String(speed)) return false;
      }
      return true;
    },
    20_000,
    { what: "every node to see the new speed", intervalMs: 5 },
  );
}

async function propagation(rounds: number) {
  const intervalMs = 1000;
  return await withBenchLab("infop", 16, async (lab) => {
    await startDaemons(lab, {
      args: ["--info-interval", String(intervalMs / 1000)],
      figures: true,
    });
    const setspeed: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const speed = 20000 + round;
      const output = await execInNode(lab, 5, omCommand(["mosctl", "setspeed", String(speed)]), {
        stdout: "null",
        stderr: "piped",
      }).output();
      if (output.code !== 0) {
        throw new Error(`mosctl setspeed: ${new TextDecoder().decode(output.stderr)}`);
      }
      const started = performance.now();
      await everyoneSees(lab, 5, speed);
      setspeed.push(performance.now() - started);
    }
    // A datagram's own way to every node, in the same lab: node 16 leaves.
    const ids = lab.record.nodes.map((n) => n.index).filter((i) => i !== 16);
    const leaveStart = performance.now();
    await stopDaemon(lab, 16, { graceMs: 3000 });
    await retryUntil(
      async () => {
        for (const viewer of ids) {
          const text = await Deno.readTextFile(`${nodeRoot(lab, viewer)}/nodes/16/status`);
          if (text.trim() !== "down") return false;
        }
        return true;
      },
      10_000,
      { intervalMs: 5 },
    );
    return { intervalMs, setspeed, leave: performance.now() - leaveStart };
  });
}

/** CPU ms and resident KiB of node 1's daemon (or idle process) over `seconds`. */
async function idleCost(lab: Lab, pid: number, seconds: number) {
  const cpuacct = findNode(lab, 1).cgroups.cpuacct;
  if (!cpuacct) throw new Error("no cpuacct cgroup: cannot measure CPU time");
  const usage = async () => Number((await Deno.readTextFile(`${cpuacct}/cpuacct.usage`)).trim());
  const before = await usage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpuMs = (await usage() - before) / 1e6;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  return { cpuMsPerSecond: cpuMs / seconds, rssKiB };
}

/** The pid of the deno process under node 1's sh/nsenter wrapper. */
async function denoPid(lab: Lab): Promise<number> {
  const cgroup = findNode(lab, 1).cgroups.cpuacct!;
  return await retryUntil(async () => {
    for (
      const pid of (await Deno.readTextFile(`${cgroup}/cgroup.procs`)).split("\n").filter(Boolean)
    ) {
      const exe = await Deno.readLink(`/proc/${pid}/exe`).catch(() => "");
      if (exe.endsWith("/deno") || exe.endsWith("/om")) return Number(pid);
    }
    return undefined;
  }, 10_000);
}

async function idle(seconds: number) {
  const floor = await withBenchLab("infof", 1, async (lab) => {
    const child = execInNode(lab, 1, [
      Deno.execPath(),
      "eval",
      "setInterval(() => {}, 1000)",
    ], { stdout: "null", stderr: "null" });
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return await idleCost(lab, await denoPid(lab), seconds);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  });
  const alone = await withBenchLab("infoa", 1, async (lab) => {
    await startDaemons(lab, { figures: true });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return await idleCost(lab, await denoPid(lab), seconds);
  });
  const among32 = await withBenchLab("infom", 32, async (lab) => {
    await startDaemons(lab, { figures: true });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return await idleCost(lab, await denoPid(lab), seconds);
  });
  return { seconds, floor, alone, among32 };
}

export async function runInfo(options: Options): Promise<void> {
  console.log(`node information: setspeed propagation in 16 nodes (${options.rounds} rounds)`);
  const prop = await propagation(options.rounds);
  const med = median(prop.setspeed);
  console.log(
    renderTable(["figure", "ms"], [
      ["information interval (design bound)", ms(prop.intervalMs)],
      ["a leave reaching 15 nodes (a datagram's way)", ms(prop.leave)],
      ["setspeed visible on all 15 others, median", ms(med)],
      ["setspeed visible on all 15 others, worst", ms(Math.max(...prop.setspeed))],
    ]),
  );
  console.log(
    `\nidle cost over ${options.idleSeconds} s (one node's process; state trees in ${
      LAB_PARENT ?? "a temporary directory"
    })`,
  );
  const cost = await idle(options.idleSeconds);
  const row = (name: string, c: { cpuMsPerSecond: number; rssKiB: number }) => [
    name,
    c.cpuMsPerSecond.toFixed(2),
    ((c.cpuMsPerSecond / 1000) * 100).toFixed(2),
    (c.rssKiB / 1024).toFixed(1),
  ];
  console.log(
    renderTable(["process", "cpu ms/s", "cpu %", "rss MiB"], [
      row("idle deno (floor)", cost.floor),
      row("om discover, alone", cost.alone),
      row("om discover, 1 of 32", cost.among32),
    ]),
  );
  console.log("");
  console.log(
    goalLine(
      "setspeed visible on every node within two intervals",
      Math.max(...prop.setspeed) <= 2 * prop.intervalMs,
      `worst ${ms(Math.max(...prop.setspeed))} ms, interval ${prop.intervalMs} ms`,
    ),
  );
  const path = await saveResults("info", { machine: machine(), propagation: prop, idle: cost });
  console.log(`results: ${path}`);
}

if (import.meta.main) await benchMain("info", () => parseInfoArgs(Deno.args), runInfo);
