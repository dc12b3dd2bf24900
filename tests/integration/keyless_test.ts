/**
 * Attacks on nodes without the cluster key, and on keyed nodes from without it (PROTOCOL.md §9,
 * §9.1), on real lab nodes: each test fails if the attack succeeds. A keyless node refuses every
 * migration and remote-job request over TCP, from a host of its LAN and from a local user on
 * loopback, writes nothing for them, and says plainly that moving jobs needs a key; its own jobs
 * run on. A keyed node lets no one without its key (or with another) say anything.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { lookupUser } from "../../lib/base/users.ts";
import { newKeyText } from "../../lib/base/key.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { readNodeInfo } from "../../lib/state/nodestate.ts";
import { channelRequest, ROOT, runIn, startAll, startIn, withLab } from "../tools/labkit.ts";

const user = ROOT ? await lookupUser(65534) : undefined;
const ignore = !ROOT || !user;
/** One channel request from inside node `index` to `host`, optionally as uid 65534. */
function chanreq(
  lab: Lab,
  index: number,
  host: string,
  command: string,
  body: unknown,
  options: { key?: string; asNobody?: boolean } = {},
) {
  const as = options.asNobody ? { uid: 65534, gid: user!.gid } : undefined;
  return channelRequest(lab, index, host, command, { key: options.key, body, as });
}

/** Every request a migration or a moved job uses, with a body that would otherwise be taken. */
const REQUESTS: [string, unknown][] = [
  ["mig.check", { id: 77 }],
  ["mig.pages", { id: 77, home: 2, token: "a".repeat(64) }],
  ["mig.begin", { id: 77, home: 2, command: ["sh"], fds: [null, null, null] }],
  ["mig.file", { id: 77, name: "restored", offset: 0 }],
  ["mig.restore", { id: 77 }],
  ["mig.commit", { id: 77 }],
  ["mig.status", { id: 77 }],
  ["mig.abort", { id: 77 }],
  ["mig.move", { id: 77, to: 2 }],
  ["mig.request", { id: 77, to: 2 }],
  ["job.push", { id: 77, fd: 1, offset: 0, data: btoa("forged output\n") }],
  ["job.exited", { id: 77, exit: { code: 0 } }],
  ["job.input", { id: 77, data: btoa("rm -rf /\n") }],
  ["job.signal", { id: 77, signal: "SIGKILL" }],
];

const NEEDS_KEY =
  /on this node: moving jobs between nodes needs a cluster key: make one with om keygen/;

/** What node `index`'s daemon keeps of migrations: nothing must appear there. */
async function migrationsOf(lab: Lab, index: number): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${nodeRoot(lab, index)}/migrations`)) {
      names.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.filter((name) => name !== "dump-gate").sort();
}

Deno.test({
  name: "keyless: every mig.* and job.* request is refused, from the LAN and from a local user",
  ignore,
  fn: () =>
    withLab("nokey", planLab(2), async (lab) => {
      await startAll(lab);
      for (const [command, body] of REQUESTS) {
        const lan = await chanreq(lab, 2, "10.77.0.1", command, body);
        assert.equal(lan.code, 1, `${command} from node 2: ${lan.out}`);
        assert.match(lan.out, NEEDS_KEY, `${command} from node 2`);
        const local = await chanreq(lab, 1, "127.0.0.1", command, body, { asNobody: true });
        assert.equal(local.code, 1, `${command} from uid 65534: ${local.out}`);
        assert.match(local.out, NEEDS_KEY, `${command} from uid 65534`);
      }
      // Nothing was taken: no images, no reservation, no guest record.
      assert.deepEqual(await migrationsOf(lab, 1), []);
      assert.deepEqual(await readJobRecords(`${nodeRoot(lab, 1)}/jobs`), []);
      // The read-only commands are still answered.
      const version = await chanreq(lab, 2, "10.77.0.1", "version", {});
      assert.equal(version.code, 0, version.out);
      assert.equal(JSON.parse(version.out).node, 1);
    }, { key: false }),
});

Deno.test({
  name: "keyless: om migrate says a key is needed, once, and the job runs on with all its output",
  ignore,
  fn: () =>
    withLab("nokeymv", planLab(2), async (lab) => {
      await startAll(lab);
      const run = startIn(
        lab,
        1,
        omCommand([
          "run",
          "--",
          "sh",
          "-c",
          "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.1; done; exit 3",
        ]),
      );
      const job = await retryUntil(
        async () => (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`))[0],
        10_000,
        { what: "the job on node 1" },
      );
      const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
      assert.notEqual(moved.code, 0);
      assert.match(moved.err, /moving jobs between nodes needs a cluster key/);
      assert.equal(moved.err.split("needs a cluster key").length, 2, `said once: ${moved.err}`);
      // A job started for node 2 is refused with the same reason, and nothing of it runs.
      await retryUntil(
        async () => (await readNodeInfo(`${nodeRoot(lab, 1)}/nodes`, 2))?.status === "up",
        10_000,
        { what: "node 1 to know node 2's figures" },
      );
      const placed = await runIn(lab, 1, omCommand(["run", "-2", "--", "echo", "ran"]));
      assert.notEqual(placed.code, 0);
      assert.match(placed.err, /needs a cluster key/, JSON.stringify(placed));
      assert.doesNotMatch(placed.out, /ran/);
      assert.equal(await run.finish(), 3);
      assert.deepEqual(
        run.sink.out.split("\n").filter((l) => l !== ""),
        Array.from({ length: 30 }, (_, i) => `${i}`),
      );
      assert.deepEqual(await migrationsOf(lab, 2), []);
    }, { key: false }),
});

Deno.test({
  name: "keyed: a host without the key, or with another, is refused before any request",
  ignore,
  fn: () =>
    withLab("keyed", planLab(2), async (lab) => {
      await startAll(lab);
      const other = `${lab.record.dir}/other.key`;
      await Deno.writeTextFile(other, newKeyText(), { mode: 0o600 });
      for (const [command, body] of REQUESTS) {
        const none = await chanreq(lab, 2, "10.77.0.1", command, body);
        assert.equal(none.code, 1);
        assert.match(none.out, /^refused: .*requires the cluster key/m, `${command}, no key`);
        const wrong = await chanreq(lab, 2, "10.77.0.1", command, body, { key: other });
        assert.equal(wrong.code, 1);
        assert.match(wrong.out, /^refused: authentication failed/m, `${command}, another key`);
      }
      assert.deepEqual(await migrationsOf(lab, 1), []);
      // The lab's own key gets in.
      const right = await chanreq(lab, 2, "10.77.0.1", "version", {}, { key: lab.record.key });
      assert.equal(right.code, 0, right.out);
    }),
});
