/**
 * The screen of `om mon` (mosmon): every node's load, speed, memory or utilisation as a bar, for a
 * terminal of a given size. Pure: node information, a mode and a size in, lines of plain text out
 * (no escape sequences; the command positions them). One bar per node, standing upright over
 * its node id with a scale on the left, as mosmon drew them; when the nodes do not fit across the
 * terminal the bars lie down, one node per line, with the value written beside each.
 */
import type { NodeInfo } from "../state/nodestate.ts";

/** What the bars measure; the keys l, s, m, r and u choose it. */
export type MonMode = "load" | "speed" | "memory" | "rawmemory" | "util";

/** The keys of the live view and the modes they choose. */
export const MODE_KEYS: Readonly<Record<string, MonMode>> = {
  l: "load",
  s: "speed",
  m: "memory",
  r: "rawmemory",
  u: "util",
};

/** The key line at the bottom of the live view. */
export const KEY_HELP = "l load  s speed  m memory  r raw memory  u util  t total  d dead  q quit";

/** Says so when there is nothing to draw. */
export const NO_NODES = "no node information yet: is om discover running?";

/** What to draw and how big. */
export interface MonOptions {
  readonly mode: MonMode;
  /** The line under the title: how many nodes, up and down. */
  readonly showTotal: boolean;
  /** Down nodes get a column too (marked `x`). */
  readonly showDead: boolean;
  readonly columns: number;
  readonly rows: number;
  /** The live view's key line, on the last row; then exactly `rows` lines are returned. */
  readonly keys: boolean;
  /** Shown instead of the bars (the node information could not be read). */
  readonly message?: string;
}

/** One mode: its title, the solid part of a bar, the `+` part above it, and the scale. */
interface Measure {
  readonly title: string;
  /** The solid part (`#`). */
  solid(node: NodeInfo): number;
  /** The whole bar, solid and `+` (memory: total; others: the solid part). */
  whole(node: NodeInfo): number;
  /** The top of the scale. */
  readonly floor: number;
  /** A fixed top of the scale (utilisation: 100 %). */
  readonly fixed?: number;
  label(value: number): string;
  /** The value written beside a lying bar. */
  describe(node: NodeInfo): string;
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

/** Bytes in binary units, short enough for a scale: `3.9G`, `512M`, `64K`, `0`. */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)}G`;
  if (bytes >= MIB) return `${Math.round(bytes / MIB)}M`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)}K`;
  return String(Math.round(bytes));
}

const loadLabel = (load: number) => (load / 100).toFixed(2);

function memoryMeasure(title: string, free: (n: NodeInfo) => number): Measure {
  const used = (n: NodeInfo) => Math.max(0, n.tmem - free(n));
  return {
    title,
    solid: used,
    whole: (n) => n.tmem,
    floor: 1,
    label: formatBytes,
    describe: (n) => `${formatBytes(used(n))}/${formatBytes(n.tmem)}`,
  };
}

const MEASURES: Readonly<Record<MonMode, Measure>> = {
  load: {
    title: "load (1.00 = one yardstick CPU fully busy)",
    solid: (n) => n.load,
    whole: (n) => n.load,
    floor: 100,
    label: loadLabel,
    describe: (n) => loadLabel(n.load),
  },
  speed: {
    title: "speed (10000 = one 1 GHz yardstick CPU)",
    solid: (n) => n.speed,
    whole: (n) => n.speed,
    floor: 1,
    label: (v) => String(Math.round(v)),
    describe: (n) => String(n.speed),
  },
  memory: memoryMeasure("memory (used #, free +)", (n) => n.mem),
  rawmemory: memoryMeasure("raw memory (used #, free +)", (n) => n.rmem),
  util: {
    title: "utilisation (% of all the node's CPUs)",
    solid: (n) => n.util,
    whole: (n) => n.util,
    floor: 100,
    fixed: 100,
    label: (v) => `${Math.round(v)}%`,
    describe: (n) => `${Math.round(n.util)}%`,
  },
};

/** A bar's length in cells: `value` of `max` over `cells`, rounded, within 0..cells. */
function cellsFor(value: number, max: number, cells: number): number {
  return Math.max(0, Math.min(cells, Math.round(value / max * cells)));
}

/**
 * Upright bars: a scale on the left (top, middle and 0), a column per node, the ids below.
 * Undefined when the columns do not fit across.
 */
