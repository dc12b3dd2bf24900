/**
 * mosrun's placement options and the runners on real lab nodes with their daemons and real CRIU
 * (root only): `om run -2` starts the job on node 2 (it sees node 2's network; its output, input
 * and exit status come home), `runon 3` through a link lands on node 3 locked, a blocked, down or
 * unknown node fails with 125 before anything of the command ran (with -F it runs at home), -j
 * lands on a node of its list, nomig and runhome run at home locked, the lock defaults of om run
 * and mosrun, and -k inside a job.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { stopDaemon } from "../../lib/lab/daemons.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { readNodeInfo } from "../../lib/state/nodestate.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { exists, inNode, ROOT, runIn, startAll, startIn, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const ignore = !ROOT || !criu;
const LAUNCHER = new URL("../../om", import.meta.url).pathname;

/** Prints the IPv4 addresses of the network it runs in, one per line, sorted. */
const ADDRESSES = "ip -4 -o addr show | awk '{print $4}' | sort";
/** The addresses in a lab node, as ADDRESSES prints them. */
const addressesOf = (lab: Lab, index: number) => inNode(lab, index, ["sh", "-c", ADDRESSES]);

/** `om ps --json`'s row of the job running `word`, on node 1 (`sink`: what om run said). */
async function psRow(lab: Lab, word: string, sink: { out: string; err: string }) {
  return await retryUntil(
    async () => {
      assert.doesNotMatch(sink.err, /om run/, sink.err);
      const ps = await runIn(lab, 1, omCommand(["ps", "--json"]));
      assert.equal(ps.code, 0, ps.err);
      return JSON.parse(ps.out).find((r: { command: string }) => r.command.includes(word));
    },
    10_000,
    { what: `a job running ${word} in om ps --json`, intervalMs: 50 },
  );
}

/** Starts argv in node 1 with stdin piped; collects its output. */
function start(lab: Lab, argv: string[]) {
  const { child, sink, finish } = startIn(lab, 1, argv, "piped");
  const writer = child.stdin.getWriter();
  return {
    sink,
    async send(text: string) {
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
    },
    finish,
  };
}

