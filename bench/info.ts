/**
 * The node-information benchmark (root only):
 *
 * - propagation: in a 16-node lab, `om mosctl setspeed` on one node, and the time until every
 *   other node's `nodes/<id>/speed` shows it, beside the information interval (the design bound:
 *   a node publishes once per interval) and a datagram's own way (a leave to every node) measured
 *   in the same lab.
 * - cost at idle: the daemon's CPU time and resident memory over a quiet period, alone in a
 *   1-node lab and as one of 32 nodes, beside an idle Deno process in the same kind of node.
 * - the status page's cost at idle: node 1's daemon of a 3-node lab with the page on, beside
 *   node 1 of a second lab without it (the baseline), both measured over the same seconds: with
 *   nobody watching, with one real headless Chromium watching it live (tests/tools/browser.ts,
 *   in node 2's network namespace and outside every node's cgroups, so that only the daemon's
 *   work counts), and with that browser's tab hidden; and node 3 of each, which the page asks.
 *
 *   deno run -A --unstable-net bench/info.ts [--rounds 3] [--idle-seconds 10] [--page-rounds 4]
 */
import { parseArgs } from "node:util";
import { LAB_PARENT, startDaemons, withBenchLab } from "./benchlab.ts";
import { findNode, type Lab, nodeRoot } from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
import { startDaemon, stopDaemon } from "../lib/lab/daemons.ts";
import { waitForAgreement } from "../lib/lab/maps.ts";
import { LAB_HTTP_PORT } from "../lib/lab/plan.ts";
import { readNodeInfo } from "../lib/state/nodestate.ts";
import { retryUntil } from "../lib/base/retry.ts";
import { omCommand } from "../lib/base/selfexec.ts";
import { withBrowser } from "../tests/tools/browser.ts";
import {
  benchMain,
  goalLine,
  machine,
  median,
  ms,
  ratio,
  renderTable,
  saveResults,
} from "./report.ts";

interface Options {
  rounds: number;
  idleSeconds: number;
  pageRounds: number;
}

export function parseInfoArgs(args: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...args],
    options: {
      rounds: { type: "string" },
      "idle-seconds": { type: "string" },
      "page-rounds": { type: "string" },
    },
  });
  const rounds = Number(values.rounds ?? 3);
  const idleSeconds = Number(values["idle-seconds"] ?? 10);
  const pageRounds = Number(values["page-rounds"] ?? 4);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new TypeError(`Cannot use --rounds ${values.rounds}`);
  }
  if (!(idleSeconds > 0)) {
    throw new TypeError(`Cannot use --idle-seconds ${values["idle-seconds"]}`);
  }
  if (!Number.isInteger(pageRounds) || pageRounds < 1) {
    throw new TypeError(`Cannot use --page-rounds ${values["page-rounds"]}`);
  }
  return { rounds, idleSeconds, pageRounds };
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

/** CPU ms and resident KiB of node `index`'s daemon (or idle process) over `seconds`. */
async function idleCost(lab: Lab, pid: number, seconds: number, index = 1) {
  const cpuacct = findNode(lab, index).cgroups.cpuacct;
  if (!cpuacct) throw new Error("no cpuacct cgroup: cannot measure CPU time");
  const usage = async () => Number((await Deno.readTextFile(`${cpuacct}/cpuacct.usage`)).trim());
  const before = await usage();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpuMs = (await usage() - before) / 1e6;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  return { cpuMsPerSecond: cpuMs / seconds, rssKiB };
}

/** The pid of the deno process under node `index`'s sh/nsenter wrapper. */
async function denoPid(lab: Lab, index = 1): Promise<number> {
  const cgroup = findNode(lab, index).cgroups.cpuacct!;
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

/** One idle measurement: CPU ms per second and resident KiB. */
interface Cost {
  cpuMsPerSecond: number;
  rssKiB: number;
}

/** (Re)starts node 1's daemon with `args`; returns once node 1 knows every node up again. */
async function restartNode1(lab: Lab, args: string[]): Promise<void> {
  await stopDaemon(lab, 1, { graceMs: 3000 });
  await startDaemon(lab, 1, { args });
  const agreement = await waitForAgreement(lab, { timeoutMs: 30_000 });
  if (!agreement.agreed) throw new Error("the maps do not agree after node 1's restart");
  const ids = lab.record.nodes.map((n) => n.index);
  await retryUntil(
    async () => {
      for (const id of ids) {
        if ((await readNodeInfo(`${nodeRoot(lab, 1)}/nodes`, id))?.status !== "up") return false;
      }
      return true;
    },
    30_000,
    { what: "node 1 to know every node up", intervalMs: 100 },
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));
}

