/**
 * The balancing benchmark (root only, real CRIU): 8 CPU-bound jobs started with `om run` on node 1
 * of a 4-node lab; how long until they are spread (no node more than one job above its fair share,
 * 2 here) and until they are even (2 on every node), and how many migrations it took, against the
 * ideal measured in the same run: each of the 6 jobs that must leave node 1 moved once, one after
 * the other, by `om migrate` (the time of one such move, median of the round, times 6).
 *
 *   deno run -A --unstable-net bench/balance.ts [--rounds 3]
 */
import { parseArgs } from "node:util";
import { LAB_PARENT, startDaemons, withBenchLab } from "./benchlab.ts";
import { findCriu } from "../lib/criu/preflight.ts";
import { type JobRecord, readJobRecords } from "../lib/jobs/table.ts";
import { type Lab, nodeRoot } from "../lib/lab/record.ts";
import { execInNode } from "../lib/lab/exec.ts";
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

export interface BalanceOptions {
  rounds: number;
}

const NODES = 4;
const JOBS = 8;
/** Jobs that must leave node 1 for 2 on each node: the ideal number of migrations. */
const IDEAL_MOVES = JOBS - JOBS / NODES;
/** Give up on a round after this long. */
const DEADLINE_MS = 60_000;
const BUSY = ["nice", "-n", "10", "sh", "-c", "while :; do :; done"];

export function parseBalanceArgs(args: readonly string[]): BalanceOptions {
  const { values } = parseArgs({ args: [...args], options: { rounds: { type: "string" } } });
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new TypeError(`Cannot use --rounds ${values.rounds}`);
  }
  return { rounds };
}

const perNode = (jobs: readonly JobRecord[]) =>
  Array.from({ length: NODES }, (_, i) => jobs.filter((j) => j.node === i + 1).length);

async function runOm(lab: Lab, index: number, args: string[]) {
  const child = execInNode(lab, index, omCommand(args), { stdout: "piped", stderr: "piped" });
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    throw new Error(`om ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/** One round: the automatic spread, then the ideal's move time, with the same jobs. */
async function round(lab: Lab): Promise<Record<string, number | undefined>> {
  const jobsDir = `${nodeRoot(lab, 1)}/jobs`;
  const start = performance.now();
  const runs = Array.from(
    { length: JOBS },
    () =>
      execInNode(lab, 1, omCommand(["run", "--", ...BUSY]), {
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }),
  );
  let spreadMs: number | undefined;
  let evenMs: number | undefined;
  let movesAtEven: number | undefined;
  try {
    while (performance.now() - start < DEADLINE_MS) {
      const jobs = await readJobRecords(jobsDir);
      const counts = perNode(jobs);
      if (jobs.length === JOBS) {
        if (spreadMs === undefined && counts.every((n) => n <= JOBS / NODES + 1)) {
          spreadMs = performance.now() - start;
        }
        if (counts.every((n) => n === JOBS / NODES)) {
          evenMs = performance.now() - start;
          movesAtEven = jobs.reduce((sum, j) => sum + j.migrations, 0);
          break;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Ten more seconds: moves after the even state are moves the ideal does not make.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const jobs = await readJobRecords(jobsDir);
    const moves = jobs.reduce((sum, j) => sum + j.migrations, 0);
    // The ideal's unit: one job moved by hand, node to node, with the cluster as loaded.
    const moveMs: number[] = [];
    for (const job of jobs.filter((j) => j.node !== 1).slice(0, 3)) {
      const t = performance.now();
      await runOm(lab, 1, ["migrate", String(job.pid), "home"]);
      moveMs.push(performance.now() - t);
    }
    return {
      spreadMs,
      evenMs,
      movesAtEven,
      moves,
      moveMs: median(moveMs),
    };
  } finally {
    for (const run of runs) {
      try {
        run.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await Promise.all(runs.map((r) => r.status));
  }
}

export async function runBalance(options: BalanceOptions): Promise<void> {
  const binary = findCriu((name) => Deno.env.get(name));
  if (!binary) throw new Error("no criu: set OM_CRIU or put criu on PATH");
  console.log(
    `Balancing: ${JOBS} CPU-bound jobs started on node 1 of ${NODES} lab nodes, ${options.rounds} ` +
      `rounds (state trees in ${LAB_PARENT ?? "a temporary directory"}; criu ${binary})`,
  );
  const rounds: Record<string, number | undefined>[] = [];
  await withBenchLab("bal", NODES, async (lab) => {
    await startDaemons(lab, { env: { OM_CRIU: binary }, figures: true });
    for (let i = 0; i < options.rounds; i++) {
      rounds.push(await round(lab));
      await new Promise((resolve) => setTimeout(resolve, 3000)); // loads back to idle
    }
  });
  const pick = (key: string) =>
    rounds.map((r) => r[key]).filter((v): v is number => v !== undefined);
  const idealMs = median(pick("moveMs")) * IDEAL_MOVES;
  console.log(
    renderTable(
      ["round", "spread ms", "even ms", "moves at even", "moves after 10 s", "one move ms"],
      rounds.map((r, i) => [
        String(i + 1),
        ms(r.spreadMs),
        ms(r.evenMs),
        String(r.movesAtEven ?? "-"),
        String(r.moves ?? "-"),
        ms(r.moveMs),
      ]),
    ),
  );
  const spread = median(pick("spreadMs"));
  const even = median(pick("evenMs"));
  const moves = median(pick("moves"));
  console.log(
    `\nmedian: spread in ${ms(spread)} ms, even in ${ms(even)} ms, ${moves} moves; ideal: ` +
      `${IDEAL_MOVES} moves of ${ms(median(pick("moveMs")))} ms one after the other = ${
        ms(idealMs)
      } ms`,
  );
  console.log(
    `ratios: spread/ideal ${ratio(spread / idealMs)}, even/ideal ${ratio(even / idealMs)}, ` +
      `moves/ideal ${ratio(moves / IDEAL_MOVES)}`,
  );
  console.log(
    goalLine(
      "every round spread, with no more moves than jobs",
      pick("spreadMs").length === rounds.length && pick("moves").every((m) => m <= JOBS),
      `${pick("spreadMs").length} of ${rounds.length} spread; moves ${pick("moves").join(", ")}`,
    ),
  );
  const path = await saveResults("balance", { machine: machine(), rounds, idealMs });
  console.log(`results: ${path}`);
}

if (import.meta.main) {
  await benchMain("bench/balance.ts", () => parseBalanceArgs(Deno.args), runBalance);
}
