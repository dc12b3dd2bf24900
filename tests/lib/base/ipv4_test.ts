/** lib/base/ipv4.ts. */
import assert from "node:assert/strict";
import {
  formatIPv4,
  formatNodeId,
  isIPv4,
  maskOfPrefix,
  nodeIdOf,
  parseIPv4,
  sameNetwork,
} from "../../../lib/base/ipv4.ts";

Deno.test("ipv4: node ids are the last two octets (the man page's examples)", () => {
  assert.equal(nodeIdOf("192.168.10.220"), 2780);
  assert.equal(formatNodeId(nodeIdOf("192.168.10.220")), "0x0adc");
  assert.equal(formatNodeId(nodeIdOf("10.0.0.99")), "0x0063");
  assert.equal(formatIPv4(parseIPv4("255.1.2.3")), "255.1.2.3");
  assert.equal(maskOfPrefix(24), "255.255.255.0");
  assert.equal(maskOfPrefix(0), "0.0.0.0");
  assert.equal(isIPv4("1.2.3"), false);
  assert.equal(isIPv4("1.2.3.256"), false);
  assert.throws(() => parseIPv4("a.b.c.d"), SyntaxError);
  assert.equal(sameNetwork("10.77.1.9", "10.77.1.1", "255.255.255.0"), true);
  assert.equal(sameNetwork("10.77.0.9", "10.77.1.1", "255.255.255.0"), false);
});
