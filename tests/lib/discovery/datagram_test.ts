import assert from "node:assert/strict";
import {
  ALIAS_SLOTS,
  DATAGRAM_SIZE,
  decodeAnnouncement,
  encodeAnnouncement,
  MAGIC,
  MessageType,
} from "../../../lib/discovery/datagram.ts";
import { WireError } from "../../../lib/base/wireerror.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text: string) =>
  new Uint8Array(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

// A join from 192.168.10.220/24 with one alias 10.0.0.99/8, written out by hand.
const GOLDEN_JOIN = fromHex(`
  4f4d4443 c0a80adc ffffff00
  0a000063 ff000000  00000000 00000000  00000000 00000000  00000000 00000000  00000000 00000000
  6a`);

const join = {
  kind: "join" as const,
  source: { address: "192.168.10.220", netmask: "255.255.255.0" },
  aliases: [{ address: "10.0.0.99", netmask: "255.0.0.0" }],
};

Deno.test("wire: constants on the wire never change", () => {
  assert.equal(DATAGRAM_SIZE, 53);
  assert.equal(ALIAS_SLOTS, 5);
  assert.equal(MAGIC, 0x4f4d4443);
  assert.deepEqual(MessageType, { join: 0x6a, ack: 0x61, leave: 0x6c });
});

Deno.test("wire: a join encodes to the golden bytes and decodes back", () => {
  assert.equal(hex(encodeAnnouncement(join)), hex(GOLDEN_JOIN));
  assert.deepEqual(decodeAnnouncement(GOLDEN_JOIN), join);
});

Deno.test("wire: every kind and up to five aliases round-trip", () => {
  const aliases = [1, 2, 3, 4, 5].map((i) => ({ address: `10.1.${i}.7`, netmask: "255.255.0.0" }));
  for (const kind of ["join", "ack", "leave"] as const) {
    for (let n = 0; n <= 5; n++) {
      const message = {
        kind,
        source: { address: "10.77.0.1", netmask: "255.255.255.0" },
        aliases: aliases.slice(0, n),
      };
      const bytes = encodeAnnouncement(message);
      assert.equal(bytes.length, 53);
      assert.equal(bytes[52], MessageType[kind]);
      assert.deepEqual(decodeAnnouncement(bytes), message);
    }
  }
  assert.throws(
    () => encodeAnnouncement({ ...join, aliases: [...aliases, aliases[0]] }),
    RangeError,
  );
});

function reasonOf(bytes: Uint8Array): string {
  try {
    decodeAnnouncement(bytes);
    return "accepted";
  } catch (error) {
    assert.ok(error instanceof WireError, `expected WireError, got ${error}`);
    return error.reason;
  }
}

Deno.test("wire: every truncation point and trailing bytes are refused as length", () => {
  for (let n = 0; n < 53; n++) assert.equal(reasonOf(GOLDEN_JOIN.subarray(0, n)), "length", `${n}`);
  const longer = new Uint8Array(54);
  longer.set(GOLDEN_JOIN);
  assert.equal(reasonOf(longer), "length");
});

Deno.test("wire: wrong magic, unknown type and impossible addresses are refused", () => {
  const altered = (offset: number, value: number) => {
    const copy = GOLDEN_JOIN.slice();
    copy[offset] = value;
    return copy;
  };
  assert.equal(reasonOf(altered(0, 0x00)), "magic");
  assert.equal(reasonOf(altered(3, 0x44)), "magic");
  assert.equal(reasonOf(altered(52, 0x6b)), "type");
  assert.equal(reasonOf(altered(52, 0x00)), "type");
  // src 0.168.10.220, 224.168.10.220 (multicast), and x.x.0.0 (node id 0)
  assert.equal(reasonOf(altered(4, 0)), "source");
  assert.equal(reasonOf(altered(4, 224)), "source");
  const idZero = GOLDEN_JOIN.slice();
  idZero.set([0, 0], 6);
  assert.equal(reasonOf(idZero), "source");
  // netmask 255.0.255.0 is not contiguous; 0.0.0.0 is no mask
  assert.equal(reasonOf(altered(9, 0)), "netmask");
  const noMask = GOLDEN_JOIN.slice();
  noMask.set([0, 0, 0, 0], 8);
  assert.equal(reasonOf(noMask), "netmask");
  // an alias with no netmask, and an alias equal to the source
  const aliasNoMask = GOLDEN_JOIN.slice();
  aliasNoMask.set([0, 0, 0, 0], 16);
  assert.equal(reasonOf(aliasNoMask), "alias");
  const aliasIsSource = GOLDEN_JOIN.slice();
  aliasIsSource.set([0xc0, 0xa8, 0x0a, 0xdc], 12);
  assert.equal(reasonOf(aliasIsSource), "alias");
});

Deno.test("wire: random bytes never throw anything but WireError", () => {
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0) & 0xff;
  for (let i = 0; i < 5000; i++) {
    const bytes = new Uint8Array(i % 3 === 0 ? 53 : next() % 80).map(next);
    if (i % 2 === 0 && bytes.length === 53) bytes.set([0x4f, 0x4d, 0x44, 0x43], 0);
    reasonOf(bytes); // asserts the error class
  }
});
