/**
 * `om stress` on a 3-node lab with real CRIU (root only): a short run passes, with every workload
 * right, moves done by om stress (and counted for the balancer), the JSON's counts and the text
 * report; and a run whose moves fail (every node's CRIU refuses to restore) fails, says why,
 * reports each move failed at its step, and still has every job's result right (the jobs went on
 * where they were).
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { TEST_NAMES } from "../../lib/stress/workload.ts";
import { manualOnly, ROOT, startAll, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const ignore = !ROOT || !criu;
const decoder = new TextDecoder();

/** Runs `om stress ARGS` in node 1, in directory `cwd`. */
async function stress(lab: Lab, cwd: string, ...args: string[]) {
  const output = await execInNode(lab, 1, omCommand(["stress", ...args]), {
    stdout: "piped",
    stderr: "piped",
    cwd,
  }).output();
  return {
    code: output.code,
    out: decoder.decode(output.stdout),
    err: decoder.decode(output.stderr),
  };
}

interface Json {
  passed: boolean;
  jobs: number;
  right: number;
  wrongResults: number;
  lost: number;
  migrations: number;
  stressMigrations: number;
  failedMigrations: number;
  reasons: string[];
  report: string;
  settings: { jobs: number };
  criu: string;
  home: number;
  nodes: { id: number; up: boolean; cpus: number; address: string }[];
  workloads: {
    test: string;
    status: string;
    expected: string;
    actual: string;
    nodes: number[];
    pid: number;
  }[];
  moves: {
    by: string;
    outcome: string;
    from: number;
    to: number;
    step?: string;
    frozenMs?: number;
    totalMs?: number;
    error?: string;
  }[];
}

