/** POSIX cksum, incremental: the values the cksum tool prints. */
import assert from "node:assert/strict";
import { Cksum, cksum, formatCksum } from "../../../lib/stress/cksum.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("cksum: the values the cksum tool prints", () => {
  assert.equal(formatCksum(cksum(bytes(""))), "4294967295 0");
  assert.equal(formatCksum(cksum(bytes("abc"))), "1219131554 3");
  assert.equal(formatCksum(cksum(bytes("123456789"))), "930766865 9");
  // The length goes in as bytes too: 100000 zero bytes are not zero bytes' CRC alone.
  assert.equal(formatCksum(cksum(new Uint8Array(100000))), "1260869142 100000");
});

Deno.test("cksum: fed in pieces, the same as at once; value() does not end it", () => {
  const data = new Uint8Array(70000).map((_, i) => (i * 31 + 7) & 0xff);
  const running = new Cksum();
  running.update(data.subarray(0, 1)).update(data.subarray(1, 4097));
  assert.deepEqual(running.value(), cksum(data.subarray(0, 4097)));
  running.update(data.subarray(4097));
  assert.deepEqual(running.value(), cksum(data));
  assert.notDeepEqual(cksum(data), cksum(data.subarray(1)));
});