/** Node 1's open event streams (its omdiscd.stats, `http.watchers`), undefined without a page. */
async function watchers(lab: Lab): Promise<number | undefined> {
  const stats = JSON.parse(await Deno.readTextFile(`${nodeRoot(lab, 1)}/omdiscd.stats`));
  return stats.http?.watchers;
}

/** The four daemons measured at once: node 1 (the page's) and node 3 (asked), in each lab. */
interface PagePair {
  /** Node 1 of the lab with the page on, and node 1 of the lab without it. */
  serving: { on: Cost; off: Cost };
  /** Node 3 of each: one of the nodes the page asks while watched. */
  asked: { on: Cost; off: Cost };
}

/**
 * Two 3-node labs at once, alike but for node 1's page: on in one (`--http`), off in the other,
 * the baseline. Each measurement takes node 1 and node 3 of both labs over the same seconds, so
 * that whatever else loads the machine loads both alike; `rounds` times each of: nobody watching,
 * one browser watching (a visible tab of headless Chromium in node 2's network namespace, outside
 * every node's cgroups, so only the daemon's work counts), and the same tab hidden (its stream
 * closed).
 */
async function pageIdle(seconds: number, rounds: number) {
  return await withBenchLab("infow", 3, (paged) =>
    withBenchLab("infon", 3, async (plain) => {
      await startDaemons(paged, { figures: true });
      await startDaemons(plain, { figures: true });
      const page = `${paged.record.nodes[0].nics[0].address}:${LAB_HTTP_PORT}`;
      await restartNode1(paged, ["--http", page]);
      await restartNode1(plain, []);
      const pids = {
        paged: [await denoPid(paged, 1), await denoPid(paged, 3)],
        plain: [await denoPid(plain, 1), await denoPid(plain, 3)],
      };
      const measure = async (): Promise<PagePair> => {
        const [on1, off1, on3, off3] = await Promise.all([
          idleCost(paged, pids.paged[0], seconds),
          idleCost(plain, pids.plain[0], seconds),
          idleCost(paged, pids.paged[1], seconds, 3),
          idleCost(plain, pids.plain[1], seconds, 3),
        ]);
        return { serving: { on: on1, off: off1 }, asked: { on: on3, off: off3 } };
      };
      const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));
      const samples: Record<PageCase, PagePair[]> = { nobody: [], watched: [], hidden: [] };
      const updates: number[] = [];
      for (let round = 0; round < rounds; round++) {
        samples.nobody.push(await measure());
        await withBrowser(async (browser) => {
          const tab = await browser.open(`http://${page}/`);
          await tab.waitFor(
            () =>
              document.getElementById("om-state")?.dataset.state === "live" &&
              document.querySelectorAll('#om-nodes tbody tr[data-status="up"]').length === 3,
            { what: "the page to be live with 3 nodes up", timeoutMs: 15_000 },
          );
          await settle();
          const first = Number(await tab.attribute("body", "data-updates"));
          samples.watched.push(await measure());
          // It watched all along: its stream open, the changes arriving.
          const last = Number(await tab.attribute("body", "data-updates"));
          if ((await watchers(paged)) !== 1 || (await tab.visibility()) !== "visible") {
            throw new Error("the browser did not watch the page throughout");
          }
          updates.push(last - first);
          await tab.hide();
          await retryUntil(async () => (await watchers(paged)) === 0, 5000, {
            what: "the hidden tab's stream to close",
          });
          await settle();
          samples.hidden.push(await measure());
          if (tab.errors.length) throw new Error(`the page's errors: ${tab.errors.join("; ")}`);
        }, { namespace: paged.record.nodes[1].namespace });
        await settle();
      }
      const summary = (pairs: PagePair[], which: "serving" | "asked") => {
        const cpu = pairs.map((p) => p[which].on.cpuMsPerSecond / p[which].off.cpuMsPerSecond);
        return {
          on: median(pairs.map((p) => p[which].on.cpuMsPerSecond)),
          off: median(pairs.map((p) => p[which].off.cpuMsPerSecond)),
          cpu: median(cpu),
          cpuLow: Math.min(...cpu),
          cpuHigh: Math.max(...cpu),
          rssOn: median(pairs.map((p) => p[which].on.rssKiB)),
          rssOff: median(pairs.map((p) => p[which].off.rssKiB)),
          rss: median(pairs.map((p) => p[which].on.rssKiB / p[which].off.rssKiB)),
        };
      };
      const cases = Object.fromEntries(
        PAGE_CASES.map((name) => [name, {
          serving: summary(samples[name], "serving"),
          asked: summary(samples[name], "asked"),
        }]),
      ) as Record<PageCase, { serving: PageSummary; asked: PageSummary }>;
      return { seconds, rounds, cases, updates, samples };
    }));
}