function upright(
  nodes: readonly NodeInfo[],
  measure: Measure,
  max: number,
  width: number,
  height: number,
): string[] | undefined {
  if (height < 2) return undefined;
  const cell = Math.max(3, ...nodes.map((n) => String(n.id).length));
  const middle = height - Math.round(height / 2);
  const labels = new Map([[0, measure.label(max)], [
    middle,
    measure.label(max * (height - middle) / height),
  ]]);
  const scale = Math.max(1, ...[...labels.values()].map((l) => l.length));
  if (scale + 2 + nodes.length * (cell + 1) > width) return undefined;
  const lines: string[] = [];
  for (let row = 0; row < height; row++) {
    const level = height - row; // cells from the bottom: 1 is the lowest row
    let line = `${(labels.get(row) ?? "").padStart(scale)} |`;
    for (const node of nodes) {
      let mark = " ";
      if (node.status === "down") mark = level === 1 ? "x" : " ";
      else if (level <= cellsFor(measure.solid(node), max, height)) mark = "#";
      else if (level <= cellsFor(measure.whole(node), max, height)) mark = "+";
      line += " " + mark.repeat(cell);
    }
    lines.push(line);
  }
  lines.push(`${"0".padStart(scale)} +${"-".repeat(nodes.length * (cell + 1))}`);
  lines.push(
    `${" ".repeat(scale + 2)}${nodes.map((n) => " " + String(n.id).padStart(cell)).join("")}`,
  );
  return lines;
}

/** Lying bars, one node per line: `id |###+++   | value`. Undefined when too narrow. */
function lying(
  nodes: readonly NodeInfo[],
  measure: Measure,
  max: number,
  width: number,
  height: number,
): string[] | undefined {
  const idWidth = Math.max(...nodes.map((n) => String(n.id).length));
  const describe = (n: NodeInfo) => n.status === "down" ? "down" : measure.describe(n);
  const valueWidth = Math.max(...nodes.map((n) => describe(n).length));
  const bar = width - idWidth - valueWidth - 4;
  if (bar < 5 || height < 1) return undefined;
  const shown = nodes.length <= height ? nodes : nodes.slice(0, height - 1);
  const lines = shown.map((n) => {
    const solid = n.status === "down" ? 0 : cellsFor(measure.solid(n), max, bar);
    const whole = n.status === "down" ? 0 : Math.max(solid, cellsFor(measure.whole(n), max, bar));
    const cells = "#".repeat(solid) + "+".repeat(whole - solid) + " ".repeat(bar - whole);
    return `${String(n.id).padStart(idWidth)} |${cells}| ${describe(n)}`;
  });
  if (shown.length < nodes.length) {
    lines.push(`... and ${nodes.length - shown.length} more nodes (the terminal is too small)`);
  }
  return lines;
}

/**
 * The screen: a title line, the count line (or a blank one), then the bars or a message, and
 * with `keys` the key line on the last row. Lines are cut to `columns` and carry no trailing
 * spaces.
 */
export function monScreen(nodes: readonly NodeInfo[], options: MonOptions): string[] {
  const measure = MEASURES[options.mode];
  const up = nodes.filter((n) => n.status === "up").length;
  const down = nodes.length - up;
  const lines = [`om mon: ${measure.title}`];
  lines.push(
    options.showTotal && nodes.length > 0
      ? `${nodes.length} node${nodes.length === 1 ? "" : "s"}: ${up} up, ${down} down${
        down > 0 && !options.showDead ? " (d shows them)" : ""
      }`
      : "",
  );
  const shown = options.showDead ? nodes : nodes.filter((n) => n.status === "up");
  const room = options.rows - lines.length - (options.keys ? 1 : 0);
  let body: string[] | undefined;
  if (options.message !== undefined) body = [options.message];
  else if (nodes.length === 0) body = [NO_NODES];
  else if (shown.length === 0) body = [`no node is up (d shows the ${down} down)`];
  else {
    const max = measure.fixed ??
      Math.max(measure.floor, ...shown.map((n) => n.status === "up" ? measure.whole(n) : 0));
    body = upright(shown, measure, max, options.columns, room - 2) ??
      lying(shown, measure, max, options.columns, room) ??
      ["the terminal is too small"];
  }
  lines.push(...body.slice(0, Math.max(0, room)));
  if (options.keys) {
    while (lines.length < options.rows - 1) lines.push("");
    lines.push(KEY_HELP);
  }
  return lines.slice(0, Math.max(1, options.rows)).map((l) =>
    l.slice(0, options.columns).trimEnd()
  );
}