Deno.test({
  name: "place: om run -NODE, -j, -F, runon, nomig, runhome, the lock and -k on lab nodes",
  ignore,
  fn: () =>
    withLab("place", planLab(3), async (lab) => {
      await startAll(lab, [], { OM_CRIU: criu! });
      for (const id of [2, 3]) {
        await retryUntil(
          async () => (await readNodeInfo(`${nodeRoot(lab, 1)}/nodes`, id))?.status === "up",
          20_000,
          { what: `node 1 to see node ${id} up` },
        );
      }
      const here = await addressesOf(lab, 1);
      const two = await addressesOf(lab, 2);
      const three = await addressesOf(lab, 3);
      assert.notEqual(here, two);
      const om = (...args: string[]) => runIn(lab, 1, omCommand(args));
      const noJobsLeft = () =>
        retryUntil(async () => !(await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).length, 5000, {
          what: "node 1 to forget its jobs",
        });

      // om run -2: the job runs on node 2, its output, stdin and exit status go through home.
      await (async () => {
        const run = start(
          lab,
          omCommand(["run", "-2", "--", "sh", "-c", `${ADDRESSES}; read l; echo "got $l"; exit 4`]),
        );
        // Once it printed, it runs where it was placed.
        await retryUntil(() => run.sink.out !== "", 20_000, { what: "the job's first output" });
        const row = await psRow(lab, "read l", run.sink);
        assert.deepEqual([row.node, row.home, row.policy.lock], [2, 0, true]);
        assert.equal(row.migrations, 1);
        await run.send("hello\n");
        assert.equal(await run.finish(), 4, run.sink.err);
        assert.equal(run.sink.out, `${two}got hello\n`, "node 2's addresses, then the input");
        assert.equal(run.sink.err, "");
      })();

      // runon 3 through a link of that name: on node 3 at once, and locked.
      await (async () => {
        const link = `${lab.record.dir}/runon`;
        await Deno.symlink(LAUNCHER, link);
        const run = start(lab, [link, "3", "sh", "-c", `${ADDRESSES}; read l; exit 0`]);
        // Once it printed, it runs where it was placed.
        await retryUntil(() => run.sink.out !== "", 20_000, { what: "the job's first output" });
        const row = await psRow(lab, "read l", run.sink);
        assert.deepEqual([row.node, row.policy.lock], [3, true]);
        await run.send("\n");
        assert.equal(await run.finish(), 0, run.sink.err);
        assert.equal(run.sink.out, three);
      })();

      // -j2-3 lands on node 2 or node 3.
      await (async () => {
        const { code, out, err } = await om("run", "-j2-3", "--", "sh", "-c", ADDRESSES);
        assert.equal(code, 0, err);
        assert.ok(out === two || out === three, `on node 2 or 3: ${out}`);
      })();

      // nomig and runhome run at home, locked; om run is unlocked, mosrun (the link) locked.
      await (async () => {
        const show = ["sh", "-c", `${ADDRESSES}; echo lock=$OM_JOB_LOCK job=$OM_JOB`];
        for (const argv of [["nomig", "--", ...show], ["runhome", ...show]]) {
          const { code, out, err } = await om(...argv);
          assert.equal(code, 0, err);
          assert.match(out, new RegExp(`^${here.replaceAll(".", "\\.")}lock=1 job=\\d+\n$`));
        }
        assert.match((await om("run", ...show)).out, /lock=0 job=\d+\n$/);
        const mosrun = `${lab.record.dir}/mosrun`;
        await Deno.symlink(LAUNCHER, mosrun);
        const viaLink = (...args: string[]) => runIn(lab, 1, [mosrun, ...args]);
        assert.match((await viaLink(...show)).out, /lock=1 /, "mosrun locks by default");
        assert.match((await viaLink("-n", ...show)).out, /lock=0 /, "but not with a decay option");
        // -k inside a job takes that job's lock.
        const inner = ["sh", "-c", "echo inner=$OM_JOB_LOCK"];
        const nested = (outer: string) =>
          om("run", outer, "--", ...omCommand(["run", "-k", "--", ...inner]));
        assert.equal((await nested("-l")).out, "inner=0\n");
        assert.equal((await nested("-L")).out, "inner=1\n");
        await noJobsLeft();
      })();

      // A blocked node: 125, the node and the step named, nothing of the command ran; -F: here.
      await (async () => {
        const block = await runIn(lab, 2, omCommand(["mosctl", "block"]));
        assert.equal(block.code, 0, block.err);
        const mark = `${lab.record.dir}/ran`;
        const refused = await om("run", "-2", "--", "touch", mark);
        assert.equal(refused.code, 125);
        assert.match(
          refused.err,
          /^om run: Cannot start "touch .*" on node 2: target check failed on node 2: .*node 2 blocks guests \(mosctl block\)\n$/,
        );
        assert.equal(await exists(mark), false, "nothing of the command ran");
        await noJobsLeft();
        const fallback = await om("run", "-2", "-F", "--", "sh", "-c", ADDRESSES);
        assert.equal(fallback.code, 0, fallback.err);
        assert.equal(fallback.out, here);
        // -j with one blocked node: the other one.
        for (let i = 0; i < 3; i++) {
          const { code, out, err } = await om("run", "-j2,3", "--", "sh", "-c", ADDRESSES);
          assert.equal(code, 0, err);
          assert.equal(out, three);
        }
        assert.equal((await runIn(lab, 2, omCommand(["mosctl", "noblock"]))).code, 0);
      })();

      // A node that is down, or that is not known at all.
      await (async () => {
        await stopDaemon(lab, 3);
        await retryUntil(
          async () => (await readNodeInfo(`${nodeRoot(lab, 1)}/nodes`, 3))?.status === "down",
          5000,
          { what: "node 1 to see node 3 down" },
        );
        const down = await om("run", "-3", "--", "true");
        assert.equal(down.code, 125);
        assert.match(down.err, /Cannot start "true" on node 3: node 3 is down\n$/);
        const unknown = await om("run", "-9", "--", "true");
        assert.equal(unknown.code, 125);
        assert.match(unknown.err, /Cannot start "true" on node 9: node 9 is not known here\n$/);
        const fallback = await om("run", "-j3,9", "-F", "--", "sh", "-c", ADDRESSES);
        assert.equal(fallback.code, 0, fallback.err);
        assert.equal(fallback.out, here);
        // This node in the list means here.
        const self = await om("run", "-1", "--", "sh", "-c", ADDRESSES);
        assert.equal(self.out, here, self.err);
        await noJobsLeft();
      })();
    }),
});
