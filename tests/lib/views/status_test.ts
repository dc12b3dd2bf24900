import assert from "node:assert/strict";
import type { MapEntry } from "../../../lib/state/hpcmap.ts";
import {
  clusterSummary,
  formatBytes,
  renderStatus,
  statusJson,
  type StatusView,
} from "../../../lib/views/status.ts";
import { downInfo, type NodeInfo } from "../../../lib/state/nodestate.ts";

const MiB = 1024 ** 2;

const ENTRIES: readonly MapEntry[] = [
  { base: 1, address: "10.0.0.1", count: 3 },
  { base: 2, address: "10.9.0.2", count: 0 },
];

const up = (id: number, cpus: number, mem: number, tmem: number): NodeInfo => ({
  id,
  status: "up",
  load: 10 * id,
  speed: 10000,
  cpus,
  mem,
  rmem: mem,
  tmem,
  util: 5,
});

Deno.test("the cluster counts the map's nodes once each, and sums those up", () => {
  const infos = [up(1, 2, 100, 400), downInfo(2), up(7, 64, 1, 1), up(3, 4, 300, 600)];
  assert.deepEqual(clusterSummary(ENTRIES, infos), {
    nodes: 3,
    up: 2,
    down: 1,
    cpus: 6,
    mem: 400,
    tmem: 1000,
  });
  // A node never heard from counts as down.
  assert.deepEqual(clusterSummary(ENTRIES, []), {
    nodes: 3,
    up: 0,
    down: 3,
    cpus: 0,
    mem: 0,
    tmem: 0,
  });
});

Deno.test("bytes for people", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(512 * MiB), "512.0 MiB");
  assert.equal(formatBytes(3.8 * 1024 * MiB), "3.8 GiB");
});

Deno.test("another node: figures only; down and unheard-of nodes say so", () => {
  const view: StatusView = {
    id: 3,
    addresses: ["10.0.0.3"],
    node: up(3, 4, 300 * MiB, 1024 * MiB),
  };
  assert.equal(
    renderStatus(view),
    "om node #3 (0x0003) at 10.0.0.3\n" +
      "status:      up\n" +
      "speed:       10000\n" +
      "load:        30\n" +
      "cpus:        4\n" +
      "memory:      300.0 MiB available, 300.0 MiB free, 1.0 GiB total\n" +
      "utilisation: 5%\n",
  );
  assert.equal(
    renderStatus({ id: 2, addresses: ["10.0.0.2", "10.9.0.2"], node: downInfo(2) }),
    "om node #2 (0x0002) at 10.0.0.2 (also 10.9.0.2)\nstatus:      down\n",
  );
  assert.equal(
    renderStatus({ id: 9, addresses: [], node: undefined }),
    "om node #9 (0x0009), not in the map\nstatus:      no information yet\n",
  );
  assert.deepEqual(statusJson({ id: 9, addresses: [], node: undefined }), {
    id: 9,
    idHex: "0x0009",
    addresses: [],
    node: null,
  });
});

Deno.test("this node: state, flags as the verbs in force, pending requests, the cluster", () => {
  const view: StatusView = {
    id: 1,
    addresses: ["10.0.0.1"],
    node: undefined,
    local: {
      backend: "kernel",
      state: "/proc/hpc",
      flags: {
        stay: false,
        lstay: true,
        block: true,
        quiet: true,
        nomfs: true,
        expel: true,
        bring: true,
      },
    },
    cluster: { nodes: 1, up: 0, down: 1, cpus: 0, mem: 0, tmem: 0 },
  };
  assert.equal(
    renderStatus(view),
    "This is om node #1 (0x0001) at 10.0.0.1\n" +
      "state:       kernel, /proc/hpc\n" +
      "flags:       nostay lstay block quiet nomfs; expel pending, bring pending\n" +
      "status:      no information yet\n" +
      "\n" +
      "cluster:     1 node in the map, 0 up, 1 down\n" +
      "cpus:        0 on the nodes that are up\n" +
      "memory:      0 B available of 0 B on the nodes that are up\n",
  );
  assert.deepEqual(statusJson(view), {
    id: 1,
    idHex: "0x0001",
    addresses: ["10.0.0.1"],
    node: null,
    backend: "kernel",
    state: "/proc/hpc",
    flags: view.local!.flags,
    cluster: view.cluster,
  });
});
