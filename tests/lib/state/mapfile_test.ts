import assert from "node:assert/strict";
import {
  findNode,
  formatMap,
  listNodes,
  MAX_MAP_ENTRIES,
  parseMapFile,
} from "../../../lib/state/mapfile.ts";
import type { MapEntry } from "../../../lib/state/hpcmap.ts";

const HOSTS: Record<string, string> = {
  node1: "192.168.1.1",
  node2: "192.168.1.2",
  node3: "192.168.1.3",
  node4: "192.168.1.4",
};

/** A resolver over a fixed table, so tests never touch the system's resolver. */
function fakeResolve(host: string): Promise<string> {
  const address = HOSTS[host];
  if (address === undefined) {
    return Promise.reject(Object.assign(new Error("not found"), { code: "ENOTFOUND" }));
  }
  return Promise.resolve(address);
}

const parse = (text: string, path = "/etc/openmosix.map") =>
  parseMapFile(text, path, { resolve: fakeResolve });

/** Asserts that parsing fails with exactly this message. */
async function rejects(text: string, message: string, path = "/etc/openmosix.map") {
  await assert.rejects(parse(text, path), (error: unknown) => {
    assert.ok(error instanceof SyntaxError, `expected a SyntaxError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

const four = (count: number): MapEntry[] =>
  [1, 2, 3, 4].map((i) => ({ base: i, address: `192.168.1.${i}`, count }));

Deno.test("HOWTO: one host name per line, resolved", async () => {
  assert.deepEqual(await parse("1 node1 1\n2 node2 1\n3 node3 1\n4 node4 1\n"), four(1));
});

Deno.test("HOWTO: one address per line", async () => {
  const text = "1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n";
  assert.deepEqual(await parse(text), four(1));
});

Deno.test("HOWTO: one range of four", async () => {
  const entries = await parse("1 192.168.1.1 4\n");
  assert.deepEqual(entries, [{ base: 1, address: "192.168.1.1", count: 4 }]);
  assert.deepEqual(listNodes(entries), [
    { id: 1, address: "192.168.1.1" },
    { id: 2, address: "192.168.1.2" },
    { id: 3, address: "192.168.1.3" },
    { id: 4, address: "192.168.1.4" },
  ]);
});

Deno.test("HOWTO: ALIAS gives node 4 a second address", async () => {
  const text = "1 192.168.1.1 1\n2 192.168.1.2 1\n3 192.168.1.3 1\n4 192.168.1.4 1\n" +
    "4 192.168.10.10 ALIAS\n";
  const entries = await parse(text);
  assert.deepEqual(entries, [...four(1), { base: 4, address: "192.168.10.10", count: 0 }]);
  assert.deepEqual(listNodes(entries).at(-1), { id: 4, address: "192.168.10.10" });
  assert.equal(findNode(entries, ["10.0.0.1", "192.168.10.10"]), 4);
});

Deno.test("HOWTO: the commented file of the HOWTO", async () => {
  const text = `# openMosix CONFIGURATION
# ===================
#
# Each line should contain 3 fields, mapping IP addresses to openMosix node-numbers:
# 1) first openMosix node-number in range.
# 2) IP address of the above node (or node-name from /etc/hosts).
# 3) number of nodes in this range.
#
# Example: 10 machines with IP 192.168.1.50 - 192.168.1.59
# 1 192.168.1.50 10
#
# openMosix-# IP number-of-nodes
# ============================
1 192.168.10.220 1
2 192.168.10.78 1
3 192.168.10.84 1
`;
  assert.deepEqual(await parse(text), [
    { base: 1, address: "192.168.10.220", count: 1 },
    { base: 2, address: "192.168.10.78", count: 1 },
    { base: 3, address: "192.168.10.84", count: 1 },
  ]);
});

Deno.test("tabs, runs of blanks, trailing comments, CRLF and lower-case alias are accepted", async () => {
  const text = "\t1\t192.168.1.1\t2   # two nodes\r\n\n   \n3 192.168.1.9 1\r\n" +
    "1  10.0.0.1  alias\n";
  assert.deepEqual(await parse(text), [
    { base: 1, address: "192.168.1.1", count: 2 },
    { base: 3, address: "192.168.1.9", count: 1 },
    { base: 1, address: "10.0.0.1", count: 0 },
  ]);
});

Deno.test("count 0 is the same as ALIAS; the alias may come before its node", async () => {
  assert.deepEqual(await parse("2 10.0.0.9 0\n1 10.0.0.1 2\n"), [
    { base: 2, address: "10.0.0.9", count: 0 },
    { base: 1, address: "10.0.0.1", count: 2 },
  ]);
});

Deno.test("an empty or comment-only file is an empty map", async () => {
  assert.deepEqual(await parse(""), []);
  assert.deepEqual(await parse("# nothing\n\n"), []);
});

Deno.test("the largest ranges that fit are accepted", async () => {
  assert.deepEqual(await parse("1 10.0.0.0 256\n"), [{ base: 1, address: "10.0.0.0", count: 256 }]);
  assert.deepEqual(await parse("65534 10.0.0.1 2\n"), [
    { base: 65534, address: "10.0.0.1", count: 2 },
  ]);
});

Deno.test("256 entries are accepted, the 257th is refused at its line", async () => {
  const lines = Array.from({ length: 257 }, (_, i) => `${i + 1} 10.0.${i >> 8}.${i & 255} 1`);
  const entries = await parse(["# header", ...lines.slice(0, MAX_MAP_ENTRIES)].join("\n"));
  assert.equal(entries.length, 256);
  await rejects(
    ["# header", ...lines].join("\n"),
    "/etc/openmosix.map:258: more than 256 entries (a map holds at most 256)",
  );
});

Deno.test("each kind of mistake names FILE:LINE and the value", async () => {
  const cases: [string, string][] = [
    [
      "1 10.0.0.1 1\n2 10.0.0.2 1 extra\n",
      `:2: expected 3 fields "first-id address count", found 4 in "2 10.0.0.2 1 extra"`,
    ],
    ["\n1 10.0.0.1\n", `:2: expected 3 fields "first-id address count", found 2 in "1 10.0.0.1"`],
    ["x 10.0.0.1 1\n", `:1: node id "x" is not a number`],
    ["-1 10.0.0.1 1\n", `:1: node id "-1" is not a number`],
    ["# c\n\n0 10.0.0.1 1\n", `:3: node id "0" is out of range (1-65535)`],
    ["65536 10.0.0.1 1\n", `:1: node id "65536" is out of range (1-65535)`],
    ["1 10.0.0.1 four\n", `:1: count "four" is not a number or ALIAS`],
    ["1 10.0.0.1 -2\n", `:1: count "-2" is not a number or ALIAS`],
    ["65535 10.0.0.1 2\n", ":1: range of 2 nodes from node id 65535 runs past 65535"],
    [
      "1 10.0.0.1 99999999999999999999\n",
      ":1: range of 99999999999999999999 nodes from node id 1 runs past 65535",
    ],
    ["1 192.168.1.300 1\n", `:1: address "192.168.1.300" is not an IPv4 address`],
    ["1 10.0.1 1\n", `:1: address "10.0.1" is not an IPv4 address`],
    ["1 no/such 1\n", `:1: "no/such" is neither an IPv4 address nor a host name`],
    ["1 node1 4\n", `:1: a range of 4 nodes needs an address, not the host name "node1"`],
    ["1 unknown 1\n", `:1: cannot resolve host name "unknown" to an IPv4 address: ENOTFOUND`],
    ["1 192.168.1.250 7\n", ":1: range of 7 nodes from 192.168.1.250 runs past 192.168.1.255"],
    ["1 10.0.0.1 4\n3 10.0.0.9 4\n", ":2: node ids 3-6 overlap node ids 1-4 of line 1"],
    ["1 10.0.0.1 1\n1 10.0.0.2 1\n", ":2: node id 1 is already defined on line 1"],
    ["1 10.0.0.1 4\n4 10.0.1.1 1\n", ":2: node id 4 is already defined on line 1"],
    ["4 10.0.0.1 1\n3 10.0.1.1 2\n", ":2: node ids 3-4 overlap node id 4 of line 1"],
    ["1 10.0.0.1 4\n9 10.0.0.3 1\n", ":2: address 10.0.0.3 is already used on line 1"],
    ["1 10.0.0.1 1\n1 10.0.0.1 ALIAS\n", ":2: address 10.0.0.1 is already used on line 1"],
    ["1 node1 1\n2 192.168.1.1 1\n", ":2: address 192.168.1.1 is already used on line 1"],
    [
      "1 10.0.0.1 1\n# c\n7 10.0.9.9 ALIAS\n2 10.0.0.2 1\n",
      ":3: ALIAS for node id 7, which no line of the map defines",
    ],
  ];
  for (const [text, reason] of cases) await rejects(text, `/etc/openmosix.map${reason}`);
});

Deno.test("standard input is named - in errors", async () => {
  await rejects(
    "1 10.0.0.1 1 1\n",
    `-:1: expected 3 fields "first-id address count", found 4 in "1 10.0.0.1 1 1"`,
    "-",
  );
});

Deno.test("a resolver that answers with no IPv4 address is an error at the line", async () => {
  await assert.rejects(
    parseMapFile("1 host6 1\n", "m", { resolve: () => Promise.resolve("::1") }),
    new SyntaxError(`m:1: host name "host6" resolved to "::1", not an IPv4 address`),
  );
});

Deno.test("the default resolver resolves localhost", async () => {
  assert.deepEqual(await parseMapFile("1 localhost 1\n", "m"), [
    { base: 1, address: "127.0.0.1", count: 1 },
  ]);
});

Deno.test("findNode takes the first of the addresses the map defines", async () => {
  const entries = await parse("10 192.168.1.10 5\n20 10.1.1.1 1\n");
  assert.equal(findNode(entries, ["127.0.0.1", "192.168.1.12", "10.1.1.1"]), 12);
  assert.equal(findNode(entries, ["10.1.1.1", "192.168.1.12"]), 20);
  assert.equal(findNode(entries, ["127.0.0.1"]), undefined);
  assert.equal(findNode(entries, []), undefined);
});

Deno.test("formatMap prints the map-file form, and it parses back to the same entries", async () => {
  const entries: MapEntry[] = [
    { base: 1, address: "192.168.1.1", count: 4 },
    { base: 9, address: "10.0.0.9", count: 1 },
    { base: 2, address: "192.168.10.10", count: 0 },
  ];
  const text = formatMap(entries);
  assert.equal(text, "1 192.168.1.1 4\n9 10.0.0.9 1\n2 192.168.10.10 ALIAS\n");
  assert.deepEqual(await parse(text), entries);
  assert.equal(formatMap([]), "");
});
