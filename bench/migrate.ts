/**
 * The migration benchmark (root only, real CRIU): jobs holding N MB of resident memory (default
 * 16, 64 and 256) moved between two lab nodes with `om migrate`, beside the floor measured in the
 * same run: a plain `criu dump` plus `criu restore` of the same kind of process on one node.
 *
 * - The job: perl holding N MB (a string of N MiB, every page touched) that prints a counter every
 *   100 ms, so that it is alive and its output flows.
 * - Floor: the job started as om starts jobs (lib/criu/startjob.ts startJob: PID 1 of its own PID
 *   namespace, its own session, stdout and stderr on pipes), `criu dump` (stop-and-copy: the job
 *   is killed once dumped) into a tmpfs directory, then `criu restore` (detached, stdout and
 *   stderr re-attached to new pipes with --inherit-fd) on the same node; the restored job must
 *   print again. Figures: the dump's and the restore's wall times (criu's spawn to exit) and
 *   their sum.
 * - Migration: a 2-node lab on tmpfs with its daemons; `om run -- <job>` on node 1, its output
 *   drained here; once it prints, `om migrate <PID> 2` on node 1; its frozen, transfer, restore
 *   and total milliseconds are read from its output; the job must print again at home after the
 *   move; SIGINT to `om run` stops it.
 * - Goal: frozen time within 1.3x of the floor's total (dump + restore).
 *
 *   deno run -A --unstable-net bench/migrate.ts [MB...] [--rounds 3] [--big-rounds R]
 *
 * --big-rounds is the number of rounds at sizes of 256 MB and more (default: --rounds).
 */
import { parseArgs } from "node:util";
import { LAB_PARENT, startDaemons, withBenchLab } from "./benchlab.ts";
import type { InheritFd } from "../lib/criu/args.ts";
import { findCriu } from "../lib/criu/preflight.ts";
import { type Criu, dump, restore } from "../lib/criu/run.ts";
import { fdKey, startJob } from "../lib/criu/startjob.ts";
import { readJobRecords } from "../lib/jobs/table.ts";
import { type Lab, nodeRoot } from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
import { retryUntil } from "../lib/base/retry.ts";
import { omCommand } from "../lib/base/selfexec.ts";
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

export interface MigrateOptions {
  sizes: number[];
  rounds: number;
  bigRounds: number;
}

/** The goal: frozen time within this factor of the floor (dump + restore on one node). */
const GOAL_RATIO = 1.3;

export function parseMigrateArgs(args: readonly string[]): MigrateOptions {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: { rounds: { type: "string" }, "big-rounds": { type: "string" } },
    allowPositionals: true,
  });
  const sizes = positionals.length ? positionals.map(Number) : [16, 64, 256];
  for (const [i, size] of sizes.entries()) {
    if (!Number.isInteger(size) || size < 1 || size > 8192) {
      throw new TypeError(`Cannot use "${positionals[i]}" as a size: expected MB from 1 to 8192`);
    }
  }
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new TypeError(`Cannot use --rounds ${values.rounds}`);
  }
  const bigRounds = Number(values["big-rounds"] ?? rounds);
  if (!Number.isInteger(bigRounds) || bigRounds < 1) {
    throw new TypeError(`Cannot use --big-rounds ${values["big-rounds"]}`);
  }
  return { sizes, rounds, bigRounds };
}

const decoder = new TextDecoder();

/**
 * The job: N MiB in one perl string (built at run time from ARGV, so not folded into a
 * constant: a single copy, every page written), then a counter every 100 ms.
 */
export function jobCommand(mb: number): string[] {
  return [
    "perl",
    "-e",
    'my $x = "a" x ($ARGV[0] * 1048576); $| = 1; ' +
    'for (my $i = 0;; $i++) { print "$i\\n"; select(undef, undef, undef, 0.1) }',
    String(mb),
  ];
}

/** Resident memory of `pid` in MiB (VmRSS). */
async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN) / 1024;
}

/** Collects a stream's text as it comes; `done` resolves at its end. */
function drain(stream: ReadableStream<Uint8Array> | undefined) {
  const sink = { text: "", done: Promise.resolve() };
  if (stream) {
    sink.done = (async () => {
      for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
    })().catch(() => {});
  }
  return sink;
}

const lineCount = (text: string) => text.split("\n").filter((line) => line !== "").length;

/** Waits until `sink` holds `count` more lines than `before`. */
async function morelines(sink: { text: string }, before: number, count: number, what: string) {
  await retryUntil(() => lineCount(sink.text) >= before + count, 15_000, {
    what,
    intervalMs: 10,
  });
}

function tryKill(pid: number, signal: Deno.Signal = "SIGKILL"): void {
  try {
    Deno.kill(pid, signal);
  } catch {
    // already gone
  }
}

interface FloorRound {
  rssMiB: number;
  dumpMs: number;
  restoreMs: number;
  totalMs: number;
}

/**
 * One plain dump + restore of the job on this node, images on tmpfs. With `held`, the dump leaves
 * the job stopped and the restore runs while it is still there, as a migration's restore does
 * (its source keeps the job until the commit); the job is killed once the copy runs.
 */
