/** Judging a job's output: right, wrong (where it differs), the exit status, checksummed output. */
import assert from "node:assert/strict";
import { cksum } from "../../../lib/stress/cksum.ts";
import {
  describeExpected,
  type Expected,
  firstDifference,
  judge,
} from "../../../lib/stress/workload.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const text = (t: string): Expected => ({ kind: "text", text: t });
const produced = (t: string, exitCode = 0) => ({ text: t, sum: cksum(encode(t)), exitCode });
const lines = "0 ok\n1 ok\n2 ok\n";

Deno.test("workload: a right result is said as the expectation is", () => {
  assert.deepEqual(judge({ expected: text("317460\n"), exitCode: 0 }, produced("317460\n")), {
    ok: true,
    actual: "317460",
  });
  assert.equal(describeExpected(text("317460\n")), "317460");
  assert.equal(describeExpected(text(lines)), "3 lines, cksum 1367667237 15");
  assert.deepEqual(judge({ expected: text(lines), exitCode: 0 }, produced(lines)), {
    ok: true,
    actual: "3 lines, cksum 1367667237 15",
  });
});

Deno.test("workload: a line lost, repeated, out of order or changed is wrong, and where is said", () => {
  const wrong = (t: string) => judge({ expected: text(lines), exitCode: 0 }, produced(t));
  assert.equal(wrong("0 ok\n2 ok\n").ok, false);
  assert.match(wrong("0 ok\n2 ok\n").actual, /line 2 is "2 ok", not "1 ok"$/);
  assert.match(wrong("0 ok\n1 ok\n1 ok\n2 ok\n").actual, /line 3 is "1 ok", not "2 ok"$/);
  assert.match(wrong("0 ok\n1 ok\n").actual, /it ends after line 2, before "2 ok"$/);
  assert.match(wrong(`${lines}3 ok\n`).actual, /line 4 is "3 ok", after the last one due$/);
  assert.match(wrong("0 ok\n1 bad\n2 ok\n").actual, /line 2 is "1 bad", not "1 ok"$/);
  assert.match(wrong("0 ok\n1 ok\n2 ok").actual, /its last line has no newline$/);
  assert.equal(firstDifference("a\n", "a\r\n"), 'line 1 is "a\\r", not "a"');
});

Deno.test("workload: the right output with the wrong exit status is wrong", () => {
  const judged = judge({ expected: text("5\n"), exitCode: 0 }, produced("5\n", 137));
  assert.deepEqual(judged, { ok: false, actual: "5; exit 137, not 0" });
});

Deno.test("workload: checksummed output is judged by its cksum and length", () => {
  const bytes = encode("x".repeat(1000));
  const expected: Expected = { kind: "cksum", sum: cksum(bytes) };
  assert.equal(describeExpected(expected), `1000 bytes, cksum ${cksum(bytes).crc} 1000`);
  const right = judge({ expected, exitCode: 0 }, { sum: cksum(bytes), exitCode: 0 });
  assert.deepEqual(right, { ok: true, actual: describeExpected(expected) });
  const short = judge({ expected, exitCode: 0 }, {
    sum: cksum(bytes.subarray(1)),
    exitCode: 0,
  });
  assert.equal(short.ok, false);
  assert.match(short.actual, /^999 bytes, cksum \d+ 999$/);
});
