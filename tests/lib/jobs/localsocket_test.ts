/**
 * lib/jobs/localsocket.ts: the local socket with a real deputy, its limits per user (jobs, and
 * connections: one user's many idle connections leave room for the others) and their counters.
 */
import assert from "node:assert/strict";
import type { ChannelClient } from "../../../lib/channel/client.ts";
import { systemClock } from "../../../lib/base/clock.ts";
import { silentLogger as logger } from "../../../lib/base/log.ts";
import { Deputy, MAX_JOBS_PER_USER } from "../../../lib/jobs/deputy.ts";
import { decodeOutput, type OutputReply } from "../../../lib/jobs/jobwire.ts";
import { type LocalSocket, serveLocal } from "../../../lib/jobs/localsocket.ts";
import { MAX_CONNECTIONS_PER_USER } from "../../../lib/jobs/localauth.ts";
import { ask, connectAs } from "../../tools/localreq.ts";

const ROOT = Deno.uid() === 0;

/** A local socket with a deputy in a temporary state tree. */
async function withSocket(
  test: (local: LocalSocket, dir: string, deputy: Deputy) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "om-localsocket-" });
  const deputy = new Deputy({ nodeId: 1, jobsDir: `${dir}/jobs`, logger, clock: systemClock });
  const local = serveLocal({ root: dir, nodeId: 1, logger, clock: systemClock, deputy });
  try {
    await test(local, dir, deputy);
  } finally {
    await local.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `argv` as the user of `client` and follows it to its end: its stdout and exit. */
async function run(client: ChannelClient, argv: string[]): Promise<[string, unknown]> {
  const { id } = await ask(client, "job.run", { argv, cwd: "/", env: {} }) as { id: number };
  let offset = 0;
  let out = "";
  for (;;) {
    const read = decodeOutput(await ask(client, "job.output", { id, offset }) as OutputReply);
    for (const chunk of read.chunks) {
      if (chunk.fd === 1) out += new TextDecoder().decode(chunk.data);
    }
    offset = read.offset;
    if (read.exit) return [out, read.exit];
  }
}

Deno.test({
  name: "localsocket: a user's job past the most one user may have is refused; others are served",
  ignore: !ROOT,
  fn: async () => {
    await withSocket(async (local, dir, deputy) => {
      // uid 65534 has as many jobs as one user may (their processes do not matter here).
      for (let i = 0; i < MAX_JOBS_PER_USER; i++) {
        deputy.jobs.add({ id: 100_000 + i, home: 1, node: 1, command: ["sleep"], uid: 65534 });
      }
      const user = await connectAs(dir, 65534);
      const other = await connectAs(dir, 1);
      const root = await connectAs(dir, 0);
      try {
        await assert.rejects(
          ask(user, "job.run", { argv: ["true"], cwd: "/", env: {} }),
          new Error(
            `Cannot start "true": user nobody has ${MAX_JOBS_PER_USER} jobs on this node, ` +
              `the most one user may have`,
          ),
        );
        assert.equal(local.stats.jobsRefused, 1);
        // Another user (uid 1, daemon) runs one; so does root, who has no such limit.
        assert.deepEqual(await run(other, ["id", "-u"]), ["1\n", { code: 0 }]);
        assert.deepEqual(await run(root, ["id", "-u"]), ["0\n", { code: 0 }]);
        // One of the user's jobs is gone: the user may start one again.
        deputy.jobs.remove(100_000);
        assert.deepEqual(await run(user, ["id", "-u"]), ["65534\n", { code: 0 }]);
        assert.equal(local.stats.jobsRefused, 1);
      } finally {
        await user.close();
        await other.close();
        await root.close();
      }
    });
  },
});

Deno.test({
  name: "localsocket: 1000 idle connections of one user leave room for the other users",
  ignore: !ROOT,
  fn: async () => {
    await withSocket(async (local, dir) => {
      const idle: ChannelClient[] = [];
      try {
        // The user's 769th connection and after are refused at auth (the per-user cap), and closed.
        let refused = 0;
        for (let i = 0; i < 1000; i++) {
          try {
            idle.push(await connectAs(dir, 65534));
          } catch (error) {
            assert.match(
              String(error),
              /user nobody has \d+ connections open, the most one user may/,
            );
            refused++;
          }
        }
        assert.equal(idle.length, MAX_CONNECTIONS_PER_USER);
        assert.equal(refused, 1000 - MAX_CONNECTIONS_PER_USER);
        assert.equal(local.stats.connectionsRefused, refused);
        const other = await connectAs(dir, 1);
        const root = await connectAs(dir, 0);
        try {
          assert.deepEqual(await ask(other, "job.list"), []);
          assert.deepEqual(await ask(root, "ping", { still: "served" }), { still: "served" });
          assert.equal(local.stats.refused, 0, "the socket itself refused nobody");
        } finally {
          await other.close();
          await root.close();
        }
      } finally {
        await Promise.all(idle.map((client) => client.close()));
      }
    });
  },
});
