/**
 * `om discover` with faults, for tests: `deno run -A --unstable-net faultnode.ts FAULTS_JSON
 * [discover's arguments...]` runs the daemon as the command does, with its node's migrations
 * suffering FAULTS (lib/migration/faults.ts). The lab starts it in place of `om discover`
 * (lib/lab/daemons.ts `program`); the product itself never reads faults from anywhere.
 */
import { parse } from "../../lib/cli/parser.ts";
import { processContext } from "../../lib/cli/context.ts";
import { parseFaults } from "../../lib/migration/faults.ts";
import { serve, spec } from "../../commands/discover.ts";

const [faults, ...args] = Deno.args;
const ctx = processContext();
Deno.exit(await serve(parse(spec, args), ctx, { faults: parseFaults(faults) }));
