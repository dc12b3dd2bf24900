/**
 * A job of om stress through the real `om run`, against a local socket and deputy in a temporary
 * state tree (root only, as jobs start in namespaces): its output comes back whole (kept, or only
 * checksummed), its standard input is fed in pieces over the time given, its exit status is om
 * run's, and a signal to om run reaches the job.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../../lib/base/clock.ts";
import { silentLogger as logger } from "../../../lib/base/log.ts";
import { Deputy } from "../../../lib/jobs/deputy.ts";
import { serveLocal } from "../../../lib/jobs/localsocket.ts";
import { readJobRecords } from "../../../lib/jobs/table.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { omRunStarter } from "../../../lib/stress/jobrun.ts";
import { stdin, stream } from "../../../lib/stress/streams.ts";
import { type JobPlan, judge } from "../../../lib/stress/workload.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { PARAMS } from "./twin.ts";

Deno.test({
  name: "jobrun: om run's output, fed input, exit status and a signal",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await using dir = await tempDir("stress-jobrun");
    const root = `${dir.path}/root`;
    await Deno.writeTextFile(`${dir.path}/om.conf`, "");
    const deputy = new Deputy({ nodeId: 1, jobsDir: `${root}/jobs`, logger, clock: systemClock });
    const local = serveLocal({ root, nodeId: 1, logger, clock: systemClock, deputy });
    try {
      const start = omRunStarter({
        env: { ...Deno.env.toObject(), OM_ROOT: root, OM_CONFIG: `${dir.path}/om.conf` },
        clock: systemClock,
      });
      // 8 MiB through om run, only checksummed; 64 KiB of input fed over 400 ms.
      const streamed = stream.plan(10, PARAMS, "om-stress-t-1");
      const fedPlan = stdin.plan(2, PARAMS, "om-stress-t-2");
      const began = Date.now();
      const [out, fed] = await Promise.all([
        start(streamed, 0).done,
        start(fedPlan, 400).done,
      ]);
      assert.deepEqual(judge(streamed, out.produced), {
        ok: true,
        actual: `8388608 bytes, cksum ${out.produced.sum.crc} 8388608`,
      });
      assert.equal(out.produced.text, undefined);
      assert.equal(judge(fedPlan, fed.produced).ok, true, fed.stderr);
      assert.ok(Date.now() - began >= 380, "the input came in pieces over the time given");
      // The exit status and standard error are om run's.
      const failing: JobPlan = {
        ...fedPlan,
        argv: ["sh", "-c", "echo out; echo why >&2; exit 3"],
        stdin: undefined,
        expected: { kind: "text", text: "out\n" },
      };
      const ended = await start(failing, 0).done;
      assert.equal(ended.produced.exitCode, 3);
      assert.equal(ended.produced.text, "out\n");
      assert.equal(ended.stderr, "why\n");
      // SIGINT to om run reaches the job.
      const sleeper = start({ ...failing, argv: ["sleep", "30"] }, 0);
      await retryUntil(
        async () => (await readJobRecords(`${root}/jobs`)).some((j) => j.command[0] === "sleep"),
        10_000,
        { what: "the sleep job to start" },
      );
      sleeper.kill("SIGINT");
      assert.equal((await sleeper.done).produced.exitCode, 130);
    } finally {
      await local.close();
    }
  },
});
