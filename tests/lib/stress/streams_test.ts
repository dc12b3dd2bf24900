/** The stream, stdin and pipeline workloads: the bytes each must see, and the real programs. */
import assert from "node:assert/strict";
import { cksum, formatCksum } from "../../../lib/stress/cksum.ts";
import {
  pipeline,
  PIPELINE_LINES,
  pipelineBytes,
  stdin,
  stdinBytes,
  stream,
  STREAM_BLOCKS,
  streamBytes,
} from "../../../lib/stress/streams.ts";
import { canRun, PARAMS, runHere } from "./twin.ts";

Deno.test("streams: the stream is 8 MiB of 64-byte numbered lines", () => {
  const bytes = streamBytes();
  assert.equal(bytes.length, STREAM_BLOCKS * 64 * 1024);
  const text = new TextDecoder().decode(bytes.subarray(0, 128));
  assert.equal(
    text.split("\n")[0],
    "000 0000 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01",
  );
  assert.equal(text.split("\n")[1].slice(0, 9), "000 0001 ");
  assert.deepEqual(stream.plan(5, PARAMS, "t").expected, { kind: "cksum", sum: cksum(bytes) });
});

Deno.test("streams: stdin's bytes are fed to the job, which prints their cksum", () => {
  const plan = stdin.plan(2, PARAMS, "om-stress-x-7");
  assert.deepEqual(plan.argv, ["sh", "-c", "cksum", "om-stress-x-7"]);
  assert.deepEqual(plan.stdin, stdinBytes(2));
  assert.equal(plan.stdin!.length, 65536);
  assert.deepEqual(plan.expected, { kind: "text", text: `${formatCksum(cksum(stdinBytes(2)))}\n` });
  assert.equal(stdin.sizing, "paced");
});

Deno.test("streams: the pipeline's cksum reads the transformer's lines", () => {
  const text = new TextDecoder().decode(pipelineBytes());
  assert.equal(text.split("\n").length - 1, PIPELINE_LINES);
  assert.equal(text.slice(0, 19), "0\n7919\n15838\n23757\n");
});

Deno.test({
  name: "streams: awk writes the stream om stress expects",
  ignore: !canRun(stream),
  fn: async () => assert.equal((await runHere(stream, 3)).ok, true),
});

Deno.test({
  name: "streams: cksum in the job checksums its standard input as om stress does",
  ignore: !canRun(stdin),
  fn: async () => assert.equal((await runHere(stdin, 3)).ok, true),
});

Deno.test({
  name: "streams: the three processes of the pipeline end with the cksum expected",
  ignore: !canRun(pipeline),
  fn: async () => assert.equal((await runHere(pipeline, 5)).ok, true),
});
