/**
 * The labs of the benchmarks that need one (info, migrate, balance): made on tmpfs when the
 * machine has it (report.ts labParent), their daemons started and agreed, always removed.
 * bench/discover.ts makes its labs its own way: it measures their making.
 */
import { planLab } from "../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../lib/lab/record.ts";
import { createLab } from "../lib/lab/create.ts";
import { destroyLab } from "../lib/lab/destroy.ts";
import { startDaemon } from "../lib/lab/daemons.ts";
import { waitForAgreement } from "../lib/lab/maps.ts";
import { readNodeInfo } from "../lib/state/nodestate.ts";
import { retryUntil } from "../lib/base/retry.ts";
import { labParent } from "./report.ts";

/** Where the benchmark labs go (undefined: the system's temporary directory). */
export const LAB_PARENT = labParent();

/** Runs `fn` on a fresh lab of `nodes` nodes named `name` + this process's id; removes it after. */
export async function withBenchLab<T>(
  name: string,
  nodes: number,
  fn: (lab: Lab) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: `om-bench-${name}-`, dir: LAB_PARENT });
  const lab = await createLab({ name: `b${name}${Deno.pid}`, dir, nodes: planLab(nodes) });
  try {
    return await fn(lab);
  } finally {
    await destroyLab(lab, { graceMs: 1000 });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Starts every node's daemon (with extra flags and environment), waits until their maps agree
 * and, with `figures`, until every node has every node's figures.
 */
export async function startDaemons(
  lab: Lab,
  options: { args?: string[]; env?: Record<string, string>; figures?: boolean } = {},
): Promise<void> {
  for (const node of lab.record.nodes) {
    await startDaemon(lab, node.index, { args: options.args, env: options.env });
  }
  const agreement = await waitForAgreement(lab, { timeoutMs: 30_000 });
  if (!agreement.agreed) throw new Error(`the ${lab.record.nodes.length} maps do not agree`);
  if (!options.figures) return;
  const ids = lab.record.nodes.map((n) => n.index);
  await retryUntil(
    async () => {
      for (const viewer of ids) {
        for (const id of ids) {
          if ((await readNodeInfo(`${nodeRoot(lab, viewer)}/nodes`, id))?.status !== "up") {
            return false;
          }
        }
      }
      return true;
    },
    30_000,
    { what: "every node's figures everywhere", intervalMs: 100 },
  );
}