Deno.test({
  name: "stress: a short run on three nodes passes, every workload right, moves counted",
  ignore,
  fn: () =>
    withLab("str", planLab(3), async (lab) => {
      await startAll(lab, [], { OM_CRIU: criu! });
      const dir = lab.record.dir;
      const run = await stress(
        lab,
        dir,
        "--duration",
        "16",
        "--interval",
        "2",
        "--memory",
        "16",
        "--json",
      );
      const where = `${run.err}\n${run.out}`;
      assert.equal(run.code, 0, where);
      const json: Json = JSON.parse(run.out);
      assert.equal(json.passed, true, where);
      assert.deepEqual(json.reasons, []);
      // Every workload ran (one job each at least) and computed right.
      assert.deepEqual(
        [...new Set(json.workloads.map((w) => w.test))].sort(),
        [...TEST_NAMES].sort(),
      );
      assert.ok(
        json.workloads.every((w) => w.status === "passed" && w.expected === w.actual),
        where,
      );
      assert.equal(json.jobs, json.workloads.length);
      // In a lab the jobs have this machine's CPUs, not the nodes' together.
      assert.equal(
        json.settings.jobs,
        Math.max(2, Math.min(navigator.hardwareConcurrency, 3 * json.nodes[0].cpus)),
      );
      assert.equal(json.right, json.jobs);
      assert.equal(json.wrongResults, 0);
      assert.equal(json.lost, 0);
      assert.equal(json.failedMigrations, 0);
      // om stress moved jobs (with the figures of each move), to nodes other than home too.
      const done = json.moves.filter((m) => m.by === "om stress" && m.outcome === "done");
      assert.ok(done.length >= 1, where);
      assert.equal(json.stressMigrations, done.length);
      assert.ok(json.migrations >= done.length);
      assert.ok(
        done.every((m) => m.from !== m.to && m.frozenMs! >= 0 && m.totalMs! >= m.frozenMs!),
      );
      assert.ok(done.some((m) => m.to !== 1), "a job went to a node other than home");
      // Each job's nodes, in order: home first, and no node twice in a row.
      for (const w of json.workloads) {
        assert.equal(w.nodes[0], 1);
        assert.ok(w.nodes.every((node, i) => i === 0 || node !== w.nodes[i - 1]), `${w.nodes}`);
      }
      assert.equal(json.home, 1);
      assert.deepEqual(json.nodes.map((n) => [n.id, n.up, n.address]), [
        [1, true, "10.77.0.1"],
        [2, true, "10.77.0.2"],
        [3, true, "10.77.0.3"],
      ]);
      assert.ok(json.nodes.every((n) => n.cpus >= 1));
      assert.match(json.criu, /^4\.\d+(\.\d+)? \(/);
      // Nothing left behind: no job of om stress runs on at home.
      assert.deepEqual(await readJobRecords(`${nodeRoot(lab, 1)}/jobs`), []);

      // The text report, under its default name in the current directory.
      assert.match(json.report, /^om-stress-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.txt$/);
      const report = await Deno.readTextFile(`${dir}/${json.report}`);
      assert.match(report, /^om stress report\n/);
      assert.match(report, /\nom {8}\d+\.\d+\.\d+\n/);
      assert.match(report, /\nKernel {4}\S+\n/);
      assert.match(report, /\nCRIU {6}4\.\d/);
      for (const id of [1, 2, 3]) {
        assert.match(report, new RegExp(`\\n +${id} +10\\.77\\.0\\.${id} +\\d+`));
      }
      for (const w of json.workloads) {
        assert.ok(report.includes(`. ${w.test}, job ${w.pid}: passed\n`), w.test);
        assert.ok(report.includes(`     expected  ${w.expected}\n`), w.test);
      }
      assert.match(report, / om stress +\d+ ms +\d+ ms +done\n/);
      assert.match(report, /\nSummary\n {2}PASSED: \d+ jobs \(\d+ right, 0 wrong, 0 lost\)/);
    }),
});

Deno.test({
  name: "stress: moves that fail at restore fail the run, each reported with its step; no job lost",
  ignore,
  fn: () =>
    withLab("strf", planLab(3), async (lab) => {
      // Every node's CRIU refuses to restore: each move fails at restore, the job goes on.
      const dir = lab.record.dir;
      const failing = `${dir}/criu`;
      await Deno.writeTextFile(
        failing,
        `#!/bin/sh\nif [ "$1" = restore ]; then echo "this criu refuses to restore" >&2; exit 1; fi\n` +
          `exec ${criu} "$@"\n`,
        { mode: 0o755 },
      );
      // Only om stress moves jobs: the balancer's tries would fail alike, unseen.
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: failing });
      const report = `${dir}/failed.txt`;
      const run = await stress(
        lab,
        dir,
        ...["--duration", "12", "--interval", "1.5", "--tests", "awk,eatmem,memory"],
        ...["--memory", "16", "--report", report],
      );
      const where = `${run.err}\n${run.out}`;
      assert.equal(run.code, 1, where);
      // It says why.
      assert.match(run.out, /FAILED: \d+ moves? that om stress asked for failed \(restore\)/);
      assert.match(run.out, /\(\d+ right, 0 wrong, 0 lost\)/);
      assert.match(run.out, /move \d+: job \d+ \(\w+\) node 1 -> node [23]: failed at restore: /);
      const text = await Deno.readTextFile(report);
      // Every move om stress asked for failed at restore (or found its job ended); none was done.
      const moves = text.slice(text.indexOf("\nMoves\n"), text.indexOf("\nSummary\n"))
        .split("\n").filter((line) => / om stress /.test(line));
      const failed = moves.filter((line) => /failed at restore: .*restore/.test(line));
      assert.ok(failed.length >= 2, text);
      assert.deepEqual(
        moves.filter((line) => !failed.includes(line) && !/job ended$/.test(line)),
        [],
      );
      assert.match(text, /\n {8}CRIU log: \/\S+\/restore\.log\n/);
      // Every job still has its right result, at home where it went on.
      const jobs = [...text.matchAll(/\n {2}\d+\. (\w+), job \d+: (\w+)\n/g)];
      assert.deepEqual(jobs.map((m) => m[2]).filter((s) => s !== "passed"), []);
      assert.ok(jobs.length >= 3, text);
      assert.ok(!/ -> /.test(text.slice(text.indexOf("\nJobs\n"), text.indexOf("\nMoves\n"))));
      assert.match(
        text,
        /\nSummary\n {2}FAILED: .*moves? that om stress asked for failed \(restore\)/,
      );
      assert.deepEqual(await readJobRecords(`${nodeRoot(lab, 1)}/jobs`), []);
    }),
});
