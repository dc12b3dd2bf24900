/**
 * `om run` on real lab nodes with their daemons (root only): output on the right streams, the
 * exit status, stdin, every line once and in order, SIGINT, PID 1 of its own namespace, and the
 * job in `om ps --json` while it runs.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { handlesSignal } from "../../lib/jobs/jobwire.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { ROOT, runIn, startAll, withLab } from "../tools/labkit.ts";

const ignore = !ROOT;
const decoder = new TextDecoder();
const omRun = (...argv: string[]) => omCommand(["run", "--", ...argv]);

/** Starts `om run` in node 1 with piped stdio. */
const spawnRun = (lab: Lab, ...argv: string[]) =>
  execInNode(lab, 1, omRun(...argv), { stdin: "piped", stdout: "piped", stderr: "piped" });

/** Waits until node 1's daemon lists a job running `word`; returns its PID. */
const jobRunning = (lab: Lab, word: string) =>
  retryUntil(
    async () => {
      const jobs = await readJobRecords(`${nodeRoot(lab, 1)}/jobs`);
      return jobs.find((j) => j.command.includes(word))?.pid;
    },
    10_000,
    { what: `a job running ${word}`, intervalMs: 50 },
  );

Deno.test({
  name: "run: jobs on a lab node: streams, exit status, stdin, order, PID 1, ps, SIGINT",
  ignore,
  fn: () =>
    withLab("run", planLab(1), async (lab) => {
      await startAll(lab);

      await (async () => {
        const { code, out, err } = await runIn(
          lab,
          1,
          omRun("sh", "-c", "echo out; echo err >&2; exit 3"),
        );
        assert.equal(out, "out\n");
        assert.equal(err, "err\n");
        assert.equal(code, 3);
      })();

      await (async () => {
        const child = spawnRun(lab, "sh", "-c", "read a; echo got $a");
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode("hello\n"));
        await writer.close();
        const output = await child.output();
        assert.equal(decoder.decode(output.stdout), "got hello\n", decoder.decode(output.stderr));
        assert.equal(output.code, 0);
      })();

      await (async () => {
        const { code, out } = await runIn(
          lab,
          1,
          omRun("sh", "-c", "i=1; while [ $i -le 60 ]; do echo $i; i=$((i+1)); sleep 0.01; done"),
        );
        assert.equal(code, 0);
        assert.deepEqual(
          out.trimEnd().split("\n"),
          Array.from({ length: 60 }, (_, i) => `${i + 1}`),
        );
      })();

      await (async () => {
        const { code, out } = await runIn(lab, 1, omRun("sh", "-c", "echo $$"));
        assert.equal(code, 0);
        assert.equal(out, "1\n", "the job is PID 1 of its own PID namespace");
      })();

      await (async () => {
        const child = spawnRun(lab, "sleep", "300");
        const pid = await jobRunning(lab, "sleep");
        const ps = await runIn(lab, 1, omCommand(["ps", "--json"]));
        assert.equal(ps.code, 0, ps.err);
        const row = JSON.parse(ps.out).find((r: { pid: number }) => r.pid === pid);
        assert.ok(row, `job ${pid} in om ps --json: ${ps.out}`);
        assert.deepEqual([row.node, row.home, row.command], [0, 0, "sleep 300"]);
        // sleep does not handle SIGINT: it dies of it, as it would without a namespace.
        child.kill("SIGINT");
        const output = await child.output();
        assert.equal(output.code, 130, decoder.decode(output.stderr));
        assert.equal(decoder.decode(output.stderr), "");
        // Its exit was delivered: its record is gone.
        await retryUntil(
          async () => !(await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).length,
          5000,
        );
      })();

      await (async () => {
        const child = spawnRun(
          lab,
          "sh",
          "-c",
          "trap 'echo trapped; exit 7' INT; echo ready; while :; do sleep 0.1; done",
        );
        const pid = await jobRunning(lab, "sh");
        // The start gate (still "om-job" in its command line) catches SIGINT as any sh waiting
        // in read does: the trap counts once the job's own command runs.
        await retryUntil(
          async () =>
            !(await Deno.readTextFile(`/proc/${pid}/cmdline`)).includes("om-job") &&
            handlesSignal(await Deno.readTextFile(`/proc/${pid}/status`), 2),
          5000,
          { what: "the job's INT trap" },
        );
        child.kill("SIGINT");
        const output = await child.output();
        assert.equal(decoder.decode(output.stdout), "ready\ntrapped\n");
        assert.equal(output.code, 7);
      })();
    }),
});

Deno.test({
  name: "run: without a daemon, om run says where it looked",
  ignore,
  fn: () =>
    withLab("rund", planLab(1), async (lab) => {
      const { code, err } = await runIn(lab, 1, omRun("true"));
      assert.equal(code, 125);
      assert.match(err, /Cannot reach om discover at .*omdiscd\.sock: is it running\?/);
    }),
});
