/**
 * `om migrate` on real lab nodes with their daemons and real CRIU (root only): a counting job
 * moved half way keeps its output at home complete, in order and without duplicates, and its
 * exit status arrives; a node with `mosctl block` is refused and the job goes on at home;
 * SIGINT to `om run` stops a migrated job. Failures: a target killed mid-transfer (from home, and
 * from a node the job was moved to) leaves the job where it was, and its restore waiting at its
 * gate ends with it; a commit or a move whose answer is held back or lost still leaves the job
 * running at exactly one node (its output at home has every line once); a target whose early
 * restore does not fit the images restores them afresh; a target cut off during the dump, or
 * after it, fails the migration within seconds (the job runs on at home), and after the commit
 * its stray copy is killed;
 * a restore hanging inside criu is killed at its limit, with the tasks it restored; a moved job
 * whose home daemon restarted (and so forgot it) is killed where it runs.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { findNode, type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { startDaemon, stopDaemon } from "../../lib/lab/daemons.ts";
import { waitForAgreement } from "../../lib/lab/maps.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import type { MigrationFaults } from "../../lib/migration/faults.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { listNodeInfo } from "../../lib/state/nodestate.ts";
import { readProcess, readProcesses } from "../../lib/base/procs.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import {
  exists,
  faultProgram,
  manualOnly,
  ROOT,
  runIn,
  startAll,
  startIn,
  withLab,
} from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const ignore = !ROOT || !criu;
const decoder = new TextDecoder();

/** Prints 0..n-1, one every 100 ms, then exits 5. */
const counter = (n: number) =>
  `i=0; while [ $i -lt ${n} ]; do echo $i; i=$((i+1)); sleep 0.1; done; exit 5`;

/**
 * perl: forks; each process then makes 8 MiB of its own and prints `parent|child I ok` (or `bad`
 * when its memory no longer sums as it did) 30 times, one every 100 ms; the parent waits for the
 * child and exits 7 (1 when the child failed).
 */
const HOLDERS = "my $kid = fork // die; my $tag = $kid ? 'parent' : 'child'; " +
  "my $x = ''; $x .= pack('N', $_ ^ ($kid ? 1 : 2)) for 0 .. 2097151; " +
  "my $want = unpack '%32N*', $x; $| = 1; for my $i (0 .. 29) { " +
  "print \"$tag $i \", (unpack('%32N*', $x) == $want ? 'ok' : 'bad'), \"\\n\"; " +
  "select undef, undef, undef, 0.1 } exit 0 unless $kid; waitpid $kid, 0; exit($? ? 1 : 7)";

/** Starts `om run` in node 1; collects its stdout as it comes. */
function startRun(lab: Lab, ...argv: string[]) {
  return startRunWith(lab, "null", ...argv);
}

/** startRun with its stdin piped or not. */
function startRunWith(lab: Lab, stdin: "null" | "piped", ...argv: string[]) {
  return startIn(lab, 1, omCommand(["run", "--", ...argv]), stdin);
}

/**
 * Starts the daemons of nodes 1 to `count` with OM_CRIU and, for node i, the variables
 * `nodes[i].env` (OM_CRIU may be replaced there) and the faults `nodes[i].faults` of its
 * migrations (tests/tools/faultnode.ts), and waits until their maps agree.
 */
async function startNodes(
  lab: Lab,
  count: number,
  nodes: Record<number, { env?: Record<string, string>; faults?: MigrationFaults }> = {},
): Promise<void> {
  for (let i = 1; i <= count; i++) {
    const faults = nodes[i]?.faults;
    await startDaemon(lab, i, {
      env: { OM_CRIU: criu!, ...nodes[i]?.env },
      ...(faults ? { program: faultProgram(faults) } : {}),
    });
  }
  const agreement = await waitForAgreement(lab, { timeoutMs: 20_000 });
  assert.ok(agreement.agreed, `maps do not agree: ${JSON.stringify(agreement.views)}`);
}

/** `om migrate PID NODE` run in node 1, its output collected (awaited later, or at once). */
const migrateAway = (lab: Lab, pid: number, node: string) =>
  execInNode(lab, 1, omCommand(["migrate", String(pid), node]), {
    stdout: "piped",
    stderr: "piped",
  }).output();

/** Waits until node `index` lists a job whose command has `word`; returns its record. */
const jobOn = (lab: Lab, index: number, word: string) =>
  retryUntil(
    async () =>
      (await readJobRecords(`${nodeRoot(lab, index)}/jobs`)).find((j) =>
        j.command.some((a) => a.includes(word))
      ),
    10_000,
    { what: `a job running ${word} on node ${index}`, intervalMs: 20 },
  );

