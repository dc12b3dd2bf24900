import assert from "node:assert/strict";
import type { ClusterMap } from "../../../lib/state/hpcmap.ts";
import { renderShowmap, showmapJson, showmapView } from "../../../lib/views/showmap.ts";

/** The HOWTO's five nodes, in the order they were learnt. */
const HOWTO: ClusterMap = {
  gateways: 0,
  entries: [
    { base: 0x0adc, address: "192.168.10.220", count: 1 },
    { base: 0x0a4e, address: "192.168.10.78", count: 1 },
    { base: 0x0a56, address: "192.168.10.86", count: 1 },
    { base: 0x0a43, address: "192.168.10.67", count: 1 },
    { base: 0x0a4a, address: "192.168.10.74", count: 1 },
  ],
};

Deno.test("the HOWTO's showmap output, byte for byte", () => {
  assert.equal(
    renderShowmap(showmapView(0x0adc, HOWTO)),
    "My Node-Id: 0x0adc\n" +
      "\n" +
      "Base Node-Id Address          Count\n" +
      "------------ ---------------- -----\n" +
      "0x0adc       192.168.10.220   1\n" +
      "0x0a4e       192.168.10.78    1\n" +
      "0x0a56       192.168.10.86    1\n" +
      "0x0a43       192.168.10.67    1\n" +
      "0x0a4a       192.168.10.74    1\n",
  );
});

Deno.test("own node first, the others in stored order, unsorted", () => {
  const view = showmapView(0x0a56, HOWTO);
  assert.deepEqual(view.rows.map((r) => r.base), [0x0a56, 0x0adc, 0x0a4e, 0x0a43, 0x0a4a]);
  const lines = renderShowmap(view).split("\n");
  assert.equal(lines[0], "My Node-Id: 0x0a56");
  assert.equal(lines[4], "0x0a56       192.168.10.86    1");
});

Deno.test("own node inside a range puts the range first; aliases say ALIAS", () => {
  const map: ClusterMap = {
    gateways: 1,
    entries: [
      { base: 1, address: "10.0.0.1", count: 1 },
      { base: 2, address: "192.168.1.2", count: 3 },
      { base: 3, address: "172.16.255.255", count: 0 },
    ],
  };
  assert.equal(
    renderShowmap(showmapView(3, map)),
    "My Node-Id: 0x0003\n\n" +
      "Base Node-Id Address          Count\n" +
      "------------ ---------------- -----\n" +
      "0x0002       192.168.1.2      3\n" +
      "0x0001       10.0.0.1         1\n" +
      "0x0003       172.16.255.255   ALIAS\n",
  );
});

Deno.test("a node not in the map, and an empty map with node id 0", () => {
  assert.deepEqual(showmapView(99, HOWTO).rows, HOWTO.entries);
  assert.equal(
    renderShowmap(showmapView(0, { gateways: 0, entries: [] })),
    "My Node-Id: 0x0000\n\nBase Node-Id Address          Count\n------------ ---------------- -----\n",
  );
});

Deno.test("JSON carries the same rows as the table", () => {
  const map: ClusterMap = {
    gateways: 2,
    entries: [
      { base: 0x0a4e, address: "192.168.10.78", count: 1 },
      { base: 0x0adc, address: "192.168.10.220", count: 1 },
      { base: 0x0adc, address: "10.0.0.220", count: 0 },
    ],
  };
  const json = showmapJson(showmapView(2780, map, { backend: "alpha" }));
  assert.deepEqual(json, {
    self: 2780,
    selfHex: "0x0adc",
    backend: "alpha",
    gateways: 2,
    entries: [
      { base: 2780, baseHex: "0x0adc", address: "192.168.10.220", count: 1 },
      { base: 2638, baseHex: "0x0a4e", address: "192.168.10.78", count: 1 },
      { base: 2780, baseHex: "0x0adc", address: "10.0.0.220", count: 0, alias: true },
    ],
  });
  assert.equal(showmapJson(showmapView(0, { gateways: 0, entries: [] })).backend, "userland");
});
