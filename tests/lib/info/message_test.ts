import assert from "node:assert/strict";
import { decodeInfo, encodeInfo, INFO_MAGIC, INFO_SIZE } from "../../../lib/info/message.ts";
import { WireError } from "../../../lib/base/wireerror.ts";

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const message = {
  source: "10.77.0.2",
  block: true,
  cpus: 2,
  load: 385,
  speed: 25961,
  util: 50,
  mem: 5 * 2 ** 32 + 7,
  rmem: 1024,
  tmem: 25276502016,
};

Deno.test("infowire: golden bytes and round trip", () => {
  assert.equal(INFO_SIZE, 48);
  assert.equal(INFO_MAGIC, 0x4f4d4e49);
  const bytes = encodeInfo(message);
  assert.equal(
    hex(bytes),
    "4f4d4e49" + "01" + "01" + "0002" + "0a4d0002" + "00000181" + "00006569" + "0032" + "0000" +
      "0000000500000007" + "0000000000000400" + "00000005e298d000",
  );
  assert.deepEqual(decodeInfo(bytes), message);
});

Deno.test("infowire: truncations, trailing bytes, wrong magic, version, bits and source", () => {
  const bytes = encodeInfo(message);
  const reason = (b: Uint8Array) => {
    try {
      decodeInfo(b);
      return "accepted";
    } catch (error) {
      assert.ok(error instanceof WireError);
      return error.reason;
    }
  };
  for (let n = 0; n < 48; n++) assert.equal(reason(bytes.subarray(0, n)), "length");
  assert.equal(reason(new Uint8Array([...bytes, 0])), "length");
  const altered = (offset: number, value: number) => {
    const copy = bytes.slice();
    copy[offset] = value;
    return copy;
  };
  assert.equal(reason(altered(0, 0)), "magic");
  assert.equal(reason(altered(4, 2)), "type");
  assert.equal(reason(altered(5, 0x81)), "range");
  assert.equal(reason(altered(21, 101)), "range");
  assert.equal(reason(altered(8, 0)), "source");
  assert.equal(reason(altered(24, 0xff)), "range", "mem above 2^53");
});