const lines = (text: string) => text.split("\n").filter((line) => line !== "");
const counts = (n: number) => Array.from({ length: n }, (_, i) => `${i}`);

Deno.test({
  name: "migrate: jobs moved between lab nodes with CRIU: output, exit, SIGINT, block",
  ignore,
  fn: () =>
    withLab("mig", planLab(2), async (lab) => {
      await manualOnly(lab);
      // What an earlier daemon of node 2 left in the middle of a migration: gone at its start.
      const leftover = `${nodeRoot(lab, 2)}/migrations/999-in`;
      await Deno.mkdir(leftover, { recursive: true });
      await Deno.writeFile(`${leftover}/reserve-1`, new Uint8Array(4096));
      // A test's fault: restores have 1.5 s; the jobs run on well past that, untouched by it.
      await startAll(lab, [], { OM_CRIU: criu! }, { restoreLimitMs: 1500 });
      assert.equal(await exists(leftover), false, "swept");

      // (a) a counter moved half way: complete, in order, once; its exit status arrives.
      await (async () => {
        const run = startRun(lab, "sh", "-c", counter(40));
        const job = await jobOn(lab, 1, "while");
        await retryUntil(() => lines(run.sink.out).length >= 15, 10_000, {
          what: "15 lines before the migration",
        });
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        assert.match(
          moved.out,
          /frozen \d+ ms, transfer \d+ ms, restore \d+ ms, total \d+ ms/,
        );
        console.log(`migrate: ${moved.out.trim()}`);
        const home = (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) =>
          j.pid === job.pid
        );
        assert.equal(home?.node, 2, "home records the job on node 2");
        const guest = (await readJobRecords(`${nodeRoot(lab, 2)}/jobs`)).find((j) =>
          j.pid === job.pid
        );
        assert.deepEqual([guest?.node, guest?.home], [2, 1], "node 2 records its guest");
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(40), run.sink.err);
        assert.equal(code, 5, run.sink.err);
        // The guest's record goes with it.
        await retryUntil(
          async () => !(await readJobRecords(`${nodeRoot(lab, 2)}/jobs`)).length,
          5000,
          { what: "node 2 to forget its guest" },
        );
      })();

      // A job with a child: the child moves with it, and the exit status is still the job's.
      await (async () => {
        const run = startRun(lab, "sh", "-c", `(${counter(30)}) & wait $!`);
        const job = await jobOn(lab, 1, "wait");
        await retryUntil(() => lines(run.sink.out).length >= 10, 10_000);
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(30), run.sink.err);
        assert.equal(code, 5, run.sink.err);
      })();

      // A job of two processes holding 8 MiB each (room reserved for both on node 2, PROTOCOL.md
      // §11.1.1): their memory arrives whole, each line once and in order, and the exit status.
      await (async () => {
        const run = startRun(lab, "perl", "-e", HOLDERS);
        const job = await jobOn(lab, 1, "2097151");
        await retryUntil(() => lines(run.sink.out).length >= 16, 10_000);
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        const mib = Number(/\(([\d.]+) MiB\)/.exec(moved.out)?.[1]);
        assert.ok(mib >= 16 && mib < 32, `both processes' 8 MiB moved: ${moved.out}`);
        const log = await Deno.readTextFile(`${findNode(lab, 2).dir}/discover.log`);
        const room = new RegExp(`job ${job.pid}: room for ([\\d.]+) MiB of pages taken`).exec(log);
        assert.ok(room && Number(room[1]) >= 16, `node 2 took the room for both: ${room?.[0]}`);
        const code = await run.finish();
        for (const tag of ["parent", "child"]) {
          assert.deepEqual(
            lines(run.sink.out).filter((line) => line.startsWith(tag)),
            counts(30).map((i) => `${tag} ${i} ok`),
            run.sink.err,
          );
        }
        assert.equal(code, 7, run.sink.err);
      })();

      // (c) SIGINT to om run stops a migrated job (sh does not handle it: it dies of it).
      await (async () => {
        const run = startRun(lab, "sh", "-c", "while :; do echo tick; sleep 0.1; done");
        const job = await jobOn(lab, 1, "tick");
        await retryUntil(() => lines(run.sink.out).length >= 3, 10_000);
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        const before = lines(run.sink.out).length;
        await retryUntil(() => lines(run.sink.out).length >= before + 3, 10_000, {
          what: "ticks from node 2",
        });
        run.child.kill("SIGINT");
        const code = await run.finish();
        assert.equal(code, 130, run.sink.err);
      })();

      // (b) node 2 blocks guests: refused before anything is frozen; the job goes on at home.
      await (async () => {
        const block = await runIn(lab, 2, omCommand(["mosctl", "block"]));
        assert.equal(block.code, 0, block.err);
        const run = startRun(lab, "sh", "-c", counter(20));
        const job = await jobOn(lab, 1, "while");
        await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 1);
        assert.match(moved.err, /node 2 blocks guests \(mosctl block\)/);
        assert.match(moved.err, /target check failed/);
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(20), run.sink.err);
        assert.equal(code, 5);
      })();
    }),
});

