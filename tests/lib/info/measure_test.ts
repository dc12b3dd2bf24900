import assert from "node:assert/strict";
import {
  cpusOfQuota,
  figures,
  loadAt,
  Meter,
  parseMeminfo,
  parseProcStat,
  speedOfCpuinfo,
} from "../../../lib/info/measure.ts";
import { parseStat } from "../../../lib/base/procs.ts";

/** Fields 7 to 22 of a stat line, zeros: parseStat reads whole lines only. */
const REST = " 0".repeat(16);

Deno.test("measure: the /proc parsers", () => {
  assert.deepEqual(
    parseMeminfo("MemTotal:       24684084 kB\nMemFree:  100 kB\nHugePages_Total: 0\n"),
    {
      MemTotal: 24684084 * 1024,
      MemFree: 102400,
      HugePages_Total: 0,
    },
  );
  assert.deepEqual(
    parseProcStat("cpu  100 5 20 9000 3 1 2 4 0 0\ncpu0 1 2 3\nprocs_running 3\nprocs_blocked 0\n"),
    { busyMs: (100 + 5 + 20 + 1 + 2 + 4) * 10, running: 3 },
  );
  assert.equal(cpusOfQuota(50000, 100000), 0.5);
  assert.equal(cpusOfQuota(-1, 100000), undefined);
  // A task's state, as the runnable count reads it: the one stat parser's field 3.
  assert.equal(parseStat(`42 (a (weird) name) R 1 2 3${REST}`).state, "R");
  assert.equal(parseStat(`42 (sleepy) S 1 2 3${REST}`).state, "S");
  assert.equal(speedOfCpuinfo("processor: 0\ncpu MHz\t\t: 2596.130\n"), 25961);
  assert.equal(speedOfCpuinfo("processor: 0\n"), 10000);
});

Deno.test("measure: load is runnable tasks at the reference speed, util the share of CPU time", () => {
  const MiB = 2 ** 20;
  const base = { cpus: 2, runnable: 0, tmem: 100 * MiB + 5, rmem: 40 * MiB + 7, mem: 60 * MiB + 9 };
  const before = { ...base, at: 0, cpuMs: 0 };
  const after = { ...base, at: 1000, cpuMs: 1000 };
  assert.deepEqual(figures(before, after, 1, 10000), {
    cpus: 2,
    load: 100,
    util: 50,
    mem: 60 * MiB,
    rmem: 40 * MiB,
    tmem: 100 * MiB + 5,
  });
  assert.equal(figures(before, after, 1, 20000).load, 50, "twice as fast: half the load");
  assert.equal(figures(before, after, 8, 10000).load, 800, "a queue of eight");
  assert.equal(figures(before, { ...after, cpus: 0.5 }, 1, 10000).cpus, 1, "quota rounds up");
  // The same rule for a share of a node (a job's): unrounded.
  assert.equal(loadAt(1, 10000), 100);
  assert.equal(loadAt(0.5, 40000), 12.5);
  assert.equal(loadAt(1, 0), 100 * 10000, "a speed below 1 counts as 1");
});

Deno.test("measure: a real sample of this machine", async () => {
  const meter = new Meter({ now: () => Date.now() });
  const sample = await meter.sample();
  assert.equal(meter.cgroup, false);
  assert.ok(sample.cpus >= 1);
  assert.ok(sample.tmem > 0 && sample.mem > 0 && sample.mem <= sample.tmem);
  assert.ok(sample.cpuMs > 0);
});
