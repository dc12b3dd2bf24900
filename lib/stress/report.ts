/**
 * The report of a run, from its results (results.ts) and verdict (verdict.ts): a text for the
 * file om stress leaves behind (om's version, the kernel, CRIU, every node, the settings, each
 * job, each move, a summary line), and the same as one JSON object for `--json`. Pure: the
 * command writes them where they go.
 */
import { shellQuote } from "../lab/exec.ts";
import { summaryLine, type Verdict } from "./verdict.ts";
import type { JobResult, MoveResult, StressRun } from "./results.ts";

const MIB = 1048576;

/** Seconds with one decimal: "12.3 s". */
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A date in UTC: "2025-01-31 12:00:00 UTC". */
function utc(epochMs: number): string {
  return `${new Date(epochMs).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A command line as a shell would take it. */
export function commandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

/** Pads the columns of `rows` (right-aligned where `right` says), two spaces apart. */
function columns(rows: readonly string[][], right: readonly boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((row) =>
    row.map((cell, c) => {
      const last = c === row.length - 1;
      if (right[c]) return cell.padStart(widths[c]);
      return last ? cell : cell.padEnd(widths[c]);
    }).join("  ").trimEnd()
  );
}

/** How a job's moves are said: "3 moves: 2 by om stress, 1 by the balancer". */
function movesOf(job: JobResult): string {
  const total = job.stressMoves + job.balancerMoves;
  if (total === 0) return "never moved";
  const moves = total === 1 ? "1 move" : `${total} moves`;
  return `${moves}: ${job.stressMoves} by om stress, ${job.balancerMoves} by the balancer`;
}

/** The lines of one job. */
function jobLines(job: JobResult): string[] {
  const who = job.pid === undefined ? "" : `, job ${job.pid}`;
  const lines = [`  ${job.n}. ${job.test}${who}: ${job.status}`];
  const field = (name: string, value: string) => lines.push(`     ${name.padEnd(9)} ${value}`);
  field("what", job.what);
  if (job.command.length > 0) field("command", commandLine(job.command));
  if (job.status !== "skipped") {
    field("nodes", `${job.nodes.join(" -> ")} (${movesOf(job)})`);
    field("expected", job.expected);
    const exit = job.exitCode === undefined ? "" : ` (exit ${job.exitCode})`;
    field("actual", `${job.actual}${exit}`);
    const end = job.endedMs === undefined ? "" : ` to ${seconds(job.endedMs)}`;
    field("ran", `from ${seconds(job.startedMs)}${end}`);
  }
  if (job.note) {
    const [first, ...rest] = job.note.trimEnd().split("\n");
    field("note", first);
    for (const line of rest) lines.push(`               ${line}`);
  }
  return lines;
}

/** The result column of a move: "done", or "failed at restore: WHY". */
function outcomeOf(move: MoveResult): string {
  if (move.outcome !== "failed") return move.outcome;
  const at = move.step ? ` at ${move.step}` : "";
  return `failed${at}: ${move.error ?? "no reason given"}`;
}

/** The moves' table, with each failure's CRIU log under it. */
function moveLines(moves: readonly MoveResult[]): string[] {
  const ms = (value: number | undefined) => value === undefined ? "-" : `${value} ms`;
  const rows = [
    ["n", "time", "job", "test", "from", "to", "asked by", "frozen", "total", "result"],
    ...moves.map((m) => [
      String(m.n),
      seconds(m.atMs),
      String(m.job),
      m.test,
      String(m.from),
      String(m.to),
      m.by,
      ms(m.frozenMs),
      ms(m.totalMs),
      outcomeOf(m),
    ]),
  ];
  const right = [true, true, true, false, true, true, false, true, true, false];
  const table = columns(rows, right);
  const lines = [`  ${table[0]}`];
  moves.forEach((move, i) => {
    lines.push(`  ${table[i + 1]}`);
    if (move.logPath && move.outcome === "failed") lines.push(`        CRIU log: ${move.logPath}`);
  });
  return lines;
}

/** The text report. */
export function renderReport(run: StressRun, verdict: Verdict): string {
  const s = run.settings;
  const lines = [
    "om stress report",
    "",
    `Started   ${utc(run.startedAt)} (ran ${seconds(run.elapsedMs)}${
      run.interrupted ? ", interrupted" : ""
    })`,
    `om        ${run.software.om}`,
    `Kernel    ${run.software.kernel}`,
    `CRIU      ${run.software.criu}`,
    `Home      node ${run.home} (every job started here)`,
    "",
    "Nodes",
    ...columns(
      [
        ["node", "address", "cpus", "speed", "memory", "total", "status"],
        ...run.nodes.map((n) => [
          String(n.id),
          n.address ?? "-",
          String(n.cpus),
          String(n.speed),
          `${Math.round(n.mem / MIB)} MiB`,
          `${Math.round(n.tmem / MIB)} MiB`,
          n.up ? "up" : "down",
        ]),
      ],
      [true, false, true, true, true, true, false],
    ).map((line) => `  ${line}`),
    "",
    "Settings",
    `  duration ${seconds(s.durationMs)}, ${
      s.intervalMs > 0 ? `a move every ${seconds(s.intervalMs)}` : "no moves by om stress"
    }, ${s.jobs} jobs at once, each sized for ${s.jobSeconds} s of CPU`,
    `  tests ${s.tests.join(", ")}; memory workload ${s.memoryMiB} MiB`,
    `  report ${s.reportPath}`,
    "",
    "Jobs",
    ...run.jobs.flatMap(jobLines),
    "",
    "Moves",
    ...(run.moves.length === 0 ? ["  none"] : moveLines(run.moves)),
    "",
    "Summary",
    `  ${summaryLine(verdict)}`,
  ];
  return lines.join("\n") + "\n";
}

/** The JSON form of a run: the verdict's counts first, then everything the text says. */
export function reportJson(run: StressRun, verdict: Verdict): Record<string, unknown> {
  return {
    passed: verdict.passed,
    jobs: verdict.jobs,
    right: verdict.right,
    wrongResults: verdict.wrongResults,
    lost: verdict.lost,
    timedOut: verdict.timedOut,
    stopped: verdict.stopped,
    skipped: verdict.skipped,
    migrations: verdict.migrations,
    stressMigrations: verdict.stressMigrations,
    balancerMigrations: verdict.balancerMigrations,
    failedMigrations: verdict.failedMigrations,
    notNeeded: verdict.notNeeded,
    reasons: verdict.reasons,
    summary: summaryLine(verdict),
    report: run.settings.reportPath,
    startedAt: new Date(run.startedAt).toISOString(),
    elapsedMs: run.elapsedMs,
    interrupted: run.interrupted,
    om: run.software.om,
    kernel: run.software.kernel,
    criu: run.software.criu,
    home: run.home,
    nodes: run.nodes,
    settings: run.settings,
    workloads: run.jobs,
    moves: run.moves,
  };
}
