/**
 * Where a page-link dump's time goes (root only, real CRIU; a diagnostic beside bench/migrate.ts,
 * not part of `deno task bench`): the same job (perl holding N MiB, default 256) dumped four ways
 * on this one node, interleaved round by round:
 *
 * - local: a plain `criu dump` into a tmpfs directory (the floor of bench/migrate.ts);
 * - link: `criu dump --page-server` through the page link (lib/migration/pagelink.ts: sealed
 *   between the two daemons' relays, lib/migration/pagerelay.ts) over loopback into a
 *   `criu page-server` writing to tmpfs: a migration's dump, without the lab's veth bridge;
 * - om receiver: the same dump and link into om's page receiver (lib/migration/pagereceiver.ts): the same
 *   images as criu's page server, spliced through a 1 MiB pipe;
 * - reserved: the same, with the room for the pages reserved before the dump (reservePages, from
 *   the job's private memory, pageReservation), as a migration dumps now.
 *
 * The figure is the dump's wall time from its go (the link made) to its exit; ratios are to the
 * local dump.
 *
 *   deno run -A --unstable-net bench/pagepath.ts [MB] [--rounds 10]
 */
import { parseArgs } from "node:util";
import { dumpArgs, pageServerArgs } from "../lib/criu/args.ts";
import { findCriu } from "../lib/criu/preflight.ts";
import { type Criu, dump } from "../lib/criu/run.ts";
import { startJob } from "../lib/criu/startjob.ts";
import { linkPages, newPageToken } from "../lib/migration/pagelink.ts";
import { listenForPages } from "../lib/migration/pagelistener.ts";
import { newPageSecret } from "../lib/migration/pageseal.ts";
import { pageReservation, receiverArgs, reservePages } from "../lib/migration/pagereceiver.ts";
import { LAB_PARENT } from "./benchlab.ts";
import { benchMain, machine, median, ms, ratio, renderTable, saveResults } from "./report.ts";

const WAYS = ["local", "link", "om receiver", "reserved"] as const;
type Way = typeof WAYS[number];

interface PagePathOptions {
  mb: number;
  rounds: number;
}

export function parsePagePathArgs(args: readonly string[]): PagePathOptions {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { rounds: { type: "string" } },
    allowPositionals: true,
  });
  const mb = Number(positionals[0] ?? 256);
  const rounds = Number(values.rounds ?? 10);
  if (!Number.isInteger(mb) || mb < 1) throw new RangeError(`not a size in MB: ${positionals[0]}`);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`not a number of rounds: ${values.rounds}`);
  }
  return { mb, rounds };
}

/** Waits until the job holds `mb` MiB (VmRSS). */
async function holding(pid: number, mb: number): Promise<void> {
  for (let tries = 0; tries < 600; tries++) {
    const rss = /VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/status`));
    if (rss && Number(rss[1]) / 1024 >= mb) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the job never held ${mb} MiB`);
}

/** One dump of a fresh job the way `way`; its milliseconds. */
async function dumpOnce(criu: Criu, way: Way, mb: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "om-bench-pages-", dir: LAB_PARENT });
  const job = await startJob([
    "perl",
    "-e",
    'my $x = "a" x ($ARGV[0] * 1048576); for (;;) { select(undef, undef, undef, 0.1) }',
    String(mb),
  ], { stdout: "null", stderr: "null" });
  try {
    await holding(job.pid, mb);
    if (way === "local") return (await dump(criu, { pid: job.pid, imagesDir: dir })).ms;
    const link = { token: newPageToken(), secret: newPageSecret() };
    await Deno.mkdir(`${dir}/in`);
    await Deno.mkdir(`${dir}/out`);
    const receiver = way === "link"
      ? [
        criu.binary,
        ...pageServerArgs({ imagesDir: `${dir}/in`, logFile: `${dir}/ps.log`, psSocket: 0 }),
      ]
      : receiverArgs({ imagesDir: `${dir}/in`, logFile: `${dir}/ps.log` });
    if (!receiver) throw new Error(`no page receiver for ${Deno.build.arch}`);
    if (way === "reserved") await reservePages(`${dir}/in`, (await pageReservation(job.pid)) ?? {});
    const listener = await listenForPages(receiver, { ...link, dir: `${dir}/in` });
    const args = dumpArgs({
      pid: job.pid,
      imagesDir: `${dir}/out`,
      logFile: `${dir}/dump.log`,
      psSocket: 0,
    });
    const linked = await linkPages(
      [criu.binary, ...args],
      { hostname: "127.0.0.1", port: listener.port, ...link },
      { socketDir: `${dir}/link` },
    );
    const start = criu.now();
    const status = await linked.go();
    const took = criu.now() - start;
    const received = await listener.done;
    if (!status.success || !received.success) {
      throw new Error(
        `the ${way} dump failed (dump exit ${status.code}, receiver exit ${received.code}; ` +
          `logs in ${dir})`,
      );
    }
    return took;
  } finally {
    try {
      job.process.kill("SIGKILL");
    } catch { /* dumped: gone */ }
    await job.process.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

export async function runPagePath(options: PagePathOptions): Promise<void> {
  const binary = findCriu((name) => Deno.env.get(name));
  if (!binary) throw new Error("no criu: set OM_CRIU or put criu on PATH");
  const criu: Criu = { binary, now: () => performance.now() };
  console.log(
    `page path: a ${options.mb} MiB job dumped ${options.rounds} times each way, interleaved`,
  );
  const figures = new Map<Way, number[]>(WAYS.map((way) => [way, []]));
  for (let round = 0; round < options.rounds; round++) {
    // A rotating order: a noisy moment does not always hit the same way.
    const order = WAYS.map((_, i) => WAYS[(i + round) % WAYS.length]);
    const line: string[] = [];
    for (const way of order) {
      const took = await dumpOnce(criu, way, options.mb);
      figures.get(way)!.push(took);
      line.push(`${way} ${ms(took)}`);
    }
    console.log(`  round ${round + 1}: ${line.join(", ")} ms`);
  }
  const local = median(figures.get("local")!);
  const summary = WAYS.map((way) => {
    const sample = figures.get(way)!;
    return {
      way,
      medianMs: median(sample),
      minMs: Math.min(...sample),
      ratio: median(sample) / local,
    };
  });
  console.log("");
  console.log(renderTable(
    ["way", "median ms", "min ms", "x local"],
    summary.map((s) => [s.way, ms(s.medianMs), ms(s.minMs), ratio(s.ratio)]),
  ));
  const path = await saveResults("pagepath", {
    machine: machine(),
    criu: binary,
    mb: options.mb,
    summary,
    rounds: Object.fromEntries(figures),
  });
  console.log(`results: ${path}`);
}

if (import.meta.main) {
  await benchMain("pagepath", () => parsePagePathArgs(Deno.args), runPagePath);
}