Deno.test({
  name: "migrate: the target daemon killed during the transfer leaves the job running at home",
  ignore,
  fn: () =>
    withLab("migk", planLab(2), async (lab) => {
      await manualOnly(lab);
      // A test's fault (lib/migration/faults.ts): node 2 stores each image chunk 2 s late.
      await startNodes(lab, 2, { 2: { faults: { fileDelayMs: 2000 } } });
      const run = startRun(lab, "sh", "-c", counter(40));
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 10, 10_000);
      const migrate = migrateAway(lab, job.pid, "2");
      // The dump has ended on node 1 (its pages are on node 2 already), the other image files
      // are on their way, each held 2 s by node 2: kill node 2's daemon now.
      await retryUntil(
        () =>
          Deno.readTextFile(`${nodeRoot(lab, 1)}/migrations/${job.pid}-out/dump.log`).then(
            (log) => log.includes("Dumping finished successfully"),
            () => false,
          ),
        10_000,
        { what: "the dump to end", intervalMs: 10 },
      );
      // Node 2's restore was started with the page link and waits at its gate (§11.4).
      const images = `${nodeRoot(lab, 2)}/migrations/${job.pid}-in`;
      assert.ok((await Deno.lstat(`${images}/inventory.img`)).isFifo, "the gate is shut");
      assert.ok((await restoresOf(images)).length > 0, "criu restore waits at its gate");
      const daemon = Number(await Deno.readTextFile(`${nodeRoot(lab, 2)}/omdiscd.pid`));
      Deno.kill(daemon, "SIGKILL");
      // Its waiter sees the daemon gone and stops criu.
      await retryUntil(async () => (await restoresOf(images)).length === 0, 5000, {
        what: "node 2's gated restore to end with its daemon",
      });
      const moved = await migrate;
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /transfer failed/);
      assert.match(err, /the job goes on at node 1/);
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(40), run.sink.err);
      assert.equal(code, 5);
    }),
});

/** The processes (waiter, criu) restoring from images directory `dir`. */
const restoresOf = async (dir: string) =>
  (await readProcesses("/proc")).filter((p) => p.argv.includes("restore") && p.argv.includes(dir));

/** Reads lines slowly (so some wait in the pipe at the dump), echoes them counted, exits 7. */
const slowReader =
  'n=0; while IFS= read -r l; do n=$((n+1)); echo "$n:$l"; sleep 0.3; done; exit 7';

/** The HOWTO's CPU-bound awk loop (about 3 s here). */
const AWK_LOOP = "BEGIN {for(i=0;i<80000000;i++) s+=i%7; print s}";

