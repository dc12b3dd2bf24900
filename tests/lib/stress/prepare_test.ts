/** Preparing the workloads: skipped without their program, wrong here, or ready with a rate. */
import assert from "node:assert/strict";
import { awkLoopSum } from "../../../lib/stress/awkloop.ts";
import { cksum } from "../../../lib/stress/cksum.ts";
import { prepareWorkloads } from "../../../lib/stress/prepare.ts";
import type { JobPlan } from "../../../lib/stress/workload.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { PARAMS } from "./twin.ts";

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("prepare: missing programs skip, a wrong answer here is wrong, the rest get a rate", async () => {
  await using dir = await tempDir("stress-prepare");
  for (const program of ["awk", "perl"]) {
    await Deno.writeTextFile(`${dir.path}/${program}`, "#!/bin/sh\n", { mode: 0o755 });
  }
  let now = 0;
  const events: string[] = [];
  // awk answers right, 1 ms per unit; perl's portfolio answers wrong.
  const runLocal = (plan: JobPlan) => {
    now += plan.size;
    const text = plan.test === "awk" ? `${awkLoopSum(plan.size)}\n` : "nonsense\n";
    return Promise.resolve({ text, sum: cksum(encode(text)), exitCode: 0, stderr: "" });
  };
  const prepared = await prepareWorkloads(["awk", "portfolio", "stdin", "pipeline"], PARAMS, {
    clock: { now: () => now },
    runLocal,
    path: dir.path,
    aborted: () => false,
    onEvent: (line) => events.push(line),
    startedAt: 0,
  });
  assert.deepEqual([...prepared.rates], [["awk", 1000]]);
  assert.deepEqual(
    prepared.unrun.map((r) => [r.n, r.test, r.status, r.note]),
    [
      [
        1,
        "portfolio",
        "wrong",
        "wrong when run here as a plain process, without om: this node's perl computes otherwise",
      ],
      [2, "stdin", "skipped", "skipped: no cksum on PATH"],
      [3, "pipeline", "skipped", "skipped: no cksum on PATH"],
    ],
  );
  assert.match(prepared.unrun[0].actual, /^nonsense: line 1 is "nonsense", not "simulation 0: /);
  assert.deepEqual(events, [
    "awk: 1000 outer loops per second here",
    events[1],
    "stdin: skipped (no cksum on PATH)",
    "pipeline: skipped (no cksum on PATH)",
  ]);
  assert.match(events[1], /^portfolio: wrong even without om \(nonsense: /);
});

Deno.test("prepare: an abort leaves the rest out", async () => {
  let calls = 0;
  const prepared = await prepareWorkloads(["awk", "eatmem"], PARAMS, {
    clock: { now: () => calls * 1000 },
    runLocal: (plan) => {
      calls++;
      const text = `${awkLoopSum(plan.size)}\n`;
      return Promise.resolve({ text, sum: cksum(encode(text)), exitCode: 0, stderr: "" });
    },
    path: Deno.env.get("PATH") ?? "",
    aborted: () => calls > 0,
    onEvent: () => {},
    startedAt: 0,
  });
  assert.deepEqual([...prepared.rates.keys()], ["awk"]);
  assert.deepEqual(prepared.unrun, []);
});
