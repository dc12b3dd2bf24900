import assert from "node:assert/strict";
import { decodeConfig, decodeMospe, encodeConfig, encodeMospe } from "../../../lib/state/hpcmap.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

Deno.test("hpcmap: admin/config golden bytes and round trip", () => {
  const map = {
    gateways: 1,
    entries: [
      { base: 0x0adc, address: "192.168.10.220", count: 1 },
      { base: 1, address: "192.168.1.1", count: 4 },
      { base: 0x0adc, address: "10.0.0.99", count: 0 },
    ],
  };
  const bytes = encodeConfig(map);
  assert.equal(
    hex(bytes),
    "4f4d4346" + "01" + "01" + "0003" +
      "0adc" + "0001" + "c0a80adc" +
      "0001" + "0004" + "c0a80101" +
      "0adc" + "0000" + "0a000063",
  );
  assert.deepEqual(decodeConfig(bytes), map);
});

Deno.test("hpcmap: a damaged admin/config is refused at every truncation point", () => {
  const bytes = encodeConfig({
    gateways: 0,
    entries: [{ base: 5, address: "10.0.0.5", count: 1 }],
  });
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeConfig(bytes.subarray(0, n)), RangeError, `length ${n}`);
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.throws(() => decodeConfig(longer), RangeError);
  const wrongMagic = bytes.slice();
  wrongMagic[0] = 0;
  assert.throws(() => decodeConfig(wrongMagic), /magic/);
  const wrongVersion = bytes.slice();
  wrongVersion[4] = 2;
  assert.throws(() => decodeConfig(wrongVersion), /version/);
});

Deno.test("hpcmap: admin/mospe is the node id as a big-endian u32", () => {
  assert.equal(hex(encodeMospe(2780)), "00000adc");
  assert.equal(decodeMospe(encodeMospe(65535)), 65535);
  assert.throws(() => decodeMospe(new Uint8Array(3)), RangeError);
  assert.throws(() => decodeMospe(new Uint8Array(5)), RangeError);
});
