import assert from "node:assert/strict";
import {
  formatBytes,
  KEY_HELP,
  type MonOptions,
  monScreen,
  NO_NODES,
} from "../../../lib/views/mon.ts";
import type { NodeInfo } from "../../../lib/state/nodestate.ts";

const G = 1024 ** 3;

/** Two nodes up (one busy and half its memory used, one light and large) and one down. */
const NODES: readonly NodeInfo[] = [
  {
    id: 1,
    status: "up",
    load: 150,
    speed: 10000,
    cpus: 2,
    mem: 2 * G,
    rmem: G,
    tmem: 4 * G,
    util: 75,
  },
  {
    id: 2,
    status: "up",
    load: 40,
    speed: 20000,
    cpus: 4,
    mem: 6 * G,
    rmem: 5 * G,
    tmem: 8 * G,
    util: 10,
  },
  { id: 3, status: "down", load: 0, speed: 0, cpus: 0, mem: 0, rmem: 0, tmem: 0, util: 0 },
];

const BASE: MonOptions = {
  mode: "load",
  showTotal: true,
  showDead: false,
  keys: false,
  columns: 40,
  rows: 12,
};

const screen = (options: Partial<MonOptions>, nodes: readonly NodeInfo[] = NODES) =>
  monScreen(nodes, { ...BASE, ...options });

Deno.test("load: upright bars scaled to the busiest node, ids below, keys on the last row", () => {
  assert.deepEqual(screen({ keys: true }), [
    "om mon: load (1.00 = one yardstick CPU f",
    "3 nodes: 2 up, 1 down (d shows them)",
    "1.50 | ###",
    "     | ###",
    "     | ###",
    "0.86 | ###",
    "     | ###",
    "     | ### ###",
    "     | ### ###",
    "   0 +--------",
    "         1   2",
    "l load  s speed  m memory  r raw memory",
  ]);
  assert.equal(screen({ keys: true, columns: 100 })[11], KEY_HELP);
});

Deno.test("load: the scale never shrinks below one yardstick CPU", () => {
  const idle = NODES.map((n) => ({ ...n, load: 10 }));
  assert.deepEqual(screen({ rows: 8 }, idle).slice(2), [
    "1.00 |",
    "     |",
    "0.50 |",
    "     |",
    "   0 +--------",
    "         1   2",
  ]);
});

Deno.test("memory: used solid, free + above it; d shows the down node as x", () => {
  assert.deepEqual(screen({ mode: "memory", showDead: true }), [
    "om mon: memory (used #, free +)",
    "3 nodes: 2 up, 1 down",
    "8.0G |     +++",
    "     |     +++",
    "     |     +++",
    "     |     +++",
    "4.0G | +++ +++",
    "     | +++ +++",
    "     | ### ###",
    "     | ### ### xxx",
    "   0 +------------",
    "         1   2   3",
  ]);
});

Deno.test("raw memory counts raw free memory; a small terminal gets short bars", () => {
  assert.deepEqual(screen({ mode: "rawmemory", columns: 14, rows: 7 }), [
    "om mon: raw me",
    "3 nodes: 2 up,",
    "8.0G |     +++",
    "5.3G | +++ +++",
    "     | ### ###",
    "   0 +--------",
    "         1   2",
  ]);
});

Deno.test("utilisation has a fixed 100% scale; t hides the count line", () => {
  assert.deepEqual(screen({ mode: "util", showTotal: false, rows: 8 }), [
    "om mon: utilisation (% of all the node's",
    "",
    "100% |",
    "     | ###",
    " 50% | ###",
    "     | ###",
    "   0 +--------",
    "         1   2",
  ]);
});

Deno.test("nodes that do not fit across lie down, one per line, with their values", () => {
  const four = [...NODES, { ...NODES[0], id: 65535, mem: 3 * G }];
  assert.deepEqual(screen({ mode: "memory", showDead: true, columns: 28, rows: 8 }, four), [
    "om mon: memory (used #, free",
    "4 nodes: 3 up, 1 down",
    "    1 |###++     | 2.0G/4.0G",
    "    2 |###+++++++| 2.0G/8.0G",
    "    3 |          | down",
    "65535 |#++++     | 1.0G/4.0G",
  ]);
});

Deno.test("lying bars say how many did not fit", () => {
  const six = Array.from(
    { length: 6 },
    (_, i) => ({ ...NODES[0], id: 10000 + i, speed: 5000 * i }),
  );
  assert.deepEqual(screen({ mode: "speed", columns: 24, rows: 6 }, six), [
    "om mon: speed (10000 = o",
    "6 nodes: 6 up, 0 down",
    "10000 |          | 0",
    "10001 |##        | 5000",
    "10002 |####      | 10000",
    "... and 3 more nodes (th",
  ]);
});

Deno.test("no nodes, nobody up, or unreadable information: a message instead of bars", () => {
  assert.deepEqual(screen({}, []), [
    "om mon: load (1.00 = one yardstick CPU f",
    "",
    "no node information yet: is om discover",
  ]);
  assert.equal(screen({ columns: 60 }, [])[2], NO_NODES);
  assert.equal(NO_NODES, "no node information yet: is om discover running?");
  assert.deepEqual(screen({}, [NODES[2]]).slice(1), [
    "1 node: 0 up, 1 down (d shows them)",
    "no node is up (d shows the 1 down)",
  ]);
  assert.deepEqual(screen({ message: "Cannot read it" }).slice(2), ["Cannot read it"]);
  assert.deepEqual(screen({ keys: true, rows: 5, message: "Cannot read it" }), [
    "om mon: load (1.00 = one yardstick CPU f",
    "3 nodes: 2 up, 1 down (d shows them)",
    "Cannot read it",
    "",
    "l load  s speed  m memory  r raw memory",
  ]);
});

Deno.test("a terminal too small for any bar says so", () => {
  assert.deepEqual(screen({ columns: 10, rows: 3 }), ["om mon: lo", "3 nodes: 2", "the termin"]);
  assert.equal(screen({ rows: 1 }).length, 1);
});

Deno.test("formatBytes: binary units, short", () => {
  assert.equal(formatBytes(0), "0");
  assert.equal(formatBytes(1000), "1000");
  assert.equal(formatBytes(64 * 1024), "64K");
  assert.equal(formatBytes(512 * 1024 ** 2), "512M");
  assert.equal(formatBytes(3.94 * G), "3.9G");
});
