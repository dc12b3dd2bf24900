/**
 * The options every command that reads or writes the map shares: where the state tree is, and the
 * seed's ALPHA files. One declaration, so help and completions say the same everywhere.
 */
import type { OptionSpec } from "./parser.ts";

/** `--root DIR`: om's state tree (over OM_ROOT and the config file). */
export const ROOT_OPTION: OptionSpec = {
  name: "root",
  flags: ["--root"],
  value: "DIR",
  help: "om's state tree (default /run/om, or OM_ROOT)",
  complete: "file",
};

/** `--alpha`: the seed's /tmp/om_config and /tmp/om_mospe instead of the state tree. */
export const ALPHA_OPTION: OptionSpec = {
  name: "alpha",
  flags: ["--alpha"],
  help: "use the ALPHA files /tmp/om_config and /tmp/om_mospe instead",
};
