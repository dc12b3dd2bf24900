import assert from "node:assert/strict";
import { formatNodeList, gatherResults } from "../../../lib/exec/gather.ts";
import { type ExecOutcome, type ExecResult, notRun } from "../../../lib/exec/wire.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function result(node: number, stdout: string, outcome: ExecOutcome, stderr = ""): ExecResult {
  return {
    node,
    outcome,
    stdout: bytes(stdout),
    stderr: bytes(stderr),
    dropped: { stdout: 0, stderr: 0 },
    ms: node,
  };
}
const ok = { kind: "exited", code: 0 } as const;

Deno.test("gather: node lists as ranges, as om run -j reads them", () => {
  assert.equal(formatNodeList([]), "");
  assert.equal(formatNodeList([4]), "4");
  assert.equal(formatNodeList([1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
  assert.equal(formatNodeList([8, 7, 1, 3, 2, 2]), "1-3,7-8");
  assert.equal(formatNodeList([1, 3]), "1,3");
});

Deno.test("gather: identical output and outcome together, ordered by lowest node", () => {
  const groups = gatherResults([
    result(4, "b\n", ok),
    result(1, "a\n", ok),
    result(2, "a\n", ok),
    result(3, "a\n", { kind: "exited", code: 1 }),
    result(5, "a\n", ok, "warn\n"),
    result(6, "a\n", ok),
    notRun(7, { kind: "refused", reason: "no" }),
    notRun(8, { kind: "refused", reason: "no" }),
    notRun(9, { kind: "down", reason: "no" }),
  ]);
  assert.deepEqual(groups.map((g) => g.nodes), [[1, 2, 6], [3], [4], [5], [7, 8], [9]]);
  assert.equal(groups[0].result.node, 1);
});

Deno.test("gather: output that differs in one byte, or in what was dropped, stays apart", () => {
  const a = result(1, "x".repeat(100), ok);
  const b = result(2, "x".repeat(99) + "y", ok);
  const c = { ...result(3, "x".repeat(100), ok), dropped: { stdout: 10, stderr: 0 } };
  const d = result(4, "x".repeat(100), ok);
  assert.deepEqual(gatherResults([a, b, c, d]).map((g) => g.nodes), [[1, 4], [2], [3]]);
  // The same words, other kinds; the same code, other signals.
  const e = notRun(5, { kind: "down", reason: "r" });
  const f = notRun(6, { kind: "unreachable", reason: "r" });
  const g = result(7, "", { kind: "signal", signal: "SIGTERM", code: 143 });
  const h = result(8, "", { kind: "exited", code: 143 });
  assert.deepEqual(gatherResults([e, f, g, h]).map((x) => x.nodes), [[5], [6], [7], [8]]);
});
