import assert from "node:assert/strict";
import { netRates, parseNetDev, readNetCounters } from "../../../lib/web/netdev.ts";

/** /proc/net/dev as Linux 6 writes it (a lab node: lo and eth0). */
const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   14000     140    0    0    0     0          0         0    14000     140    0    0    0     0       0          0
  eth0: 2345678   12000    0    0    0     0          0        30   987654    9000    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
`;

Deno.test("netdev: the named interfaces' bytes received and sent", () => {
  assert.deepEqual(parseNetDev(NET_DEV, ["eth0"]), { rx: 2345678, tx: 987654 });
  assert.deepEqual(parseNetDev(NET_DEV, ["eth0", "eth1"]), { rx: 2345778, tx: 987854 });
  assert.deepEqual(parseNetDev(NET_DEV, ["wlan0"]), { rx: 0, tx: 0 });
});

Deno.test("netdev: without names, every interface but lo", () => {
  assert.deepEqual(parseNetDev(NET_DEV), { rx: 2345778, tx: 987854 });
});

Deno.test("netdev: lines that do not parse are skipped", () => {
  assert.deepEqual(parseNetDev("eth0: 1 2 3\nnonsense\neth1: x y z 1 2 3 4 5 6 7\n"), {
    rx: 0,
    tx: 0,
  });
});

Deno.test("netdev: rates between two readings, unknown without one or when a counter went back", () => {
  assert.deepEqual(netRates({ rx: 1000, tx: 500 }, { rx: 3000, tx: 1500 }, 2000), {
    in: 1000,
    out: 500,
  });
  assert.deepEqual(netRates(undefined, { rx: 1, tx: 1 }, 1000), { in: null, out: null });
  assert.deepEqual(netRates({ rx: 5, tx: 5 }, { rx: 1, tx: 9 }, 1000), { in: null, out: null });
  assert.deepEqual(netRates({ rx: 5, tx: 5 }, { rx: 9, tx: 9 }, 0), { in: null, out: null });
});

Deno.test("netdev: this machine's counters read (lo left out)", () => {
  const counters = readNetCounters();
  assert.ok(counters.rx >= 0 && counters.tx >= 0);
  assert.deepEqual(readNetCounters(["no-such-interface"]), { rx: 0, tx: 0 });
});