Deno.test({
  name: "migrate: stdin survives a migration; a CPU-bound job gives the same result",
  ignore,
  fn: () =>
    withLab("migs", planLab(2), async (lab) => {
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });

      // A job reading stdin: lines written before (some still unread in the pipe at the dump)
      // and after the migration come back once each, in order; EOF ends it with its code.
      await (async () => {
        const run = startRunWith(lab, "piped", "sh", "-c", slowReader);
        const input = run.child.stdin.getWriter();
        const job = await jobOn(lab, 1, "IFS");
        const words = Array.from({ length: 12 }, (_, i) => `line ${i}`);
        await input.write(
          new TextEncoder().encode(words.slice(0, 6).map((w) => w + "\n").join("")),
        );
        await retryUntil(() => lines(run.sink.out).length >= 1, 10_000, {
          what: "the first line back",
        });
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        console.log(`migrate (stdin): ${moved.out.trim()}`);
        assert.ok(lines(run.sink.out).length < 6, "some lines were still unread at the dump");

        await input.write(new TextEncoder().encode(words.slice(6).map((w) => w + "\n").join("")));
        await input.close();
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), words.map((w, i) => `${i + 1}:${w}`), run.sink.err);
        assert.equal(code, 7, run.sink.err);
      })();

      // The HOWTO's awk loop: the same output and status with and without a migration.
      await (async () => {
        const plainStart = performance.now();
        const plain = startRun(lab, "awk", AWK_LOOP);
        const plainCode = await plain.finish();
        const plainMs = performance.now() - plainStart;
        assert.equal(plainCode, 0, plain.sink.err);
        const start = performance.now();
        const run = startRun(lab, "awk", AWK_LOOP);
        const job = await jobOn(lab, 1, "BEGIN");
        // Moved while it computes: soon after it started, so that a faster machine, where the
        // loop ends sooner, still moves it in the middle.
        await new Promise((resolve) => setTimeout(resolve, Math.min(300, plainMs / 4)));
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "2"]));
        assert.equal(moved.code, 0, moved.err);
        console.log(`migrate (awk): ${moved.out.trim()}`);
        const code = await run.finish();
        console.log(
          `awk: plain ${Math.round(plainMs)} ms, migrated ${
            Math.round(performance.now() - start)
          } ms`,
        );
        assert.equal(run.sink.out, plain.sink.out);
        assert.equal(lines(plain.sink.out).length, 1);
        assert.equal(code, plainCode);
      })();
    }),
});

/** Migrates job `pid` from its home (node 1) to NODE; asserts it worked; returns the report line. */
async function migrateTo(lab: Lab, pid: number, node: string): Promise<string> {
  const moved = await runIn(lab, 1, omCommand(["migrate", String(pid), node]));
  assert.equal(moved.code, 0, moved.err);
  return moved.out.trim();
}

/** The record of job `pid` on node `index` as [node, home], or undefined. */
const recordOn = async (lab: Lab, index: number, pid: number) => {
  const job = (await readJobRecords(`${nodeRoot(lab, index)}/jobs`)).find((j) => j.pid === pid);
  return job ? [job.node, job.home] : undefined;
};

/** Cuts (down) or mends (up) node `index`'s cable: its interface, in its namespace. */
async function cable(lab: Lab, index: number, state: "up" | "down"): Promise<void> {
  const node = findNode(lab, index);
  const set = await new Deno.Command("ip", {
    args: ["-n", node.namespace, "link", "set", node.nics[0].name, state],
  }).output();
  assert.equal(set.code, 0, decoder.decode(set.stderr));
}

/** `om migrate`'s outcome, or a failure when it has not ended `ms` after a cable was cut. */
async function endsAfterCut<T>(migrate: Promise<T>, ms: number): Promise<T> {
  // A liveness bound (without the fix under test it waits minutes), not a timing.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(
      () =>
        reject(new Error(`om migrate still waits ${ms} ms after the cut: the job stays frozen`)),
      ms,
    )
  );
  return await Promise.race([migrate, late]).finally(() => clearTimeout(timer));
}

Deno.test({
  name: "migrate: a job moved on from where it runs: back home, and to a third node",
  ignore,
  fn: () =>
    withLab("migm", planLab(3), async (lab) => {
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });

      // 1 -> 2 -> 1 (home): the job runs at home again, adopted by its deputy.
      await (async () => {
        const run = startRun(lab, "sh", "-c", counter(50));
        const job = await jobOn(lab, 1, "while");
        await retryUntil(() => lines(run.sink.out).length >= 8, 10_000);
        console.log(`1->2: ${await migrateTo(lab, job.pid, "2")}`);
        assert.deepEqual(await recordOn(lab, 2, job.pid), [2, 1]);
        const at = lines(run.sink.out).length;
        await retryUntil(() => lines(run.sink.out).length >= at + 8, 10_000, {
          what: "lines from node 2",
        });
        console.log(`2->1: ${await migrateTo(lab, job.pid, "home")}`);
        assert.deepEqual(await recordOn(lab, 1, job.pid), [1, 1], "home runs it again");
        await retryUntil(async () => !(await recordOn(lab, 2, job.pid)), 5000, {
          what: "node 2 to forget it",
        });
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(50), run.sink.err);
        assert.equal(code, 5, run.sink.err);
      })();

      // 1 -> 2 -> 3.
      await (async () => {
        const run = startRun(lab, "sh", "-c", counter(50));
        const job = await jobOn(lab, 1, "while");
        await retryUntil(() => lines(run.sink.out).length >= 8, 10_000);
        console.log(`1->2: ${await migrateTo(lab, job.pid, "2")}`);
        const at = lines(run.sink.out).length;
        await retryUntil(() => lines(run.sink.out).length >= at + 8, 10_000, {
          what: "lines from node 2",
        });
        console.log(`2->3: ${await migrateTo(lab, job.pid, "3")}`);
        assert.deepEqual(await recordOn(lab, 1, job.pid), [3, 1], "home sees it on node 3");
        assert.deepEqual(await recordOn(lab, 3, job.pid), [3, 1], "node 3 records its guest");
        await retryUntil(async () => !(await recordOn(lab, 2, job.pid)), 5000, {
          what: "node 2 to forget it",
        });
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(50), run.sink.err);
        assert.equal(code, 5, run.sink.err);
      })();
    }),
});

