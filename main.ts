/**
 * om's entry point: finds the command by the name om was called by (a link such as `showmap`)
 * or by the first argument, loads only that command, runs it, and exits with its code.
 * This is the only place that exits.
 */
import { COMMANDS, findCommand, runCommand } from "./commands/index.ts";
import { processContext } from "./lib/cli/context.ts";
import { VERSION } from "./lib/base/version.ts";

/** The name om was invoked by: the launcher passes it, the compiled binary reads its argv[0]. */
function invokedAs(): string {
  const fromLauncher = Deno.env.get("OM_ARGV0");
  if (fromLauncher !== undefined) {
    Deno.env.delete("OM_ARGV0");
    return fromLauncher;
  }
  try {
    const argv0 = Deno.readTextFileSync("/proc/self/cmdline").split("\0")[0];
    return argv0.slice(argv0.lastIndexOf("/") + 1);
  } catch {
    return "om";
  }
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `om ${VERSION}: the openMosix cluster userland for today's Linux`,
    "",
    "Usage: om <command> [options] [arguments]",
    "       om <command> --help",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    "  --version  print om's version",
    "  -h, --help show this overview",
    "",
  ].join("\n");
}

async function main(): Promise<number> {
  const name = invokedAs();
  const ctx = { ...processContext(), invokedAs: name };
  let args = Deno.args;
  let command = name === "om" || name === "main.ts" ? undefined : findCommand(name);
  if (!command) {
    const first = args[0];
    if (first === undefined || first === "-h" || first === "--help" || first === "help") {
      ctx.out(overview());
      return first === undefined ? 2 : 0;
    }
    if (first === "--version" || first === "-V") {
      ctx.out(`om ${VERSION} (deno ${Deno.version.deno})\n`);
      return 0;
    }
    command = findCommand(first);
    if (!command) {
      ctx.err(`om: Cannot run "${first}": no such command (om --help lists them)\n`);
      return 2;
    }
    args = args.slice(1);
  }
  return await runCommand(await command.load(), args, ctx);
}

Deno.exit(await main());
