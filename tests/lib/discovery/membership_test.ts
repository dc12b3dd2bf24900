import assert from "node:assert/strict";
import { Membership } from "../../../lib/discovery/membership.ts";
import type { Announcement } from "../../../lib/discovery/datagram.ts";

const MASK = "255.255.255.0";
const self = { address: "192.168.10.220", netmask: MASK, aliases: [] };
const from = (
  kind: Announcement["kind"],
  address: string,
  aliases: Announcement["aliases"] = [],
): Announcement => ({ kind, source: { address, netmask: MASK }, aliases });

const table = () => new Membership(self, { expireAfter: 15_000 });

Deno.test("membership: a join is learnt, acknowledged, and placed after this node", () => {
  const m = table();
  const outcome = m.receive(from("join", "192.168.10.78"), 1000);
  assert.equal(outcome.acknowledge, true);
  assert.deepEqual(outcome.events.map((e) => e.type), ["joined"]);
  assert.equal(m.selfId, 0x0adc);
  assert.deepEqual(m.toMap().entries, [
    { base: 0x0adc, address: "192.168.10.220", count: 1 },
    { base: 0x0a4e, address: "192.168.10.78", count: 1 },
  ]);
});

Deno.test("membership: members keep the order they were learnt in", () => {
  const m = table();
  for (const last of [86, 67, 74, 78]) m.receive(from("ack", `192.168.10.${last}`), 1);
  assert.deepEqual(m.toMap().entries.map((e) => e.base), [0x0adc, 0x0a56, 0x0a43, 0x0a4a, 0x0a4e]);
});

Deno.test("membership: acks of known nodes refresh them silently; a new node is acknowledged", () => {
  const m = table();
  assert.equal(m.receive(from("ack", "192.168.10.78"), 1).acknowledge, true);
  const again = m.receive(from("ack", "192.168.10.78"), 2);
  assert.deepEqual(again.events, []);
  assert.equal(again.acknowledge, false);
  assert.equal(m.members()[0].lastHeard, 2);
  assert.equal(m.members()[0].firstHeard, 1);
  // A known node that joins again (it restarted) is acknowledged so that it learns us.
  assert.equal(m.receive(from("join", "192.168.10.78"), 3).acknowledge, true);
});

Deno.test("membership: changed aliases are an update, and aliases follow their node in the map", () => {
  const m = table();
  m.receive(from("join", "192.168.10.78"), 1);
  const outcome = m.receive(
    from("ack", "192.168.10.78", [{ address: "10.1.0.78", netmask: "255.255.0.0" }]),
    2,
  );
  assert.deepEqual(outcome.events.map((e) => e.type), ["updated"]);
  assert.deepEqual(m.toMap().entries.slice(1), [
    { base: 0x0a4e, address: "192.168.10.78", count: 1 },
    { base: 0x0a4e, address: "10.1.0.78", count: 0 },
  ]);
});

Deno.test("membership: a leave removes the node; a leave from a stranger changes nothing", () => {
  const m = table();
  m.receive(from("join", "192.168.10.78"), 1);
  assert.deepEqual(m.receive(from("leave", "192.168.10.86"), 2).events, []);
  const outcome = m.receive(from("leave", "192.168.10.78"), 3);
  assert.equal(outcome.acknowledge, false);
  assert.deepEqual(outcome.events.map((e) => [e.type, e.type === "left" && e.reason]), [
    ["left", "leave"],
  ]);
  assert.equal(m.members().length, 0);
});

Deno.test("membership: a node not heard from for the expiry period expires, not before", () => {
  const m = table();
  m.receive(from("join", "192.168.10.78"), 0);
  m.receive(from("join", "192.168.10.86"), 10_000);
  assert.deepEqual(m.expire(15_000), []);
  const events = m.expire(15_001);
  assert.deepEqual(events.map((e) => e.type === "left" && [e.member.address, e.reason]), [
    ["192.168.10.78", "expired"],
  ]);
  assert.deepEqual(m.members().map((n) => n.address), ["192.168.10.86"]);
});

Deno.test("membership: an id claimed by a second address is reported, never overwritten", () => {
  const m = table();
  m.receive(from("join", "192.168.10.78"), 1);
  // 172.16.10.78 has the same last two octets: node 0x0a4e.
  const outcome = m.receive(from("join", "172.16.10.78"), 2);
  assert.deepEqual(outcome.events, [
    { type: "conflict", id: 0x0a4e, holder: "192.168.10.78", claimant: "172.16.10.78" },
  ]);
  assert.equal(m.members()[0].address, "192.168.10.78");
  // Reported once per expiry period, not at every announcement.
  assert.deepEqual(m.receive(from("ack", "172.16.10.78"), 3).events, []);
  assert.equal(m.receive(from("ack", "172.16.10.78"), 20_000).events.length, 1);
  // The claimant's leave does not remove the holder.
  m.receive(from("leave", "172.16.10.78"), 20_001);
  assert.equal(m.members()[0].address, "192.168.10.78");
});

Deno.test("membership: another address claiming this node's own id is reported", () => {
  const m = table();
  const outcome = m.receive(from("join", "10.9.10.220"), 1);
  assert.deepEqual(outcome.events, [
    { type: "conflict", id: 0x0adc, holder: "192.168.10.220", claimant: "10.9.10.220" },
  ]);
  assert.equal(m.members().length, 0);
});

Deno.test("membership: this node's own datagrams (and its aliases') are recognised", () => {
  const m = new Membership(
    { ...self, aliases: [{ address: "10.0.0.99", netmask: "255.0.0.0" }] },
    { expireAfter: 15_000 },
  );
  assert.equal(m.receive(from("join", "192.168.10.220"), 1).own, true);
  assert.equal(m.receive(from("ack", "10.0.0.99"), 1).own, true);
  assert.equal(m.members().length, 0);
  assert.deepEqual(m.toMap().entries, [
    { base: 0x0adc, address: "192.168.10.220", count: 1 },
    { base: 0x0adc, address: "10.0.0.99", count: 0 },
  ]);
});