/** Waits until node `index` has ended the dump of job `pid` (its images go out next). */
const dumped = (lab: Lab, index: number, pid: number) =>
  retryUntil(
    () =>
      Deno.readTextFile(`${nodeRoot(lab, index)}/migrations/${pid}-out/dump.log`).then(
        (log) => log.includes("Dumping finished successfully"),
        () => false,
      ),
    10_000,
    { what: `node ${index} to end the dump`, intervalMs: 10 },
  );

Deno.test({
  name: "migrate: a failed move of a job running on node 2 leaves it running there",
  ignore,
  fn: () =>
    withLab("migf", planLab(3), async (lab) => {
      // A test's fault (lib/migration/faults.ts): node 3 stores each image chunk 2 s late.
      await startNodes(lab, 3, { 3: { faults: { fileDelayMs: 2000 } } });
      const run = startRun(lab, "sh", "-c", counter(60));
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 8, 10_000);
      console.log(`1->2: ${await migrateTo(lab, job.pid, "2")}`);
      const at = lines(run.sink.out).length;
      await retryUntil(() => lines(run.sink.out).length >= at + 5, 10_000, {
        what: "lines from node 2",
      });
      // Home asks node 2 to move it to node 3; node 3's daemon dies after node 2's dump.
      const migrate = migrateAway(lab, job.pid, "3");
      await dumped(lab, 2, job.pid);
      Deno.kill(Number(await Deno.readTextFile(`${nodeRoot(lab, 3)}/omdiscd.pid`)), "SIGKILL");
      const moved = await migrate;
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /transfer failed/);
      assert.match(err, /the job goes on at node 2/);
      assert.deepEqual(await recordOn(lab, 1, job.pid), [2, 1], "home still sees it on node 2");
      assert.deepEqual(await recordOn(lab, 2, job.pid), [2, 1], "node 2 still runs it");
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(60), run.sink.err);
      assert.equal(code, 5, run.sink.err);
    }),
});

Deno.test({
  name: "migrate: lost answers at the end: mig.commit asked again, mig.move settled by asking",
  ignore,
  fn: () =>
    withLab("migc", planLab(3), async (lab) => {
      // A test's faults (lib/migration/faults.ts): node 2 holds its first mig.commit answer past the
      // source's 10 s timeout, and answers mig.move with an error once the move is done; as a
      // source it tells the target the wrong mount namespace, so node 3 restores afresh.
      await startNodes(lab, 3, {
        2: { faults: { commitDelayMs: 12000, loseMoveReply: true, wrongPlan: true } },
      });
      const run = startRun(lab, "sh", "-c", counter(250));
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      // 1 -> 2: node 2 runs the job from its first mig.commit on; home hears nothing for 10 s,
      // asks again, is told the job runs there, and does not continue its own copy.
      console.log(`1->2: ${await migrateTo(lab, job.pid, "2")}`);
      assert.deepEqual(await recordOn(lab, 1, job.pid), [2, 1]);
      const at = lines(run.sink.out).length;
      await retryUntil(() => lines(run.sink.out).length >= at + 5, 10_000, {
        what: "lines from node 2",
      });
      // 2 -> 3: node 2 moves it, then answers home with an error: home asks both nodes.
      console.log(`2->3: ${await migrateTo(lab, job.pid, "3")}`);
      assert.deepEqual(await recordOn(lab, 1, job.pid), [3, 1], "home sees it on node 3");
      assert.match(
        await Deno.readTextFile(`${findNode(lab, 3).dir}/discover.log`),
        /its images lack a mount namespace, not as announced: restored afresh/,
      );
      await retryUntil(async () => !(await recordOn(lab, 2, job.pid)), 5000, {
        what: "node 2 to forget it",
      });
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(250), run.sink.err);
      assert.equal(code, 5, run.sink.err);
    }),
});

