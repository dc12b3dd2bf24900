/** The settings of a run: defaults sized to the cluster, and the flags' checks. */
import assert from "node:assert/strict";
import { UsageError } from "../../../lib/cli/parser.ts";
import {
  defaultMemoryMiB,
  defaultReportName,
  jobSecondsFor,
  readFlags,
  resolveSettings,
} from "../../../lib/stress/options.ts";
import { TEST_NAMES } from "../../../lib/stress/workload.ts";

const GIB = 1024 ** 3;
const NOW = Date.UTC(2025, 0, 31, 23, 59, 58);

Deno.test("options: the defaults, sized to the cluster", () => {
  const settings = resolveSettings({}, { cpus: 12, minMem: 4 * GIB }, NOW);
  assert.deepEqual(settings, {
    durationMs: 60_000,
    intervalMs: 5000,
    jobs: 12,
    tests: [...TEST_NAMES],
    memoryMiB: 256,
    jobSeconds: 24,
    reportPath: "om-stress-2025-01-31T23-59-58Z.txt",
  });
  // Fewer CPUs than workloads: two jobs at least, sized so that the workloads take turns.
  const small = resolveSettings({}, { cpus: 1, minMem: 512 * 1024 ** 2 }, NOW);
  assert.equal(small.jobs, 2);
  assert.equal(small.memoryMiB, 64);
  // 4 rounds of 2 jobs in 60 s, each job on half a CPU.
  assert.equal(small.jobSeconds, 6.7);
});

Deno.test("options: the flags win, and are checked", () => {
  const choices = readFlags({
    duration: "20",
    interval: "2.5",
    jobs: 3,
    tests: "memory,awk",
    memory: 8,
    report: "/tmp/r.txt",
  });
  assert.deepEqual(resolveSettings(choices, { cpus: 4 }, NOW), {
    durationMs: 20_000,
    intervalMs: 2500,
    jobs: 3,
    tests: ["awk", "memory"],
    memoryMiB: 8,
    jobSeconds: 8,
    reportPath: "/tmp/r.txt",
  });
  assert.deepEqual(readFlags({}), {});
  assert.deepEqual(readFlags({ interval: "0" }), { intervalMs: 0 });
  const bad = (flags: Parameters<typeof readFlags>[0], message: RegExp) =>
    assert.throws(() => readFlags(flags), (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, message);
      return true;
    });
  bad(
    { duration: "0" },
    /^Cannot use "0" for --duration: not a number of seconds from 1 to 86400$/,
  );
  bad({ duration: "1m" }, /^Cannot use "1m" for --duration/);
  bad({ interval: "-1" }, /^Cannot use "-1" for --interval/);
  bad({ interval: "0.2" }, /at least 0\.5 seconds \(or 0: no moves\)/);
  bad({ tests: "awk,gcc" }, /^Cannot use "gcc" as a test/);
  bad({ report: "" }, /^Cannot use an empty --report/);
});

Deno.test("options: the report's default name has no colon and no slash", () => {
  assert.equal(defaultReportName(NOW), "om-stress-2025-01-31T23-59-58Z.txt");
  assert.doesNotMatch(defaultReportName(Date.now()), /[:/]/);
});

Deno.test("options: the memory workload's size follows the smallest node", () => {
  assert.equal(defaultMemoryMiB(undefined), 16);
  assert.equal(defaultMemoryMiB(0), 16);
  assert.equal(defaultMemoryMiB(64 * 1024 ** 2), 16);
  assert.equal(defaultMemoryMiB(1 * GIB), 128);
  assert.equal(defaultMemoryMiB(64 * GIB), 256);
});

Deno.test("options: jobs are sized for two fifths of the run, in turns, on their share of the CPUs", () => {
  assert.equal(jobSecondsFor(60_000, { jobs: 8, cpus: 8, tests: 8 }), 24);
  assert.equal(jobSecondsFor(60_000, { jobs: 8, cpus: 4, tests: 8 }), 12);
  // 2 at once for 8 workloads: 4 rounds, each a little shorter than a quarter of the run.
  assert.equal(jobSecondsFor(60_000, { jobs: 2, cpus: 2, tests: 8 }), 13.3);
  assert.equal(jobSecondsFor(1000, { jobs: 8, cpus: 1, tests: 8 }), 1);
  assert.equal(jobSecondsFor(86_400_000, { jobs: 1, cpus: 1, tests: 1 }), 300);
});
