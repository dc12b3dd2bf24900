import assert from "node:assert/strict";
import {
  describeRoute,
  parseProcNet,
  parseRoutes,
  procIPv4,
  routeTo,
  socketHolders,
  TCP_LISTEN,
} from "../../../lib/doctor/procnet.ts";
import { formatIPv4 } from "../../../lib/base/ipv4.ts";
import { tempDir } from "../../tools/tempdir.ts";

Deno.test("procIPv4 reads /proc's little-endian hex addresses", () => {
  assert.equal(formatIPv4(procIPv4("0100007F")), "127.0.0.1");
  assert.equal(formatIPv4(procIPv4("4D4FC0EF")), "239.192.79.77");
  assert.equal(formatIPv4(procIPv4("00FFFFFF")), "255.255.255.0");
  assert.throws(() => procIPv4("7F00"), SyntaxError);
});

Deno.test("parseProcNet: IPv4 and IPv6 sockets with port, state and inode; junk skipped", () => {
  const text =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
    "   0: 00000000:4F4E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5552 1 0 100 0 0 10 0\n" +
    "   1: 00000000000000000000000000000000:4F4D 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2 0 0\n" +
    "   2: garbage\n";
  assert.deepEqual(parseProcNet(text), [
    { address: "0.0.0.0", port: 20302, state: TCP_LISTEN, inode: 5552 },
    { address: "00000000000000000000000000000000", port: 20301, state: 7, inode: 77 },
  ]);
});

Deno.test("routeTo takes the longest matching route; describeRoute spells it as ip does", () => {
  const routes = parseRoutes(
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
      "eth1\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0\n" +
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
  );
  assert.equal(describeRoute(routeTo(routes, "239.192.79.77")!), "224.0.0.0/4 dev eth1");
  assert.equal(describeRoute(routeTo(routes, "192.0.2.9")!), "192.0.2.0/24 dev eth0");
  assert.equal(describeRoute(routeTo(routes, "8.8.8.8")!), "default dev eth0");
  assert.equal(routeTo(routes.slice(2), "8.8.8.8"), undefined);
});

Deno.test("socketHolders finds the pids whose descriptors link to the sockets", async () => {
  await using dir = await tempDir("procnet");
  const fd = async (pid: number, n: number, target: string) => {
    await Deno.mkdir(`${dir.path}/${pid}/fd`, { recursive: true });
    await Deno.symlink(target, `${dir.path}/${pid}/fd/${n}`);
  };
  await fd(10, 3, "socket:[5552]");
  await fd(10, 4, "socket:[9]");
  await fd(11, 3, "socket:[5552]");
  await fd(12, 0, "/dev/null");
  await Deno.mkdir(`${dir.path}/net`);
  const holders = await socketHolders(dir.path, new Set([5552, 6000]));
  assert.deepEqual([...holders.entries()].map(([i, p]) => [i, p.sort()]), [[5552, [10, 11]]]);
});