Deno.test({
  name:
    "migrate: a target cut off after the commit: the job goes on at home, the stray copy is killed",
  ignore,
  fn: () =>
    withLab("migp", planLab(2), async (lab) => {
      // A test's fault: node 2 holds its first mig.commit answer 2 s, long enough to cut its
      // cable between the commit and the answer.
      await startNodes(lab, 2, { 2: { faults: { commitDelayMs: 2000 } } });
      // Lines of 2 KiB: a copy whose output cannot get home blocks once its pipe is full. Every
      // copy also writes each number to a file (the nodes share it): what each copy did.
      const trace = `${lab.record.dir}/trace`;
      const script = `pad=$(printf '%02000d' 0); i=0; while [ $i -lt 120 ]; do ` +
        `printf '%s %s\\n' $i "$pad"; echo $i >> ${trace}; i=$((i+1)); sleep 0.1; done; exit 5`;
      const numbers = () => lines(run.sink.out).map((line) => line.split(" ")[0]);
      const run = startRun(lab, "sh", "-c", script);
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      const migrate = migrateAway(lab, job.pid, "2");
      // Node 2 has committed (its guest record is written then): its cable is cut at once.
      await retryUntil(() => recordOn(lab, 2, job.pid), 30_000, {
        what: "node 2 to commit",
        intervalMs: 10,
      });
      const node2 = findNode(lab, 2);
      await cable(lab, 2, "down");
      // Home hears no answer to mig.commit for 10 s, asks again for 40 s, and goes on with its
      // own copy, which prints again at home.
      const moved = await migrate;
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /commit failed/);
      assert.match(err, /the job goes on at node 1/);
      assert.deepEqual(await recordOn(lab, 1, job.pid), [1, 1], "home runs it");
      const at = lines(run.sink.out).length;
      await retryUntil(() => numbers().length >= at + 3, 10_000, {
        what: "lines from the home copy",
      });
      // The cable is back: node 2's copy pushes its output home, is refused, and is killed.
      await cable(lab, 2, "up");
      await retryUntil(async () => !(await recordOn(lab, 2, job.pid)), 30_000, {
        what: "node 2 to kill its copy",
      });
      assert.match(
        await Deno.readTextFile(`${node2.dir}/discover.log`),
        new RegExp(
          `job ${job.pid} of node 1: its home says it runs elsewhere: its copy here is killed`,
        ),
      );
      const code = await run.finish();
      assert.deepEqual(numbers(), counts(120), run.sink.err);
      assert.equal(code, 5, run.sink.err);
      // Node 2's copy ran a little (until its pipe was full), never to its end.
      const done = lines(await Deno.readTextFile(trace));
      assert.deepEqual([...new Set(done)].sort((a, b) => +a - +b), counts(120));
      assert.equal(done.filter((n) => n === "119").length, 1, "one copy reached the end");
      assert.ok(done.length < 120 + 60, `${done.length} numbers: the stray copy ran on`);
    }),
});

Deno.test({
  name: "migrate: a target cut off during the dump: the job is let go within seconds, at home",
  ignore,
  fn: () =>
    withLab("migd", planLab(2), async (lab) => {
      await startNodes(lab, 2);
      // Node 1 sends at 4 Mbit/s: the job's 16 MiB take half a minute to cross, time enough to
      // cut node 2's cable in the middle of the dump.
      const node1 = findNode(lab, 1);
      const shaped = await new Deno.Command("ip", {
        args: ["netns", "exec", node1.namespace, "tc", "qdisc", "add", "dev", node1.nics[0].name]
          .concat(["root", "tbf", "rate", "4mbit", "burst", "32kb", "latency", "2s"]),
      }).output();
      assert.equal(shaped.code, 0, decoder.decode(shaped.stderr));
      const script = '$| = 1; my $m = "x" x (16 << 20); ' +
        'for my $i (0 .. 59) { print "$i\\n"; select(undef, undef, undef, 0.1) } exit 5';
      const run = startRun(lab, "perl", "-e", script);
      const job = await jobOn(lab, 1, "select");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      const migrate = migrateAway(lab, job.pid, "2");
      // The job is frozen and its pages are on their way: node 2's cable is cut.
      const images = `${nodeRoot(lab, 2)}/migrations/${job.pid}-in`;
      const stored = async () => {
        let bytes = 0;
        for await (const entry of Deno.readDir(images)) {
          if (/^pages-\d+\.img$/.test(entry.name)) {
            bytes += (await Deno.stat(`${images}/${entry.name}`)).size;
          }
        }
        return bytes;
      };
      await retryUntil(
        async () => (await stored().catch(() => 0)) > 0,
        30_000,
        { what: "pages to reach node 2", intervalMs: 20 },
      );
      await cable(lab, 2, "down");
      // A page link silent or stuck for 10 s fails the dump (lib/migration/pagerelay.ts), not after
      // TCP's own quarter of an hour: the job runs on at home.
      const moved = await endsAfterCut(migrate, 60_000);
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /dump failed on node 1/);
      assert.match(err, /the job goes on at node 1/);
      await cable(lab, 2, "up");
      // Node 2's page link sees its peer gone (the relay's 10 s of silence, or the source's reset
      // once the cable is back) and fails; the restore held at its gate for those pages stops with it.
      await retryUntil(
        async () => (await readProcesses("/proc")).every((p) => !p.argv.includes(images)),
        30_000,
        { what: "node 2's page server and held restore to end" },
      );
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(60), run.sink.err);
      assert.equal(code, 5, run.sink.err);
    }),
});

