import assert from "node:assert/strict";
import type { MapEntry } from "../../../lib/state/hpcmap.ts";
import {
  addressesOf,
  type HostResolver,
  nameAddresses,
  nodeOfAddress,
  parseNodeId,
  parseNodeQuery,
  renderAddresses,
  renderId,
  renderSelf,
  whois,
  whoisJson,
} from "../../../lib/views/whois.ts";

/** An alias listed before its node's range, a range of four, and a single node. */
const ENTRIES: readonly MapEntry[] = [
  { base: 11, address: "172.16.0.11", count: 0 },
  { base: 10, address: "10.0.0.10", count: 4 },
  { base: 2780, address: "192.168.10.220", count: 1 },
];

const RESOLVER: HostResolver = {
  lookup: (host) =>
    host === "eleven.example"
      ? Promise.resolve(["203.0.113.1", "172.16.0.11"])
      : Promise.reject(new Error("getaddrinfo ENOTFOUND")),
  reverse: (address) => Promise.resolve(address === "10.0.0.11" ? ["eleven.example"] : []),
};

Deno.test("node ids: decimal or showmap's hex, 1 to 65535", () => {
  assert.equal(parseNodeId("2780"), 2780);
  assert.equal(parseNodeId("0x0adc"), 2780);
  assert.equal(parseNodeId("0XFFFF"), 65535);
  assert.equal(parseNodeId("007"), 7);
  for (const bad of ["0", "65536", "0x0", "0x10000"]) {
    assert.throws(() => parseNodeId(bad), { name: "SyntaxError", message: /not between 1/ });
  }
  for (const bad of ["", "-1", "1.5", "12a", "0x", " 1"]) {
    assert.throws(() => parseNodeId(bad), { name: "SyntaxError", message: /not a number/ });
  }
});

Deno.test("a whois argument is an id, an address or a host name", () => {
  assert.deepEqual(parseNodeQuery("12"), { kind: "id", id: 12 });
  assert.deepEqual(parseNodeQuery("0x000c"), { kind: "id", id: 12 });
  assert.deepEqual(parseNodeQuery("10.0.0.12"), { kind: "address", address: "10.0.0.12" });
  assert.deepEqual(parseNodeQuery("node-1.example"), { kind: "host", host: "node-1.example" });
  assert.throws(() => parseNodeQuery("10.0.0"), /not an IPv4 address/);
  assert.throws(() => parseNodeQuery("10.0.0.256"), /not an IPv4 address/);
  assert.throws(() => parseNodeQuery("a b"), /neither a node id, an address nor a host name/);
  assert.throws(() => parseNodeQuery("0"), /not between 1 and 65535/);
});

Deno.test("ranges count up the last byte; aliases come after the range's address", () => {
  assert.deepEqual(addressesOf(ENTRIES, 10), ["10.0.0.10"]);
  assert.deepEqual(addressesOf(ENTRIES, 11), ["10.0.0.11", "172.16.0.11"]);
  assert.deepEqual(addressesOf(ENTRIES, 13), ["10.0.0.13"]);
  assert.deepEqual(addressesOf(ENTRIES, 14), []);
  assert.equal(nodeOfAddress(ENTRIES, "10.0.0.13"), 13);
  assert.equal(nodeOfAddress(ENTRIES, "172.16.0.11"), 11);
  assert.equal(nodeOfAddress(ENTRIES, "10.0.0.14"), undefined);
});

Deno.test("whois answers ids, addresses and host names from the map", async () => {
  assert.deepEqual(await whois({ kind: "id", id: 11 }, ENTRIES, RESOLVER), {
    id: 11,
    addresses: ["10.0.0.11", "172.16.0.11"],
  });
  assert.deepEqual(await whois({ kind: "address", address: "10.0.0.12" }, ENTRIES, RESOLVER), {
    id: 12,
    addresses: ["10.0.0.12"],
  });
  // The first resolved address the map has wins (here the alias).
  assert.deepEqual(await whois({ kind: "host", host: "eleven.example" }, ENTRIES, RESOLVER), {
    id: 11,
    addresses: ["10.0.0.11", "172.16.0.11"],
  });
  await assert.rejects(
    whois({ kind: "id", id: 14 }, ENTRIES, RESOLVER),
    { message: "Cannot find node 14: it is not in the map in force" },
  );
  await assert.rejects(
    whois({ kind: "address", address: "10.0.0.9" }, ENTRIES, RESOLVER),
    { message: `Cannot find address "10.0.0.9": it is not in the map in force` },
  );
  await assert.rejects(
    whois({ kind: "host", host: "nowhere" }, ENTRIES, RESOLVER),
    { message: `Cannot resolve host name "nowhere": getaddrinfo ENOTFOUND` },
  );
  const empty: HostResolver = { ...RESOLVER, lookup: () => Promise.resolve([]) };
  await assert.rejects(
    whois({ kind: "host", host: "void" }, ENTRIES, empty),
    {
      message:
        `Cannot find host "void": it resolves to nothing, which the map in force does not have`,
    },
  );
});

Deno.test("names are looked up per address; a failure is no name, not an error", async () => {
  const failing: HostResolver = { ...RESOLVER, reverse: () => Promise.reject(new Error("x")) };
  assert.deepEqual(await nameAddresses(["10.0.0.11", "172.16.0.11"], RESOLVER), [
    { address: "10.0.0.11", name: "eleven.example" },
    { address: "172.16.0.11", name: null },
  ]);
  assert.deepEqual(await nameAddresses(["10.0.0.11"], failing), [
    { address: "10.0.0.11", name: null },
  ]);
});

Deno.test("whois output: this node, addresses with names, and ids", () => {
  assert.equal(
    renderSelf({ id: 2780, addresses: ["192.168.10.220"] }),
    "This is om node #2780 (0x0adc) at 192.168.10.220\n",
  );
  assert.equal(renderSelf({ id: 5, addresses: [] }), "This is om node #5 (0x0005)\n");
  assert.equal(
    renderAddresses([
      { address: "10.0.0.11", name: "eleven.example" },
      { address: "172.16.0.11", name: null },
    ]),
    "10.0.0.11 (eleven.example)\n172.16.0.11\n",
  );
  assert.equal(renderId({ id: 2638, addresses: [] }), "2638 (0x0a4e)\n");
  assert.deepEqual(
    whoisJson({ id: 11, addresses: ["10.0.0.11"] }, [{ address: "10.0.0.11", name: null }], false),
    { id: 11, idHex: "0x000b", self: false, addresses: [{ address: "10.0.0.11", name: null }] },
  );
});
