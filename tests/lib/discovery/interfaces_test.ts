import assert from "node:assert/strict";
import {
  defaultRouteInterface,
  type NetworkSetupError,
  resolveInterfaces,
} from "../../../lib/discovery/interfaces.ts";

const ROUTES = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t000A4D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t014D0A0A\t0003\t0\t0\t0\t00000000\t0\t0\t0
`;
const NICS = [
  { name: "lo", address: "127.0.0.1", netmask: "255.0.0.0" },
  { name: "eth0", address: "10.77.0.5", netmask: "255.255.255.0" },
  { name: "eth1", address: "10.77.1.5", netmask: "255.255.255.0" },
];

Deno.test("netif: the default route's interface is found in /proc/net/route", () => {
  assert.equal(defaultRouteInterface(ROUTES), "eth0");
  assert.equal(defaultRouteInterface(ROUTES.split("\n").slice(0, 2).join("\n")), undefined);
  assert.equal(defaultRouteInterface(""), undefined);
});

Deno.test("netif: -i names are resolved in order; no default route gives omdiscd's words", () => {
  assert.deepEqual(resolveInterfaces([], NICS, ROUTES).map((n) => n.name), ["eth0"]);
  assert.deepEqual(
    resolveInterfaces(["eth1", "eth0"], NICS, "").map((n) => n.address),
    ["10.77.1.5", "10.77.0.5"],
  );
  assert.throws(() => resolveInterfaces([], NICS, ""), (e: NetworkSetupError) => {
    assert.deepEqual(e.lines, [
      "Unable to determine address of default interface.  This may happen because there is " +
      "no default route configured.  Without a default route, an interface must be: Network " +
      "is unreachable",
      "Unable to initialize network.  Exiting.",
    ]);
    return true;
  });
  assert.throws(() => resolveInterfaces(["eth9"], NICS, ROUTES), /interface eth9/);
  assert.throws(() => resolveInterfaces(["eth0", "eth0"], NICS, ROUTES), /named twice/);
  assert.throws(() => resolveInterfaces(Array(7).fill("eth0"), NICS, ROUTES), /at most 6/);
});