Deno.test({
  name: "migrate: a target cut off after the dump: the job runs on at home within seconds",
  ignore,
  fn: () =>
    withLab("migt", planLab(2), async (lab) => {
      // A test's fault (lib/migration/faults.ts): node 2 stores each image chunk 2 s late.
      await startNodes(lab, 2, { 2: { faults: { fileDelayMs: 2000 } } });
      const run = startRun(lab, "sh", "-c", counter(60));
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      const migrate = migrateAway(lab, job.pid, "2");
      // The dump has ended (the job is frozen, its pages on node 2), the small images are on
      // their way: node 2's cable is cut. Their requests would wait 60 s for an answer.
      await dumped(lab, 1, job.pid);
      await cable(lab, 2, "down");
      // Node 2 answers no ping (lib/channel/peerwatch.ts): the transfer fails, the job runs on.
      const moved = await endsAfterCut(migrate, 40_000);
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /transfer failed on node 2: node 2 stopped answering/);
      assert.match(err, /the job goes on at node 1/);
      await cable(lab, 2, "up");
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(60), run.sink.err);
      assert.equal(code, 5, run.sink.err);
    }),
});

Deno.test({
  name: "migrate: a restore that hangs inside criu is killed at its limit; the job goes on at home",
  ignore,
  fn: () =>
    withLab("migh", planLab(2), async (lab) => {
      // Node 2's criu is the real one, whose restores run an action script that hangs at
      // post-restore: the job's tasks are restored, criu waits for the script for good.
      const dir = lab.record.dir;
      await Deno.writeTextFile(
        `${dir}/hang`,
        '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0\n' +
          `echo "$CRTOOLS_INIT_PID $PPID $$" > ${dir}/hung\nexec sleep 600\n`,
        { mode: 0o755 },
      );
      await Deno.writeTextFile(
        `${dir}/criu`,
        `#!/bin/sh\n[ "$1" = restore ] && exec ${criu} "$@" --action-script ${dir}/hang\n` +
          `exec ${criu} "$@"\n`,
        { mode: 0o755 },
      );
      await startNodes(lab, 2, {
        2: { env: { OM_CRIU: `${dir}/criu` }, faults: { restoreLimitMs: 3000 } },
      });
      const run = startRun(lab, "sh", "-c", counter(50));
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      const moved = await migrateAway(lab, job.pid, "2");
      const err = decoder.decode(moved.stderr);
      assert.equal(moved.code, 1, err);
      assert.match(err, /restore failed on node 2/);
      assert.match(err, /criu restore did not end within 3000 ms/);
      assert.match(err, /the job goes on at node 1/);
      // The restored copy (its PID 1), criu and the script it waited for were all killed.
      const hung = (await Deno.readTextFile(`${dir}/hung`)).trim().split(" ").map(Number);
      assert.ok(hung.length === 3 && hung.every((pid) => pid > 1), `${hung}`);
      for (const pid of hung) {
        await retryUntil(
          async () => {
            const process = await readProcess("/proc", pid);
            return process === undefined || process.state === "Z";
          },
          5000,
          { what: `process ${pid} of node 2's restore to be killed` },
        );
      }
      const code = await run.finish();
      assert.deepEqual(lines(run.sink.out), counts(50), run.sink.err);
      assert.equal(code, 5, run.sink.err);
    }),
});

