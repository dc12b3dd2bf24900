/**
 * The showmap listing: one view object, rendered as the HOWTO's table or as JSON, so the two
 * forms never disagree.
 */
import type { ClusterMap, MapEntry } from "../state/hpcmap.ts";
import { formatNodeId } from "../base/ipv4.ts";
import type { Backend } from "../state/tree.ts";

/** What showmap shows: this node, where the map lives, and the entries, own node first. */
export interface ShowmapView {
  readonly self: number;
  readonly backend: Backend;
  readonly gateways: number;
  readonly rows: readonly MapEntry[];
}

/** The `--json` form of the view (PROTOCOL.md documents it as a stable output). */
export interface ShowmapJson {
  readonly self: number;
  readonly selfHex: string;
  readonly backend: Backend;
  readonly gateways: number;
  readonly entries: readonly {
    readonly base: number;
    readonly baseHex: string;
    readonly address: string;
    readonly count: number;
    readonly alias?: true;
  }[];
}

/**
 * Builds the view: the entry whose range holds `self` first, then the others in the map's order,
 * unsorted as the original showmap printed them (a discovered map is in node id order, the same on
 * every node: lib/discovery/daemon.ts byNodeId; a map file's, in the file's order).
 */
export function showmapView(
  self: number,
  map: ClusterMap,
  options: { backend?: Backend } = {},
): ShowmapView {
  const own = map.entries.findIndex((e) =>
    e.count > 0 && e.base <= self && self < e.base + e.count
  );
  const rows = own < 0
    ? [...map.entries]
    : [map.entries[own], ...map.entries.filter((_, i) => i !== own)];
  return { self, backend: options.backend ?? "userland", gateways: map.gateways, rows };
}

/** The HOWTO's table: columns 12, 16 and 5 wide with one space between; ALIAS rows say so. */
export function renderShowmap(view: ShowmapView): string {
  const lines = [
    `My Node-Id: ${formatNodeId(view.self)}`,
    "",
    "Base Node-Id Address          Count",
    "------------ ---------------- -----",
    ...view.rows.map((e) =>
      `${formatNodeId(e.base).padEnd(12)} ${e.address.padEnd(16)} ${
        e.count === 0 ? "ALIAS" : e.count
      }`
    ),
  ];
  return lines.join("\n") + "\n";
}

/** The JSON form: the same rows as the table, ids also in showmap's hex spelling. */
export function showmapJson(view: ShowmapView): ShowmapJson {
  return {
    self: view.self,
    selfHex: formatNodeId(view.self),
    backend: view.backend,
    gateways: view.gateways,
    entries: view.rows.map((e) => ({
      base: e.base,
      baseHex: formatNodeId(e.base),
      address: e.address,
      count: e.count,
      ...(e.count === 0 ? { alias: true as const } : {}),
    })),
  };
}
