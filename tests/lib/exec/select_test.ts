import assert from "node:assert/strict";
import { mapNodes, selectNodes } from "../../../lib/exec/select.ts";

Deno.test("select: a map's node ids, aliases aside", () => {
  assert.deepEqual(
    mapNodes({
      gateways: 1,
      entries: [
        { base: 5, address: "10.0.0.5", count: 2 },
        { base: 1, address: "10.0.0.1", count: 1 },
        { base: 256 + 1, address: "10.0.1.1", count: 0 },
      ],
    }),
    [1, 5, 6],
  );
});

Deno.test("select: without -w, the map's nodes that are up, this node always", () => {
  const status = (node: number) => ({ 2: "down", 3: "up" } as const)[node as 2 | 3];
  assert.deepEqual(selectNodes({ self: 1, members: [1, 2, 3, 4], status }), {
    ask: [1, 3, 4],
    notAsked: [],
  });
  // This node counts as up even when its own file says otherwise.
  assert.deepEqual(
    selectNodes({ self: 2, members: [1, 2], status: () => "down" }).ask,
    [2],
  );
});

Deno.test("select: with -w, the nodes listed; down or unknown ones reported, not asked", () => {
  const status = (node: number) => ({ 2: "down", 9: "down" } as const)[node as 2 | 9];
  const selection = selectNodes({
    self: 1,
    members: [1, 2, 3],
    status,
    wanted: [3, 2, 1, 7, 9, 3],
  });
  assert.deepEqual(selection.ask, [1, 3]);
  assert.deepEqual(
    selection.notAsked.map((r) => [r.node, r.outcome]),
    [
      [2, { kind: "down", reason: "its status is down (no figures from it lately)" }],
      [7, { kind: "down", reason: "it is not in the cluster map" }],
      [9, { kind: "down", reason: "it is not in the cluster map" }],
    ],
  );
});
