/**
 * lib/migration/source.ts without a target: a job whose PID 1 has ended, or whose PID now names
 * another process, is not a failed preflight but a job that ended (the bug where a second move
 * failed with "readfile '/proc/N/status'" and a preflight step).
 */
import assert from "node:assert/strict";
import { createLogger } from "../../../lib/base/log.ts";
import { identifyProcess } from "../../../lib/jobs/processid.ts";
import { CriuAccess } from "../../../lib/migration/context.ts";
import { MigrationError } from "../../../lib/migration/errors.ts";
import { Source } from "../../../lib/migration/source.ts";
import { DEFAULT_POLICY } from "../../../lib/jobs/table.ts";
import { tempDir } from "../../tools/tempdir.ts";

Deno.test("source: a job whose PID 1 ended, or was reused, has ended; no step failed", async () => {
  await using tmp = await tempDir("source");
  let connected = 0;
  const source = new Source({
    nodeId: 1,
    root: tmp.path,
    dir: `${tmp.path}/migrations`,
    logger: createLogger(() => {}, () => false),
    connect: () => {
      connected++;
      return Promise.reject(new Error("no other node here"));
    },
    criu: new CriuAccess("/nonexistent/criu"),
    faults: {},
  });
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const who = identifyProcess(child.pid);
  assert.ok(who, "the job's PID 1, before it ends");
  child.kill("SIGKILL");
  await child.status;
  const outgoing = {
    id: child.pid,
    pid: child.pid,
    home: 1,
    command: ["sleep", "30"],
    policy: DEFAULT_POLICY,
    target: 2,
    start: performance.now(),
    detach: () => Promise.resolve(undefined),
    reattach: () => {},
  };
  for (const identity of [who, { pid: Deno.pid, startTime: who.startTime + 1 }, undefined]) {
    await assert.rejects(source.send({ ...outgoing, who: identity }), (error: Error) => {
      assert.ok(error instanceof MigrationError);
      assert.equal(error.message, `Cannot migrate job ${child.pid}: it has ended`);
      assert.equal(error.step, undefined);
      return true;
    });
  }
  assert.equal(connected, 0, "no target was asked");
});
