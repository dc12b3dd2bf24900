/**
 * `deno task bench`: the start-up, discovery, node-information and migration benchmarks (all but
 * the first root only; migration needs CRIU too), each printing its table and goal lines and
 * writing its JSON to bench/results/.
 *
 *   deno task bench [startup|discover|info|migrate|balance] [N...] [--runs R] [--warmups W] [--rounds K]
 *                   [--lab-dir DIR]
 *
 * A name runs only that benchmark; numbers are discover's cluster sizes; --runs and --warmups
 * go to startup, --rounds and --lab-dir to discover. The migration benchmark runs with its
 * defaults (16, 64 and 256 MB, 3 rounds), the balancing one with 3 rounds; bench/migrate.ts and
 * bench/balance.ts take their own arguments.
 */
import { parseArgs } from "node:util";
import { findCriu } from "../lib/criu/preflight.ts";
import { parseDiscoverArgs, runDiscover } from "./discover.ts";
import { benchMain } from "./report.ts";
import { parseInfoArgs, runInfo } from "./info.ts";
import { parseMigrateArgs, runMigrate } from "./migrate.ts";
import { parseBalanceArgs, runBalance } from "./balance.ts";
import { parseStartupArgs, runStartup } from "./startup.ts";

const NAMES = ["startup", "discover", "info", "migrate", "balance"] as const;

/** Splits the task's arguments between the two benchmarks and says which to run. */
export function splitArgs(
  args: readonly string[],
): { run: Set<string>; startup: string[]; discover: string[] } {
  const { values, positionals } = parseArgs({
    args: [...args],
    options: {
      runs: { type: "string" },
      warmups: { type: "string" },
      rounds: { type: "string" },
      "lab-dir": { type: "string" },
    },
    allowPositionals: true,
  });
  const run = new Set<string>();
  const sizes: string[] = [];
  for (const word of positionals) {
    if ((NAMES as readonly string[]).includes(word)) run.add(word);
    else if (/^\d+$/.test(word)) sizes.push(word);
    else {
      throw new TypeError(
        `Cannot run benchmark "${word}": expected ${NAMES.join(" or ")}, or a cluster size`,
      );
    }
  }
  if (run.size === 0) { for (const name of NAMES) run.add(name); }
  const flag = (name: keyof typeof values) =>
    values[name] === undefined ? [] : [`--${name}`, values[name]!];
  return {
    run,
    startup: [...flag("runs"), ...flag("warmups")],
    discover: [...sizes, ...flag("rounds"), ...flag("lab-dir")],
  };
}

if (import.meta.main) {
  await benchMain("deno task bench", () => {
    const { run, startup, discover } = splitArgs(Deno.args);
    return { run, startup: parseStartupArgs(startup), discover: parseDiscoverArgs(discover) };
  }, async ({ run, startup, discover }) => {
    if (run.has("startup")) await runStartup(startup);
    if (run.has("startup") && run.has("discover")) console.log("\n");
    if (run.has("discover")) {
      if (Deno.uid() === 0) await runDiscover(discover);
      else console.log("discovery benchmark skipped: it needs root (namespaces, cgroups)");
    }
    if (run.has("info")) {
      console.log("\n");
      if (Deno.uid() === 0) await runInfo(parseInfoArgs([]));
      else console.log("node-information benchmark skipped: it needs root (namespaces, cgroups)");
    }
    if (run.has("migrate")) {
      console.log("\n");
      if (Deno.uid() !== 0) {
        console.log("migration benchmark skipped: it needs root (namespaces, cgroups, CRIU)");
      } else if (!findCriu((name) => Deno.env.get(name))) {
        console.log("migration benchmark skipped: no criu (set OM_CRIU or put criu on PATH)");
      } else await runMigrate(parseMigrateArgs([]));
    }
    if (run.has("balance")) {
      console.log("\n");
      if (Deno.uid() !== 0) {
        console.log("balancing benchmark skipped: it needs root (namespaces, cgroups, CRIU)");
      } else if (!findCriu((name) => Deno.env.get(name))) {
        console.log("balancing benchmark skipped: no criu (set OM_CRIU or put criu on PATH)");
      } else await runBalance(parseBalanceArgs([]));
    }
  });
}
