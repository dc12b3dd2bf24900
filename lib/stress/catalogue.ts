/**
 * Every workload of `om stress`, by name (`--tests` chooses among them), and whether this node
 * can run each: a workload whose program (awk, perl, cksum) is not on PATH is skipped, and the
 * report says so.
 */
import { awkLoop } from "./awkloop.ts";
import { eatmem } from "./eatmem.ts";
import { forkit } from "./forkit.ts";
import { memory } from "./memory.ts";
import { portfolio } from "./portfolio.ts";
import { pipeline, stdin, stream } from "./streams.ts";
import { TEST_NAMES, type TestName, type Workload } from "./workload.ts";

/** The workloads, in TEST_NAMES' order. */
export const WORKLOADS: readonly Workload[] = [
  awkLoop,
  portfolio,
  eatmem,
  forkit,
  memory,
  stream,
  stdin,
  pipeline,
];

/** The workload called `name`. */
export function workloadOf(name: TestName): Workload {
  return WORKLOADS.find((w) => w.name === name)!;
}

/**
 * Reads `--tests`: names separated by commas (each once), or "all". Throws a RangeError naming
 * the word it does not know and the names it knows.
 */
export function parseTests(text: string): TestName[] {
  if (text.trim() === "all") return [...TEST_NAMES];
  const chosen: TestName[] = [];
  for (const raw of text.split(",")) {
    const word = raw.trim();
    if (!(TEST_NAMES as readonly string[]).includes(word)) {
      throw new RangeError(
        `Cannot use "${word}" as a test: not one of ${TEST_NAMES.join(", ")} (or all)`,
      );
    }
    if (!chosen.includes(word as TestName)) chosen.push(word as TestName);
  }
  return TEST_NAMES.filter((name) => chosen.includes(name));
}

/** The first executable `program` on `path` (a PATH value); undefined when there is none. */
export function findProgram(program: string, path: string): string | undefined {
  for (const dir of path.split(":")) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${program}`);
      if (info.isFile && (info.mode ?? 0o111) & 0o111) return `${dir}/${program}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The programs of `workload` that are not on `path` (none: it can run). */
export function missingPrograms(workload: Workload, path: string): string[] {
  return workload.needs.filter((program) => findProgram(program, path) === undefined);
}
