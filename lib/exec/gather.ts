/**
 * `om exec -b`: the nodes whose output (stdout, stderr, what was dropped) and outcome are the same,
 * byte for byte, gathered under one header, as ClusterShell's `clush -b` does; and node lists
 * written as `om run -j` reads them (`1-3,7`). Pure.
 */
import type { ExecOutcome, ExecResult } from "./wire.ts";

/** Nodes that did the same thing: their ids, ascending, and one of their results. */
export interface ExecGroup {
  readonly nodes: readonly number[];
  readonly result: ExecResult;
}

/** Node ids as ranges, ascending: [1,2,3,5,7,8] is "1-3,5,7-8". */
export function formatNodeList(ids: readonly number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const from = sorted[i];
    while (i + 1 < sorted.length && sorted[i + 1] === sorted[i] + 1) i++;
    parts.push(from === sorted[i] ? `${from}` : `${from}-${sorted[i]}`);
  }
  return parts.join(",");
}

/** The outcome's fields in a fixed order, so that equal outcomes give equal keys. */
function outcomeKey(outcome: ExecOutcome): string {
  switch (outcome.kind) {
    case "exited":
      return `exited ${outcome.code}`;
    case "signal":
      return `signal ${outcome.signal} ${outcome.code}`;
    case "timeout":
      return `timeout ${outcome.afterMs}`;
    default:
      return `${outcome.kind} ${"code" in outcome ? outcome.code : ""} ${
        JSON.stringify(outcome.reason)
      }`;
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Gathers the results whose output and outcome are identical; the groups come in the order of
 * their lowest node id.
 */
export function gatherResults(results: readonly ExecResult[]): ExecGroup[] {
  const groups: { nodes: number[]; result: ExecResult; key: string }[] = [];
  const sorted = [...results].sort((a, b) => a.node - b.node);
  for (const result of sorted) {
    const key = `${outcomeKey(result.outcome)} ${result.dropped.stdout} ${result.dropped.stderr}`;
    const group = groups.find((g) =>
      g.key === key && same(g.result.stdout, result.stdout) && same(g.result.stderr, result.stderr)
    );
    if (group) group.nodes.push(result.node);
    else groups.push({ nodes: [result.node], result, key });
  }
  return groups.map(({ nodes, result }) => ({ nodes, result }));
}
