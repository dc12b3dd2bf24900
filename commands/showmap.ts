/**
 * `om showmap`: prints the cluster map in force as the original showmap did, or as JSON.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { renderShowmap, showmapJson, showmapView } from "../lib/views/showmap.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import { ALPHA_OPTION, ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("showmap"),
  usage: ["om showmap [--json] [--root DIR] [--alpha]"],
  description:
    `Prints this node's id and the cluster map in force: own node first, then the others in the
map's order: by node id for om discover's map (the same on every node), the file's order for a map
setpe -w installed. A row whose Count says ALIAS is another address of that node. The map is
the one om discover keeps or setpe -w installed: in om's state tree (OM_ROOT, default /run/om),
in /proc/hpc on an openMosix kernel, or in /tmp/om_config and /tmp/om_mospe with --alpha.
Exits 1 when no map is in force.`,
  options: [
    { name: "json", flags: ["--json"], help: "print the same rows as JSON" },
    ROOT_OPTION,
    ALPHA_OPTION,
  ],
  examples: [
    { command: "om showmap", says: "My Node-Id: 0x0adc, then one row per map entry" },
    { command: "om showmap --json | jq .self", says: "this node's id as a number: 2780" },
    { command: "showmap --alpha", says: "the map an ALPHA-mode omdiscd wrote to /tmp" },
  ],
};

/** Prints the map in force; throws when none was written. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length > 0) {
    throw new UsageError(`Cannot use "${parsed.args[0]}": showmap takes no arguments`);
  }
  const settings = await loadSettings({
    root: parsed.options.root as string | undefined,
    alpha: parsed.options.alpha === true ? true : undefined,
  }, ctx.env);
  const paths = resolveStatePaths(settings);
  const state = await readMap(paths);
  if (!state) {
    throw new Error(
      `Cannot read the map "${paths.config}": no map in force ` +
        `(is om discover running, or setpe -w done?)`,
    );
  }
  const view = showmapView(state.self, state.map, { backend: paths.backend });
  ctx.out(
    parsed.options.json ? JSON.stringify(showmapJson(view), null, 2) + "\n" : renderShowmap(view),
  );
  return 0;
}
