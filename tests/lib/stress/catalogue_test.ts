/** The workloads by name: --tests, and which this node can run. */
import assert from "node:assert/strict";
import {
  findProgram,
  missingPrograms,
  parseTests,
  workloadOf,
  WORKLOADS,
} from "../../../lib/stress/catalogue.ts";
import { TEST_NAMES } from "../../../lib/stress/workload.ts";
import { tempDir } from "../../tools/tempdir.ts";

Deno.test("catalogue: every test name has its workload, in order", () => {
  assert.deepEqual(WORKLOADS.map((w) => w.name), [...TEST_NAMES]);
  for (const name of TEST_NAMES) assert.equal(workloadOf(name).name, name);
});

Deno.test("catalogue: --tests takes names, each once, in the catalogue's order, or all", () => {
  assert.deepEqual(parseTests("all"), [...TEST_NAMES]);
  assert.deepEqual(parseTests("stream,awk"), ["awk", "stream"]);
  assert.deepEqual(parseTests("memory, memory"), ["memory"]);
  assert.throws(
    () => parseTests("awk,gcc"),
    /^RangeError: Cannot use "gcc" as a test: not one of awk, portfolio, eatmem, forkit, memory, stream, stdin, pipeline \(or all\)$/,
  );
  assert.throws(() => parseTests(""), /Cannot use "" as a test/);
});

Deno.test("catalogue: a workload whose program is not on PATH is missing it", async () => {
  await using dir = await tempDir("stress-path");
  await Deno.writeTextFile(`${dir.path}/awk`, "#!/bin/sh\n", { mode: 0o755 });
  await Deno.writeTextFile(`${dir.path}/perl`, "not a program\n", { mode: 0o644 });
  assert.equal(findProgram("awk", `/nonexistent::${dir.path}`), `${dir.path}/awk`);
  assert.equal(findProgram("perl", dir.path), undefined);
  assert.deepEqual(missingPrograms(workloadOf("awk"), dir.path), []);
  assert.deepEqual(missingPrograms(workloadOf("portfolio"), dir.path), ["perl"]);
  assert.deepEqual(missingPrograms(workloadOf("pipeline"), dir.path), ["cksum"]);
});