Deno.test({
  name: "migrate: a moved job whose home daemon restarted (and forgot it) is killed where it runs",
  ignore,
  fn: () =>
    withLab("migr", planLab(2), async (lab) => {
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });
      const script = counter(300);
      const run = startRun(lab, "sh", "-c", script);
      const job = await jobOn(lab, 1, "while");
      await retryUntil(() => lines(run.sink.out).length >= 5, 10_000);
      console.log(`1->2: ${await migrateTo(lab, job.pid, "2")}`);
      const at = lines(run.sink.out).length;
      await retryUntil(() => lines(run.sink.out).length >= at + 3, 10_000, {
        what: "lines from node 2",
      });
      const copies = async () =>
        (await readProcesses("/proc")).filter((p) => p.argv[0] === "sh" && p.argv[2] === script);
      assert.equal((await copies()).length, 1, "the job runs once, on node 2");
      // Home's daemon restarts: its jobs are gone with it, and so is the `om run` they were for.
      await stopDaemon(lab, 1);
      assert.notEqual(await run.finish(), 0, "om run lost its daemon");
      await startDaemon(lab, 1, { env: { OM_CRIU: criu! } });
      // Node 2's next push is answered "no job": its copy has nobody left to print for.
      await retryUntil(async () => (await copies()).length === 0, 20_000, {
        what: "node 2 to kill the job its home forgot",
      });
      await retryUntil(async () => !(await recordOn(lab, 2, job.pid)), 5000, {
        what: "node 2 to forget it",
      });
      assert.match(
        await Deno.readTextFile(`${findNode(lab, 2).dir}/discover.log`),
        new RegExp(
          `job ${job.pid} of node 1: its home has no such job .*: its copy here is killed`,
        ),
      );
    }),
});

Deno.test({
  name: "migrate: balance picks the idle node, not the busy one",
  ignore,
  fn: () =>
    withLab("migb", planLab(3), async (lab) => {
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });
      // At the reference speed a busy task is 100 load units whatever this machine's clock, so
      // one hog puts node 1 past the balancer's margin by a length, not by a hair.
      for (const index of [1, 2, 3]) {
        const set = await runIn(lab, index, omCommand(["mosctl", "setspeed", "10000"]));
        assert.equal(set.code, 0, set.err);
      }
      const hog = (index: number) =>
        execInNode(lab, index, ["sh", "-c", "while :; do :; done"], {
          stdout: "null",
          stderr: "null",
        });
      const hogs = [hog(2), hog(1)];
      try {
        // Node 1 sees node 2 and itself busy, node 3 idle, for long enough: the balancer takes
        // its own node's load as the lower of its last two figures (lib/balance/balancer.ts), so
        // one busy figure after an idle one is not yet busy to it.
        let seen = "";
        let since: number | undefined;
        await retryUntil(
          async () => {
            const nodes = await listNodeInfo(`${nodeRoot(lab, 1)}/nodes`);
            seen = nodes.map((n) => `${n.id}:${n.status}:${n.load}/${n.cpus}`).join(" ");
            const load = (id: number) => nodes.find((n) => n.id === id && n.status === "up")?.load;
            const busy = (load(1) ?? 0) >= 80 && (load(2) ?? 0) >= 80 && (load(3) ?? 1000) < 20;
            since = busy ? since ?? Date.now() : undefined;
            return since !== undefined && Date.now() - since >= 2500;
          },
          20_000,
          { what: "node 1 to see nodes 1 and 2 busy, node 3 idle" },
        ).catch((error) => {
          throw new Error(`${error.message} (seen: ${seen})`);
        });
        const run = startRun(lab, "sh", "-c", counter(40));
        const job = await jobOn(lab, 1, "while");
        await retryUntil(() => lines(run.sink.out).length >= 10, 10_000);
        const moved = await runIn(lab, 1, omCommand(["migrate", String(job.pid), "balance"]));
        assert.equal(moved.code, 0, moved.err);
        console.log(`balance: ${moved.out.trim()}`);
        assert.match(moved.out, /^balance: node 3 \(load \d+\.\d\d per CPU against/);
        assert.match(moved.out, /node 1 -> node 3: frozen \d+ ms/);
        assert.deepEqual(await recordOn(lab, 1, job.pid), [3, 1], "home sees it on node 3");
        const code = await run.finish();
        assert.deepEqual(lines(run.sink.out), counts(40), run.sink.err);
        assert.equal(code, 5, run.sink.err);
      } finally {
        for (const h of hogs) {
          h.kill("SIGKILL");
          await h.status;
        }
      }
    }),
});
