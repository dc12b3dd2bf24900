/**
 * CRIU for the tests that need a real one: found as om finds it (OM_CRIU, else PATH) and checked
 * with om's preflight once per test file. Such a test runs when CRIU is usable; when
 * OM_REQUIRE_CRIU=1 (scripts/test as root) an unusable CRIU is its failure, not a skip.
 */
import { findCriu, type Preflight, preflight } from "../../lib/criu/preflight.ts";

const binary = findCriu((name) => Deno.env.get(name));
const required = Deno.env.get("OM_REQUIRE_CRIU") === "1";
let found: Preflight | Error;
try {
  found = binary
    ? await preflight({ binary, now: () => performance.now() })
    : new Error("no criu on PATH and OM_CRIU not set");
} catch (error) {
  found = error as Error;
}
const usable = !(found instanceof Error);

/**
 * A test that needs CRIU (and, with `root`, root): its name says when it is skipped for want of a
 * usable CRIU; `fn` is given the criu binary.
 */
export function criuTest(
  name: string,
  fn: (binary: string) => Promise<void>,
  options: { root?: boolean } = {},
): Deno.TestDefinition {
  const notRoot = options.root === true && Deno.uid() !== 0;
  return {
    name: `${name}${usable || required ? "" : " (SKIPPED: no usable CRIU)"}`,
    ignore: notRoot || (!usable && !required),
    async fn() {
      if (found instanceof Error) {
        throw new Error(`CRIU is required (OM_REQUIRE_CRIU=1) but unusable: ${found.message}`);
      }
      await fn(binary!);
    },
  };
}
