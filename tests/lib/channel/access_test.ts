import assert from "node:assert/strict";
import {
  formatCidr,
  inCidr,
  LOOPBACK,
  makeAcl,
  networkOf,
  parseCidr,
  peerIPv4,
} from "../../../lib/channel/access.ts";

Deno.test("acl: CIDR networks parse, host bits cleared; a bare address is a /32", () => {
  const cases: [string, string][] = [
    ["10.0.0.0/8", "10.0.0.0/8"],
    ["10.77.0.1/24", "10.77.0.0/24"],
    ["192.168.10.220", "192.168.10.220/32"],
    ["192.168.10.220/32", "192.168.10.220/32"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["255.255.255.255/1", "128.0.0.0/1"],
    ["172.16.5.4/12", "172.16.0.0/12"],
  ];
  for (const [text, expected] of cases) assert.equal(formatCidr(parseCidr(text)), expected, text);
  assert.deepEqual(parseCidr("10.77.1.9/16"), { base: 0x0a4d0000, prefix: 16 });
  assert.equal(formatCidr(LOOPBACK), "127.0.0.0/8");
});

Deno.test("acl: malformed networks are SyntaxErrors naming the text", () => {
  for (
    const text of [
      "",
      "10.0.0.0/",
      "/8",
      "10.0.0/8",
      "10.0.0.0/33",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "10.0.0.0/x",
      "10.0.0.256/8",
      "10.0.0.0/123",
      "host.example/24",
    ]
  ) {
    assert.throws(
      () => parseCidr(text),
      (e) => e instanceof SyntaxError && e.message.startsWith(`Cannot parse network "${text}"`),
      text,
    );
  }
});

Deno.test("acl: membership of a network, edges included", () => {
  const net = parseCidr("10.77.0.0/24");
  assert.equal(inCidr("10.77.0.0", net), true);
  assert.equal(inCidr("10.77.0.255", net), true);
  assert.equal(inCidr("10.77.1.0", net), false);
  assert.equal(inCidr("10.76.255.255", net), false);
  assert.equal(inCidr("1.2.3.4", parseCidr("0.0.0.0/0")), true);
  assert.equal(inCidr("10.0.0.2", parseCidr("10.0.0.1")), false);
  assert.equal(inCidr("200.1.1.1", parseCidr("128.0.0.0/1")), true);
});

Deno.test("acl: an interface's network from its address and netmask", () => {
  assert.equal(
    formatCidr(networkOf({ address: "192.168.10.78", netmask: "255.255.255.0" })),
    "192.168.10.0/24",
  );
  assert.equal(
    formatCidr(networkOf({ address: "10.1.2.3", netmask: "255.255.255.255" })),
    "10.1.2.3/32",
  );
  assert.equal(formatCidr(networkOf({ address: "10.1.2.3", netmask: "0.0.0.0" })), "0.0.0.0/0");
  assert.throws(
    () => networkOf({ address: "10.1.2.3", netmask: "255.0.255.0" }),
    /netmask "255.0.255.0": not contiguous/,
  );
});

Deno.test("acl: peer addresses as sockets report them", () => {
  assert.equal(peerIPv4("10.0.0.1"), "10.0.0.1");
  assert.equal(peerIPv4("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(peerIPv4("::FFFF:10.0.0.1"), "10.0.0.1");
  assert.equal(peerIPv4("::1"), "127.0.0.1");
  assert.equal(peerIPv4("fe80::1"), undefined);
  assert.equal(peerIPv4("not an address"), undefined);
});

Deno.test("acl: loopback, members and allowed networks get in; nobody else", () => {
  const members = new Set(["192.168.50.7"]);
  const acl = makeAcl({ members: () => members, allowed: ["10.77.0.0/24", "172.16.0.9"] });
  assert.equal(acl("127.0.0.1"), true, "the node itself");
  assert.equal(acl("127.1.2.3"), true, "all of 127/8 is this node");
  assert.equal(acl("::1"), true);
  assert.equal(acl("10.77.0.42"), true, "allowed network");
  assert.equal(acl("::ffff:10.77.0.42"), true);
  assert.equal(acl("172.16.0.9"), true, "allowed single address");
  assert.equal(acl("172.16.0.10"), false);
  assert.equal(acl("192.168.50.7"), true, "member");
  assert.equal(acl("192.168.50.8"), false);
  assert.equal(acl("10.77.1.1"), false);
  assert.equal(acl("fe80::1"), false);
  assert.equal(acl(""), false);
});

Deno.test("acl: members are asked at every check, so the map's changes count at once", () => {
  let members = new Set<string>();
  let asked = 0;
  const acl = makeAcl({
    members: () => {
      asked++;
      return members;
    },
    allowed: [],
  });
  assert.equal(acl("192.168.1.5"), false);
  members = new Set(["192.168.1.5"]);
  assert.equal(acl("192.168.1.5"), true);
  members = new Set();
  assert.equal(acl("192.168.1.5"), false);
  assert.equal(asked, 3);
  assert.equal(acl("127.0.0.1"), true);
  assert.equal(asked, 3, "loopback needs no lookup");
});

Deno.test("acl: by default the talking interfaces' networks are allowed", () => {
  const acl = makeAcl({
    members: () => new Set(),
    interfaces: [
      { address: "10.77.0.1", netmask: "255.255.255.0" },
      { address: "10.88.4.1", netmask: "255.255.0.0" },
    ],
  });
  assert.equal(acl("10.77.0.200"), true);
  assert.equal(acl("10.88.200.3"), true);
  assert.equal(acl("10.77.1.1"), false);
  // An explicit list replaces the interfaces' networks.
  const explicit = makeAcl({
    members: () => new Set(),
    allowed: ["10.99.0.0/16"],
    interfaces: [{ address: "10.77.0.1", netmask: "255.255.255.0" }],
  });
  assert.equal(explicit("10.77.0.200"), false);
  assert.equal(explicit("10.99.3.3"), true);
  // Neither: only loopback and members.
  const bare = makeAcl({ members: () => new Set(["10.5.5.5"]) });
  assert.equal(bare("10.5.5.5"), true);
  assert.equal(bare("10.5.5.6"), false);
  assert.equal(bare("127.0.0.1"), true);
});

Deno.test("acl: a bad allowed network fails when the rule is built", () => {
  assert.throws(() => makeAcl({ members: () => new Set(), allowed: ["10.0.0.0/40"] }), SyntaxError);
});
