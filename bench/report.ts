/**
 * What the benchmarks share to report their figures: order statistics of a sample, a plain text
 * table, goal lines, and the JSON results file in bench/results/ (git-ignored). The figures are
 * compared with a floor measured in the same run, never with fixed times, because the machine
 * is noisy: a ratio survives a slow machine, an absolute time does not.
 */

/** The value below which `p` percent of the sample lies (nearest rank); NaN when empty. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) return NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** The median (the mean of the two middle values of an even sample); NaN when empty. */
export function median(sample: readonly number[]): number {
  if (sample.length === 0) return NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds with one decimal, or "-" for a figure that was not measured. */
export function ms(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(1);
}

/** A ratio with two decimals, or "-". */
export function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "-" : value.toFixed(2);
}

/** A table with a header row; the first column left-aligned, the others right-aligned. */
export function renderTable(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** "goal: <what>: met (<detail>)" or "NOT met". */
export function goalLine(what: string, met: boolean, detail: string): string {
  return `goal: ${what}: ${met ? "met" : "NOT met"} (${detail})`;
}

/** Facts about the machine, for the results file: figures mean little without them. */
export function machine(): Record<string, unknown> {
  return {
    hostname: Deno.hostname(),
    cpus: navigator.hardwareConcurrency,
    loadavg: Deno.loadavg(),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
  };
}

/**
 * Where benchmark labs go by default: /dev/shm (tmpfs) when the machine has it. A real node's
 * state tree is /run/om, which is tmpfs on a normal system (as /proc/hpc was memory); on a disk
 * the journal of every small file replacement would be measured instead of om.
 */
export function labParent(): string | undefined {
  try {
    return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
  } catch {
    return undefined;
  }
}

/** Writes `bench/results/<name>-<timestamp>.json` and returns its path. */
export async function saveResults(name: string, results: unknown): Promise<string> {
  const dir = decodeURIComponent(new URL("./results/", import.meta.url).pathname);
  await Deno.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const path = `${dir}${name}-${stamp}.json`;
  await Deno.writeTextFile(path, JSON.stringify(results, null, 2) + "\n");
  return path;
}

/**
 * Runs a benchmark's entry point: arguments that do not parse exit 2 and a failed run exits 1,
 * each with a one-line message instead of a stack (OM_TRACE=1 prints the stack too).
 */
export async function benchMain<T>(
  name: string,
  parse: () => T,
  run: (options: T) => Promise<unknown>,
): Promise<void> {
  let options: T;
  try {
    options = parse();
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    Deno.exit(2);
  }
  try {
    await run(options);
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    if (Deno.env.get("OM_TRACE")) console.error((error as Error)?.stack);
    Deno.exit(1);
  }
}
