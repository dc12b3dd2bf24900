/**
 * om stress's moves through the local socket (root only, like the socket's own tests): a move's
 * figures come back as the daemon replied them; a failure keeps the daemon's step and CRIU log
 * (fields of the reply, not words); no daemon is a failure without a step.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../../lib/base/clock.ts";
import { jsonBytes, jsonOf } from "../../../lib/base/json.ts";
import { silentLogger as logger } from "../../../lib/base/log.ts";
import { Deputy } from "../../../lib/jobs/deputy.ts";
import { serveLocal } from "../../../lib/jobs/localsocket.ts";
import { MigrationError, type MigrationReport } from "../../../lib/migration/errors.ts";
import { localMigrate } from "../../../lib/stress/mover.ts";
import { tempDir } from "../../tools/tempdir.ts";

Deno.test({
  name: "mover: a move's report, a failure's step and log, no daemon",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await using dir = await tempDir("stress-mover");
    const root = dir.path;
    const deputy = new Deputy({ nodeId: 1, jobsDir: `${root}/jobs`, logger, clock: systemClock });
    const asked: unknown[] = [];
    const local = serveLocal({
      root,
      nodeId: 1,
      logger,
      clock: systemClock,
      deputy,
      more: new Map([[
        "job.migrate",
        (body: Uint8Array) => {
          const { id, to } = jsonOf<{ id: number; to: number | "home" }>(body);
          asked.push({ id, to });
          if (id === 7) {
            return Promise.reject(
              new MigrationError("restore failed on node 2", "restore", "/run/om/7-in/restore.log"),
            );
          }
          const report: MigrationReport = {
            id,
            from: 1,
            to: to === "home" ? 1 : to,
            frozenMs: 12,
            transferMs: 30,
            restoreMs: 40,
            totalMs: 95,
            bytes: 4096,
          };
          return Promise.resolve(jsonBytes(report));
        },
      ]]),
    });
    try {
      const migrate = localMigrate(root);
      assert.deepEqual(await migrate(5, 3), {
        id: 5,
        from: 1,
        to: 3,
        frozenMs: 12,
        transferMs: 30,
        restoreMs: 40,
        totalMs: 95,
        bytes: 4096,
      });
      await assert.rejects(() => migrate(7, "home"), (error: Error) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.step, "restore");
        assert.equal(error.logPath, "/run/om/7-in/restore.log");
        assert.match(error.message, /restore failed on node 2/);
        return true;
      });
      assert.deepEqual(asked, [{ id: 5, to: 3 }, { id: 7, to: "home" }]);
    } finally {
      await local.close();
    }
    await assert.rejects(() => localMigrate(root)(5, 3), (error: Error) => {
      assert.ok(error instanceof MigrationError);
      assert.equal(error.step, undefined);
      assert.match(error.message, /^Cannot migrate job 5: cannot reach om discover: /);
      return true;
    });
  },
});
