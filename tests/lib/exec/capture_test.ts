import assert from "node:assert/strict";
import { OutputCapture } from "../../../lib/exec/capture.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("capture: both streams kept under the limit, in order", () => {
  const capture = new OutputCapture(100);
  capture.add("stdout", bytes("a\n"));
  capture.add("stderr", bytes("e\n"));
  capture.add("stdout", bytes("b\n"));
  const result = capture.result();
  assert.equal(text(result.stdout), "a\nb\n");
  assert.equal(text(result.stderr), "e\n");
  assert.deepEqual(result.dropped, { stdout: 0, stderr: 0 });
  assert.equal(capture.kept, 6);
});

Deno.test("capture: the first bytes are kept, whichever stream; the rest counted per stream", () => {
  const capture = new OutputCapture(10);
  capture.add("stdout", bytes("12345678"));
  capture.add("stderr", bytes("abcd"));
  capture.add("stdout", bytes("xyz"));
  capture.add("stderr", bytes("!"));
  const result = capture.result();
  assert.equal(text(result.stdout), "12345678");
  assert.equal(text(result.stderr), "ab");
  assert.deepEqual(result.dropped, { stdout: 3, stderr: 3 });
  assert.equal(capture.kept, 10);
});

Deno.test("capture: a chunk is copied (a reader may reuse its buffer)", () => {
  const capture = new OutputCapture(10);
  const chunk = bytes("abc");
  capture.add("stdout", chunk);
  chunk[0] = 0x7a;
  assert.equal(text(capture.result().stdout), "abc");
});
