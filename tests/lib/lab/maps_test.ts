import assert from "node:assert/strict";
import { mapNodeIds } from "../../../lib/lab/maps.ts";

Deno.test("mapNodeIds expands ranges and leaves aliases out", () => {
  assert.deepEqual(
    mapNodeIds({
      gateways: 0,
      entries: [
        { base: 5, address: "10.0.0.5", count: 1 },
        { base: 1, address: "10.0.0.1", count: 3 },
        { base: 300, address: "10.0.1.44", count: 0 },
        { base: 2, address: "10.0.0.2", count: 1 },
      ],
    }),
    [1, 2, 3, 5],
  );
});
