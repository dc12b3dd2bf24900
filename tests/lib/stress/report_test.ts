/** The report: the text file's every part, and the JSON's fields. */
import assert from "node:assert/strict";
import { commandLine, renderReport, reportJson } from "../../../lib/stress/report.ts";
import { verdictOf } from "../../../lib/stress/verdict.ts";
import { job, move, runOf } from "./fixture.ts";

const run = runOf(
  [
    job(1, { nodes: [1, 2, 3, 1], stressMoves: 2, balancerMoves: 1 }),
    job(2, {
      test: "stdin",
      pid: undefined,
      status: "lost",
      exitCode: 125,
      actual: "0 lines",
      expected: "123 2097152",
      what: "stdin: 2048 KiB fed over 8 s, cksum in the job",
      nodes: [1],
      stressMoves: 0,
      note: "om run: Cannot follow job 4702: gone\nsecond line",
      command: ["sh", "-c", "cksum", "om-stress-x-2"],
    }),
    job(3, {
      test: "portfolio",
      status: "skipped",
      command: [],
      nodes: [],
      pid: undefined,
      note: "skipped: no perl on PATH",
      what: "the HOWTO's Perl portfolio simulation",
    }),
  ],
  [
    move(1),
    move(2, { by: "balancer", from: 2, to: 3, frozenMs: undefined, totalMs: undefined }),
    move(3, {
      from: 3,
      to: 1,
      outcome: "failed",
      step: "restore",
      frozenMs: undefined,
      totalMs: undefined,
      error: "restore failed on node 1",
      logPath: "/run/om/migrations/4701-in/restore.log",
    }),
    move(4, {
      outcome: "job ended",
      step: "dump",
      logPath: "/x/dump.log",
      frozenMs: undefined,
      totalMs: undefined,
    }),
  ],
);

const TEXT = `om stress report

Started   2025-01-31 12:00:00 UTC (ran 21.5 s)
om        0.1.0
Kernel    6.18.0
CRIU      4.1.1 (/usr/sbin/criu)
Home      node 1 (every job started here)

Nodes
  node  address    cpus  speed    memory     total  status
     1  10.77.0.1     2  12000  1024 MiB  2048 MiB  up
     2  10.77.0.2     2  12000  1024 MiB  2048 MiB  up
     3  10.77.0.3     2  12000  1024 MiB  2048 MiB  down

Settings
  duration 20.0 s, a move every 3.0 s, 2 jobs at once, each sized for 8 s of CPU
  tests awk, stdin; memory workload 16 MiB
  report om-stress-2025-01-31T12-00-00Z.txt

Jobs
  1. awk, job 4701: passed
     what      awk loop: 10 x 1000 additions modulo 1000003
     command   awk -v om_stress=om-stress-x-1 'BEGIN { print 1 }'
     nodes     1 -> 2 -> 3 -> 1 (3 moves: 2 by om stress, 1 by the balancer)
     expected  44955
     actual    44955 (exit 0)
     ran       from 1.0 s to 9.0 s
  2. stdin: lost
     what      stdin: 2048 KiB fed over 8 s, cksum in the job
     command   sh -c cksum om-stress-x-2
     nodes     1 (never moved)
     expected  123 2097152
     actual    0 lines (exit 125)
     ran       from 1.0 s to 9.0 s
     note      om run: Cannot follow job 4702: gone
               second line
  3. portfolio: skipped
     what      the HOWTO's Perl portfolio simulation
     note      skipped: no perl on PATH

Moves
  n   time   job  test  from  to  asked by   frozen   total  result
  1  4.0 s  4701  awk      1   2  om stress  120 ms  900 ms  done
  2  5.0 s  4701  awk      2   3  balancer        -       -  done
  3  6.0 s  4701  awk      3   1  om stress       -       -  failed at restore: restore failed on node 1
        CRIU log: /run/om/migrations/4701-in/restore.log
  4  7.0 s  4701  awk      1   2  om stress       -       -  job ended

Summary
  FAILED: 1 job was lost; 1 move that om stress asked for failed (restore). 2 jobs (1 right, 0 wrong, 1 lost); 2 moves done (1 by om stress, 1 by the balancer), 1 failed
`;

Deno.test("report: the text: software, nodes, settings, each job, each move, the summary", () => {
  assert.equal(renderReport(run, verdictOf(run)), TEXT);
});

Deno.test("report: no moves, an interrupted run, no moves by om stress", () => {
  const quiet = runOf([job(1, { nodes: [1], stressMoves: 0 })], [], {
    interrupted: true,
    settings: { ...run.settings, intervalMs: 0 },
  });
  const text = renderReport(quiet, verdictOf(quiet));
  assert.match(text, /\nStarted {3}2025-01-31 12:00:00 UTC \(ran 21\.5 s, interrupted\)\n/);
  assert.match(text, /\n {2}duration 20\.0 s, no moves by om stress, /);
  assert.match(text, /\nMoves\n {2}none\n/);
  assert.match(text, /\n {2}FAILED: the run was interrupted before its end\. /);
});

Deno.test("report: the JSON has the verdict's counts, the report's path and everything else", () => {
  const json = reportJson(run, verdictOf(run));
  assert.equal(json.passed, false);
  assert.equal(json.jobs, 2);
  assert.equal(json.migrations, 2);
  assert.equal(json.failedMigrations, 1);
  assert.equal(json.wrongResults, 0);
  assert.equal(json.lost, 1);
  assert.equal(json.report, "om-stress-2025-01-31T12-00-00Z.txt");
  assert.equal(json.startedAt, "2025-01-31T12:00:00.000Z");
  assert.equal(json.criu, "4.1.1 (/usr/sbin/criu)");
  assert.deepEqual(json.reasons, [
    "1 job was lost",
    "1 move that om stress asked for failed (restore)",
  ]);
  assert.equal(json.workloads, run.jobs);
  assert.equal(json.moves, run.moves);
  assert.equal(json.nodes, run.nodes);
  // One JSON object, as --json prints it.
  assert.deepEqual(JSON.parse(JSON.stringify(json)).moves[2].step, "restore");
});

Deno.test("report: a command line as a shell would take it", () => {
  assert.equal(commandLine(["sh", "-c", "echo 'a b'", "x"]), `sh -c 'echo '\\''a b'\\''' x`);
});
