/**
 * Start-up benchmark: how long short om commands take from spawn to exit, beside the floor, an
 * empty script started by the same Deno with the same flags in the same run. The commands run
 * exactly as the launcher runs them (omCommand), against a temporary state tree holding a small
 * map. The runs of all cases are interleaved, so that a noisy moment hits every case alike.
 *
 *   deno run -A --unstable-net bench/startup.ts [--runs 30] [--warmups 3]
 */
import { parseArgs } from "node:util";
import { omCommand } from "../lib/base/selfexec.ts";
import { resolveStatePaths, writeMap } from "../lib/state/tree.ts";
import {
  benchMain,
  goalLine,
  machine,
  median,
  ms,
  percentile,
  ratio,
  renderTable,
  saveResults,
} from "./report.ts";

/** showmap may take at most this many times the empty script's start. */
export const SHOWMAP_GOAL_RATIO = 3;

/** One measured case. */
export interface StartupCase {
  readonly name: string;
  readonly argv: readonly string[];
  /** Wall times of the measured runs, in milliseconds. */
  readonly times: number[];
  medianMs?: number;
  p90Ms?: number;
  /** Median over the floor's median. */
  ratio?: number;
}

/** What the benchmark measured. */
export interface StartupResults {
  readonly benchmark: "startup";
  readonly date: string;
  readonly machine: Record<string, unknown>;
  readonly runs: number;
  readonly warmups: number;
  readonly cases: StartupCase[];
  readonly goal: { readonly ratio: number; readonly limit: number; readonly met: boolean };
}

const decoder = new TextDecoder();

/** The argv of the floor: omCommand's Deno and flags, with an empty script for main.ts. */
function floorArgv(emptyScript: string): string[] {
  const argv = omCommand([]);
  if (!/(^|\/)deno$/.test(argv[0]) || !argv.at(-1)?.endsWith("/main.ts")) {
    throw new Error(`Cannot measure the floor: om does not run under "deno run" (${argv[0]})`);
  }
  return [...argv.slice(0, -1), emptyScript];
}

/** Runs `argv` once and returns its wall time; throws when it fails or prints nothing it should. */
async function timeOnce(
  testCase: StartupCase,
  env: Record<string, string>,
  expectOutput: boolean,
): Promise<number> {
  const command = new Deno.Command(testCase.argv[0], {
    args: testCase.argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
  const start = performance.now();
  const output = await command.output();
  const elapsed = performance.now() - start;
  if (output.code !== 0 || (expectOutput && output.stdout.length === 0)) {
    throw new Error(
      `Cannot measure "${testCase.name}": exit ${output.code}: ${
        decoder.decode(output.stderr).trim() || "no output"
      }`,
    );
  }
  return elapsed;
}

/** Runs the benchmark, prints its table and goal line, and returns the figures. */
export async function runStartup(
  options: { runs?: number; warmups?: number; save?: boolean } = {},
): Promise<StartupResults> {
  const runs = options.runs ?? 30;
  const warmups = options.warmups ?? 3;
  const dir = await Deno.makeTempDir({ prefix: "om-bench-startup-" });
  try {
    const root = `${dir}/root`;
    const proc = `${dir}/proc`; // absent: the userland backend, whatever the host has
    const config = `${dir}/om.conf`;
    const empty = `${dir}/empty.ts`;
    await Deno.writeTextFile(config, "");
    await Deno.writeTextFile(empty, "");
    await writeMap(resolveStatePaths({ root, proc, alpha: false }), 1, {
      gateways: 0,
      entries: [
        { base: 1, address: "10.77.0.1", count: 4 },
        { base: 5, address: "10.77.1.5", count: 1 },
        { base: 5, address: "10.77.2.5", count: 0 },
      ],
    });
    const env = { OM_ROOT: root, OM_PROC: proc, OM_CONFIG: config };
    const cases: StartupCase[] = [
      { name: "empty script (floor)", argv: floorArgv(empty), times: [] },
      { name: "om --version", argv: omCommand(["--version"]), times: [] },
      { name: "om showmap", argv: omCommand(["showmap"]), times: [] },
      { name: "om setpe -r", argv: omCommand(["setpe", "-r"]), times: [] },
    ];
    for (let round = 0; round < warmups + runs; round++) {
      // Rotate the order each round so no case always runs first (or right after another).
      for (let i = 0; i < cases.length; i++) {
        const testCase = cases[(round + i) % cases.length];
        const elapsed = await timeOnce(testCase, env, testCase !== cases[0]);
        if (round >= warmups) testCase.times.push(elapsed);
      }
    }
    const floor = median(cases[0].times);
    for (const testCase of cases) {
      testCase.medianMs = median(testCase.times);
      testCase.p90Ms = percentile(testCase.times, 90);
      testCase.ratio = testCase.medianMs / floor;
    }
    const showmap = cases[2].ratio!;
    const results: StartupResults = {
      benchmark: "startup",
      date: new Date().toISOString(),
      machine: machine(),
      runs,
      warmups,
      cases,
      goal: { ratio: showmap, limit: SHOWMAP_GOAL_RATIO, met: showmap <= SHOWMAP_GOAL_RATIO },
    };

    console.log(`start-up: wall time from spawn to exit, ${runs} runs after ${warmups} warm-ups`);
    console.log(`floor: ${cases[0].argv.join(" ")}\n`);
    console.log(renderTable(
      ["command", "median ms", "p90 ms", "x floor"],
      cases.map((c) => [c.name, ms(c.medianMs), ms(c.p90Ms), ratio(c.ratio)]),
    ));
    console.log();
    console.log(goalLine(
      `showmap <= ${SHOWMAP_GOAL_RATIO}x empty-script floor`,
      results.goal.met,
      `ratio ${ratio(showmap)}`,
    ));
    if (options.save ?? true) console.log(`results: ${await saveResults("startup", results)}`);
    return results;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Parses this benchmark's flags: --runs N, --warmups N. */
export function parseStartupArgs(args: readonly string[]): { runs?: number; warmups?: number } {
  const { values } = parseArgs({
    args: [...args],
    options: { runs: { type: "string" }, warmups: { type: "string" } },
  });
  const count = (text: string | undefined, flag: string, min: number) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) {
      throw new RangeError(`Cannot use "${text}" for ${flag}: an integer of at least ${min}`);
    }
    return n;
  };
  return { runs: count(values.runs, "--runs", 1), warmups: count(values.warmups, "--warmups", 0) };
}

if (import.meta.main) {
  await benchMain("bench/startup.ts", () => parseStartupArgs(Deno.args), runStartup);
}
