/**
 * Measuring a job (lib/balance/jobmeasure.ts): its whole process tree on a fake proc directory
 * (exact counts), and a real process of this machine.
 */
import assert from "node:assert/strict";
import { measureJob } from "../../../lib/balance/jobmeasure.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { tempDir } from "../../tools/tempdir.ts";

/** A whole stat line of task `tid` in state `state` (fields 5 to 22 zeros). */
const stat = (tid: number, state: string) => `${tid} (job) ${state} 1${" 0".repeat(18)}\n`;

/** Writes `files` (path → text) under `dir`. */
async function tree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
}

Deno.test("measureJob: every process of the tree, every thread in state R, every VmRSS", async () => {
  await using tmp = await tempDir("jobmeasure");
  const dir = tmp.path;
  await tree(dir, {
    // PID 1 of the job: two threads, one running; children from both.
    "100/status": "Name:\tjob\nVmRSS:\t    1024 kB\n",
    "100/task/100/stat": stat(100, "R"),
    "100/task/100/children": "200 300 ",
    "100/task/101/stat": stat(101, "S"),
    "100/task/101/children": "400",
    // A running child.
    "200/status": "VmRSS:\t2048 kB\n",
    "200/task/200/stat": stat(200, "R"),
    "200/task/200/children": "",
    // A zombie: no VmRSS, not running.
    "300/status": "Name:\tz\n",
    "300/task/300/stat": stat(300, "Z"),
    // 400 ended before it was read; a thread of 200 ended while being read (empty stat).
    "200/task/201/stat": "",
  });
  assert.deepEqual(measureJob(100, dir), { runnable: 2, rss: (1024 + 2048) * 1024 });
  assert.deepEqual(measureJob(200, dir), { runnable: 1, rss: 2048 * 1024 }, "a subtree");
  assert.deepEqual(measureJob(999, dir), { runnable: 0, rss: 0 }, "a job that is gone");
});

Deno.test("measureJob: a real process tree", async () => {
  const child = new Deno.Command("sleep", { args: ["30"], stdout: "null", stderr: "null" }).spawn();
  try {
    // Reading its own stat, this process's thread runs.
    const self = measureJob(Deno.pid);
    assert.ok(self.runnable >= 1, `runnable ${self.runnable}`);
    assert.ok(self.rss > 0);
    // Once it has started, sleep sleeps.
    const sleeping = await retryUntil(
      () => {
        const measure = measureJob(child.pid);
        return measure.runnable === 0 && measure.rss > 0 && measure;
      },
      5000,
      { what: "sleep to be asleep" },
    );
    assert.ok(sleeping.rss > 0 && sleeping.rss < self.rss, `${sleeping.rss} of ${self.rss}`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});
