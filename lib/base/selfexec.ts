/**
 * How om starts another om: the compiled binary runs itself; under `deno run` (the launcher and
 * the tests) the same Deno runs main.ts again with the same flags. Used to detach the daemon and
 * to start daemons inside lab nodes.
 */

/** The argv that runs om with `args`, in this same form (compiled or `deno run`). */
export function omCommand(args: readonly string[]): string[] {
  const main = new URL("../../main.ts", import.meta.url);
  // A compiled om is its own executable; otherwise the executable is Deno itself.
  const executable = Deno.execPath();
  if (!/(^|\/)deno$/.test(executable)) return [executable, ...args];
  const config = new URL("../../deno.json", import.meta.url);
  return [
    executable,
    "run",
    "-A",
    "--unstable-net",
    // Each command's modules load when it runs, not all at start (as the ./om launcher does).
    "--unstable-lazy-dynamic-imports",
    "--quiet",
    "--no-prompt",
    "--config",
    decodeURIComponent(config.pathname),
    decodeURIComponent(main.pathname),
    ...args,
  ];
}
