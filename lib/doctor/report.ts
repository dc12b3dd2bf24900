/**
 * What `om doctor` found: one check per thing om needs on a node, each ok, a warning (something
 * optional is missing, or could not be checked) or a failure (something om needs is missing),
 * with what was found and how to fix a miss; the report is healthy when nothing failed. The human
 * table and the JSON form are built from the same report.
 */

/** ok; warn: optional and missing, or not checkable here; fail: om needs it and it is missing. */
export type CheckStatus = "ok" | "warn" | "fail";

/** One check of the node. */
export interface Check {
  /** Short and stable (`daemon`, `criu`, `udp-port`): JSON readers key on it. */
  readonly name: string;
  readonly status: CheckStatus;
  /** What was found, one line. */
  readonly found: string;
  /** How to fix it; on every check that is not ok. */
  readonly fix?: string;
}

/** Every check, and whether nothing essential is missing (no check failed). */
export interface DoctorReport {
  readonly ok: boolean;
  readonly checks: readonly Check[];
}

/** A check that passed. */
export function passed(name: string, found: string): Check {
  return { name, status: "ok", found };
}

/** A check that did not pass: a failure when om needs it (`essential`), else a warning. */
export function missed(name: string, essential: boolean, found: string, fix: string): Check {
  return { name, status: essential ? "fail" : "warn", found, fix };
}

/** A check that could not be made here (not root, say): a warning that says what to do. */
export function unchecked(name: string, found: string, fix: string): Check {
  return { name, status: "warn", found, fix };
}

/** The report of `checks`. */
export function doctorReport(checks: readonly Check[]): DoctorReport {
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}

const LABELS: Record<CheckStatus, string> = { ok: "ok", warn: "warn", fail: "FAIL" };

/**
 * The table: one line per check (status, name, what was found), the fix indented below a miss,
 * and a last line that names the essential misses, or says there are none.
 */
export function renderReport(report: DoctorReport, heading: string): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const indent = " ".repeat(6 + width + 2);
  const lines = [heading];
  for (const check of report.checks) {
    lines.push(`${LABELS[check.status].padEnd(6)}${check.name.padEnd(width)}  ${check.found}`);
    if (check.fix) lines.push(`${indent}fix: ${check.fix}`);
  }
  const failed = report.checks.filter((c) => c.status === "fail").map((c) => c.name);
  const warned = report.checks.filter((c) => c.status === "warn").length;
  const warnings = warned === 0 ? "" : `${warned} warning${warned === 1 ? "" : "s"}`;
  lines.push(
    failed.length === 0
      ? `nothing essential is missing${warnings ? ` (${warnings})` : ""}`
      : `${failed.length} essential miss${failed.length === 1 ? "" : "es"} (${failed.join(", ")})${
        warnings ? `, ${warnings}` : ""
      }`,
  );
  return lines.join("\n") + "\n";
}