async function floorRound(criu: Criu, mb: number, held = false): Promise<FloorRound> {
  const dir = await Deno.makeTempDir({ prefix: "om-bench-criu-", dir: LAB_PARENT });
  const job = await startJob(jobCommand(mb), { stdout: "piped", stderr: "piped" });
  const oldOut = drain(job.process.stdout);
  const oldErr = drain(job.process.stderr);
  let restoredPid: number | undefined;
  try {
    await morelines(oldOut, 0, 2, "the floor job's first lines");
    const rss = await rssMiB(job.pid);
    const inheritFds: InheritFd[] = [
      { fd: 1, key: await fdKey(job.pid, 1) },
      { fd: 2, key: await fdKey(job.pid, 2) },
    ];
    const dumped = await dump(criu, { pid: job.pid, imagesDir: dir, leaveStopped: held });
    if (!held) {
      await job.process.status;
      await Promise.all([oldOut.done, oldErr.done]);
    }
    const restored = await restore(criu, {
      imagesDir: dir,
      inheritFds,
      stdio: { stdout: "piped", stderr: "piped" },
    });
    restoredPid = restored.pid;
    const newOut = drain(restored.stdout);
    const newErr = drain(restored.stderr);
    await morelines(newOut, 0, 2, "the restored floor job's lines");
    tryKill(restored.pid);
    await Promise.all([newOut.done, newErr.done]);
    if (held) {
      tryKill(job.pid);
      await Promise.all([oldOut.done, oldErr.done]);
    }
    return {
      rssMiB: rss,
      dumpMs: dumped.ms,
      restoreMs: restored.ms,
      totalMs: dumped.ms + restored.ms,
    };
  } finally {
    tryKill(job.pid);
    if (restoredPid !== undefined) tryKill(restoredPid);
    await job.process.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

interface MigrationRound {
  rssMiB: number;
  frozenMs: number;
  transferMs: number;
  restoreMs: number;
  totalMs: number;
  mib: number;
  /** `om migrate`'s own wall time, seen from here (its start-up included). */
  commandMs: number;
  /** Lines the job printed at home after the move, before it was stopped. */
  linesAfter: number;
}

const REPORT =
  /frozen (\d+) ms, transfer (\d+) ms, restore (\d+) ms, total (\d+) ms \(([\d.]+) MiB\)/;

/** `om run` of the job on node 1, `om migrate` to node 2, its output checked, SIGINT. */
async function migrationRound(lab: Lab, mb: number, tag: string): Promise<MigrationRound> {
  const command = jobCommand(mb);
  // A marker argument (perl ignores it in @ARGV after the size) to find this round's job.
  const run = execInNode(lab, 1, omCommand(["run", "--", ...command, tag]), {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const out = drain(run.stdout);
  const err = drain(run.stderr);
  let stopped = false;
  try {
    const job = await retryUntil(
      async () =>
        (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) => j.command.includes(tag)),
      15_000,
      { what: `the ${mb} MB job on node 1`, intervalMs: 20 },
    );
    await morelines(out, 0, 2, "the job's first lines at home");
    // The host PID of the job's PID 1 is what om ps shows (the home node gave it).
    const rss = await rssMiB(job.pid);
    const started = performance.now();
    const migrate = await execInNode(lab, 1, omCommand(["migrate", String(job.pid), "2"]), {
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const commandMs = performance.now() - started;
    const said = decoder.decode(migrate.stdout) + decoder.decode(migrate.stderr);
    if (migrate.code !== 0) throw new Error(`om migrate exited ${migrate.code}: ${said.trim()}`);
    const m = REPORT.exec(said);
    if (!m) throw new Error(`Cannot read om migrate's report: ${said.trim()}`);
    const before = lineCount(out.text);
    await morelines(out, before, 3, "the job's lines at home after the move");
    const linesAfter = lineCount(out.text) - before;
    run.kill("SIGINT");
    stopped = true;
    const status = await run.status;
    await Promise.all([out.done, err.done]);
    if (status.code !== 130) {
      throw new Error(`om run exited ${status.code} on SIGINT, not 130: ${err.text.trim()}`);
    }
    return {
      rssMiB: rss,
      frozenMs: Number(m[1]),
      transferMs: Number(m[2]),
      restoreMs: Number(m[3]),
      totalMs: Number(m[4]),
      mib: Number(m[5]),
      commandMs,
      linesAfter,
    };
  } finally {
    if (!stopped) {
      try {
        run.kill("SIGINT");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          run.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 5000);
      await run.status;
      clearTimeout(timer);
    }
  }
}

export async function runMigrate(options: MigrateOptions): Promise<void> {
  const binary = findCriu((name) => Deno.env.get(name));
  if (!binary) throw new Error("no criu: set OM_CRIU or put criu on PATH");
  const criu: Criu = { binary, now: () => performance.now() };
  const roundsFor = (mb: number) => mb >= 256 ? options.bigRounds : options.rounds;
  console.log(
    `migration: jobs of ${options.sizes.join(", ")} MB moved between 2 lab nodes ` +
      `(rounds: ${options.sizes.map((mb) => `${mb} MB x${roundsFor(mb)}`).join(", ")}; ` +
      `images and state trees in ${LAB_PARENT ?? "a temporary directory"}; criu ${binary})`,
  );
  const results: {
    mb: number;
    floor: FloorRound[];
    held: FloorRound[];
    migration: MigrationRound[];
  }[] = [];
  await withBenchLab("mig", 2, async (lab) => {
    await startDaemons(lab, { env: { OM_CRIU: binary } });
    for (const mb of options.sizes) {
      const entry = {
        mb,
        floor: [] as FloorRound[],
        held: [] as FloorRound[],
        migration: [] as MigrationRound[],
      };
      results.push(entry);
      for (let round = 0; round < roundsFor(mb); round++) {
        // Interleaved: a noisy moment hits the floor and the migration alike.
        const floor = await floorRound(criu, mb);
        entry.floor.push(floor);
        const held = await floorRound(criu, mb, true);
        entry.held.push(held);
        const moved = await migrationRound(lab, mb, `om-bench-${Deno.pid}-${mb}-${round}`);
        entry.migration.push(moved);
        console.log(
          `  ${mb} MB round ${round + 1}: rss ${floor.rssMiB.toFixed(0)}/${
            moved.rssMiB.toFixed(0)
          } MiB, floor dump ${ms(floor.dumpMs)} + restore ${ms(floor.restoreMs)} ms ` +
            `(job held: ${ms(held.dumpMs)} + ${ms(held.restoreMs)}); ` +
            `migrate frozen ${moved.frozenMs}, transfer ${moved.transferMs}, restore ${moved.restoreMs}, ` +
            `total ${moved.totalMs} ms (${moved.mib} MiB; om migrate ${
              ms(moved.commandMs)
            } ms; ${moved.linesAfter} lines after)`,
        );
      }
    }
  });

  const rows: string[][] = [];
  const ratios: number[] = [];
  const summary = results.map(({ mb, floor, held, migration }) => {
    const med = {
      rounds: floor.length,
      floorDumpMs: median(floor.map((r) => r.dumpMs)),
      floorRestoreMs: median(floor.map((r) => r.restoreMs)),
      floorTotalMs: median(floor.map((r) => r.totalMs)),
      heldRestoreMs: median(held.map((r) => r.restoreMs)),
      heldTotalMs: median(held.map((r) => r.totalMs)),
      frozenMs: median(migration.map((r) => r.frozenMs)),
      transferMs: median(migration.map((r) => r.transferMs)),
      restoreMs: median(migration.map((r) => r.restoreMs)),
      totalMs: median(migration.map((r) => r.totalMs)),
      // What of the frozen time is neither transfer nor restore: the dump and the handshake.
      dumpEtcMs: median(migration.map((r) => r.frozenMs - r.transferMs - r.restoreMs)),
    };
    const x = med.frozenMs / med.floorTotalMs;
    ratios.push(x);
    const xHeld = med.frozenMs / med.heldTotalMs;
    rows.push([
      String(mb),
      String(med.rounds),
      ms(med.floorDumpMs),
      ms(med.floorRestoreMs),
      ms(med.floorTotalMs),
      ms(med.frozenMs),
      ms(med.dumpEtcMs),
      ms(med.transferMs),
      ms(med.restoreMs),
      ms(med.totalMs),
      ratio(x),
      ms(med.heldRestoreMs),
      ratio(xHeld),
    ]);
    return { mb, ...med, ratio: x, heldRatio: xHeld };
  });
  console.log("");
  console.log(
    renderTable([
      "MB",
      "rounds",
      "floor dump",
      "floor restore",
      "floor total",
      "frozen",
      "dump etc.",
      "transfer",
      "restore",
      "total",
      "frozen/floor",
      "held restore",
      "frozen/held",
    ], rows),
  );
  console.log(
    "(medians, ms. floor: plain criu dump + criu restore of the same job on one node; " +
      "dump etc.: frozen - transfer - restore, i.e. the dump and the handshake; held restore: " +
      "the floor's restore while the dumped job is still there, stopped, as in a migration; " +
      "frozen/held: frozen / (held dump + held restore), for information, not the goal)",
  );
  console.log("");
  console.log(
    goalLine(
      `frozen time within ${GOAL_RATIO}x of the floor (plain dump + restore on one node)`,
      ratios.every((x) => x <= GOAL_RATIO),
      `ratios ${results.map(({ mb }, i) => `${mb} MB ${ratio(ratios[i])}`).join(", ")}`,
    ),
  );
  const path = await saveResults("migrate", {
    machine: machine(),
    criu: binary,
    goalRatio: GOAL_RATIO,
    summary,
    rounds: results,
  });
  console.log(`results: ${path}`);
}

if (import.meta.main) await benchMain("migrate", () => parseMigrateArgs(Deno.args), runMigrate);