/** What the page's cost is measured in. */
const PAGE_CASES = ["nobody", "watched", "hidden"] as const;
type PageCase = typeof PAGE_CASES[number];

/**
 * Medians of one case: CPU ms/s and resident KiB with the page on and off, and their ratios (of
 * the CPU, also the lowest and highest of the rounds).
 */
interface PageSummary {
  on: number;
  off: number;
  cpu: number;
  cpuLow: number;
  cpuHigh: number;
  rssOn: number;
  rssOff: number;
  rss: number;
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
  console.log(
    `\nthe status page at idle over ${options.idleSeconds} s: node 1 of a 3-node lab with its ` +
      `page on, beside node 1 of a lab without it measured at the same time (the baseline); ` +
      `node 3, asked by the page, beside its own (${options.pageRounds} rounds, medians; x: ` +
      `the ratio on / off, and its range over the rounds)`,
  );
  const web = await pageIdle(options.idleSeconds, options.pageRounds);
  const pageRow = (name: string, c: { serving: PageSummary; asked: PageSummary }) => [
    name,
    c.serving.on.toFixed(2),
    c.serving.off.toFixed(2),
    ratio(c.serving.cpu),
    `${ratio(c.serving.cpuLow)}-${ratio(c.serving.cpuHigh)}`,
    (c.serving.rssOn / 1024).toFixed(1),
    (c.serving.rssOff / 1024).toFixed(1),
    ratio(c.serving.rss),
    c.asked.on.toFixed(2),
    c.asked.off.toFixed(2),
    ratio(c.asked.cpu),
    `${ratio(c.asked.cpuLow)}-${ratio(c.asked.cpuHigh)}`,
  ];
  console.log(
    renderTable([
      "node 1, page on",
      "cpu ms/s",
      "off",
      "x",
      "x range",
      "rss MiB",
      "off",
      "x",
      "node 3 ms/s",
      "off",
      "x",
      "x range",
    ], [
      pageRow("nobody watching", web.cases.nobody),
      pageRow("1 browser watching", web.cases.watched),
      pageRow("the browser's tab hidden", web.cases.hidden),
    ]),
  );
  console.log(
    `(the browser applied ${web.updates.join(", ")} changes in its ${options.idleSeconds} s)`,
  );
  console.log("");
  console.log(
    goalLine(
      "setspeed visible on every node within two intervals",
      Math.max(...prop.setspeed) <= 2 * prop.intervalMs,
      `worst ${ms(Math.max(...prop.setspeed))} ms, interval ${prop.intervalMs} ms`,
    ),
  );
  const path = await saveResults("info", {
    machine: machine(),
    propagation: prop,
    idle: cost,
    page: web,
  });
  console.log(`results: ${path}`);
}

if (import.meta.main) await benchMain("info", () => parseInfoArgs(Deno.args), runInfo);
