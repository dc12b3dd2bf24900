/**
 * The map file of setpe (`/etc/openmosix.map`): parsed into the entries of a cluster map with
 * FILE:LINE errors, expanded into the (node id, address) pairs it defines, and formatted back
 * for `setpe -r`. The syntax is the openMosix HOWTO's; PROTOCOL.md documents it with om's limits.
 *
 * Each line is `first-id host-or-address count`, fields separated by spaces or tabs; `#` starts a
 * comment anywhere; blank lines are skipped. A count of N counts up the last byte of the address
 * (`1 192.168.1.1 4` = nodes 1 to 4 at .1 to .4); `ID address ALIAS` (or count 0) gives node ID
 * another address.
 */
import type { MapEntry } from "./hpcmap.ts";
import { formatIPv4, isIPv4, parseIPv4 } from "../base/ipv4.ts";

/** The most entry lines a map file may hold (the kernel's table size). */
export const MAX_MAP_ENTRIES = 256;

/** The highest node id; the lowest is 1 (0 means "not configured"). */
export const MAX_NODE_ID = 65535;

/** Turns a host name into one IPv4 address (dotted quad); rejects when it cannot. */
export type Resolver = (host: string) => Promise<string>;

/** One node a map defines: its id and one of its addresses (aliases give a node more than one). */
export interface MapNode {
  readonly id: number;
  readonly address: string;
}

/** The default resolver: the system's resolver (/etc/hosts, DNS) through `node:dns`, IPv4 only. */
export async function resolveIPv4(host: string): Promise<string> {
  const { lookup } = await import("node:dns/promises");
  const { address } = await lookup(host, { family: 4 });
  return address;
}

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** One node-id range already read, to find overlaps. */
interface Range {
  readonly first: number;
  readonly last: number;
  readonly line: number;
}

function describeIds(first: number, last: number): string {
  return first === last ? `node id ${first}` : `node ids ${first}-${last}`;
}

async function resolveOrFail(
  host: string,
  resolve: Resolver,
  fail: (reason: string) => SyntaxError,
): Promise<number> {
  let address: string;
  try {
    address = await resolve(host);
  } catch (error) {
    const why = (error as { code?: string })?.code ??
      (error instanceof Error ? error.message : String(error));
    throw fail(`cannot resolve host name "${host}" to an IPv4 address: ${why}`);
  }
  if (!isIPv4(address)) {
    throw fail(`host name "${host}" resolved to "${address}", not an IPv4 address`);
  }
  return parseIPv4(address);
}

/**
 * Parses a map file. `path` names it in errors (`-` for standard input). Returns the entries in
 * file order with dotted-quad addresses; host names are resolved with `options.resolve` (default
 * {@link resolveIPv4}). Every mistake is a SyntaxError `FILE:LINE: reason`, found in line order,
 * except an ALIAS of a node no line defines, which is reported once the whole file is read.
 */
export async function parseMapFile(
  text: string,
  path: string,
  options: { resolve?: Resolver } = {},
): Promise<MapEntry[]> {
  const resolve = options.resolve ?? resolveIPv4;
  const entries: MapEntry[] = [];
  const ranges: Range[] = [];
  const addressLine = new Map<number, number>();
  const aliases: { id: number; line: number }[] = [];
  const lines = text.split("\n");

  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const fail = (reason: string) => new SyntaxError(`${path}:${line}: ${reason}`);
    const content = lines[i].replace(/#.*$/s, "").trim();
    if (content === "") continue;
    if (entries.length === MAX_MAP_ENTRIES) {
      throw fail(`more than ${MAX_MAP_ENTRIES} entries (a map holds at most ${MAX_MAP_ENTRIES})`);
    }
    const fields = content.split(/[ \t]+/);
    if (fields.length !== 3) {
      throw fail(
        `expected 3 fields "first-id address count", found ${fields.length} in "${content}"`,
      );
    }
    const [idText, hostText, countText] = fields;

    if (!/^\d+$/.test(idText)) throw fail(`node id "${idText}" is not a number`);
    const base = Number(idText);
    if (base < 1 || base > MAX_NODE_ID) {
      throw fail(`node id "${idText}" is out of range (1-${MAX_NODE_ID})`);
    }

    let count: number;
    if (/^alias$/i.test(countText)) count = 0;
    else if (/^\d+$/.test(countText)) count = Number(countText);
    else throw fail(`count "${countText}" is not a number or ALIAS`);
    if (count > 1 && base + count - 1 > MAX_NODE_ID) {
      throw fail(`range of ${countText} nodes from node id ${base} runs past ${MAX_NODE_ID}`);
    }

    let address: number;
    if (/^[\d.]+$/.test(hostText)) {
      if (!isIPv4(hostText)) throw fail(`address "${hostText}" is not an IPv4 address`);
      address = parseIPv4(hostText);
    } else if (!HOST_NAME.test(hostText)) {
      throw fail(`"${hostText}" is neither an IPv4 address nor a host name`);
    } else if (count > 1) {
      throw fail(`a range of ${count} nodes needs an address, not the host name "${hostText}"`);
    } else {
      address = await resolveOrFail(hostText, resolve, fail);
    }
    if (count > 1 && (address & 255) + count - 1 > 255) {
      const network = formatIPv4(address).replace(/\.\d+$/, "");
      throw fail(
        `range of ${count} nodes from ${formatIPv4(address)} runs past ${network}.255`,
      );
    }

    if (count > 0) {
      const last = base + count - 1;
      const clash = ranges.find((r) => r.first <= last && base <= r.last);
      if (clash && count === 1) {
        throw fail(`node id ${base} is already defined on line ${clash.line}`);
      }
      if (clash) {
        const theirs = describeIds(clash.first, clash.last);
        throw fail(`node ids ${base}-${last} overlap ${theirs} of line ${clash.line}`);
      }
      ranges.push({ first: base, last, line });
    } else {
      aliases.push({ id: base, line });
    }

    for (let k = 0; k < Math.max(count, 1); k++) {
      const used = addressLine.get(address + k);
      if (used !== undefined) {
        throw fail(`address ${formatIPv4(address + k)} is already used on line ${used}`);
      }
    }
    for (let k = 0; k < Math.max(count, 1); k++) addressLine.set(address + k, line);

    entries.push({ base, address: formatIPv4(address), count });
  }

  for (const alias of aliases) {
    if (!ranges.some((r) => r.first <= alias.id && alias.id <= r.last)) {
      throw new SyntaxError(
        `${path}:${alias.line}: ALIAS for node id ${alias.id}, which no line of the map defines`,
      );
    }
  }
  return entries;
}

/**
 * Every (node id, address) pair the entries define, in entry order: ranges expanded one node per
 * address, aliases as extra addresses of their node.
 */
export function listNodes(entries: readonly MapEntry[]): MapNode[] {
  const nodes: MapNode[] = [];
  for (const entry of entries) {
    const address = parseIPv4(entry.address);
    if (entry.count === 0) {
      nodes.push({ id: entry.base, address: entry.address });
      continue;
    }
    for (let k = 0; k < entry.count; k++) {
      nodes.push({ id: entry.base + k, address: formatIPv4(address + k) });
    }
  }
  return nodes;
}

/**
 * The node id of the first of `addresses` (in their order) that the map defines, or undefined:
 * how setpe finds its own node from this host's addresses.
 */
export function findNode(
  entries: readonly MapEntry[],
  addresses: readonly string[],
): number | undefined {
  const byAddress = new Map(listNodes(entries).map((n) => [n.address, n.id]));
  for (const address of addresses) {
    const id = byAddress.get(address);
    if (id !== undefined) return id;
  }
  return undefined;
}

/**
 * The map-file form of entries, as `setpe -r` prints it: one `base address count` line per entry,
 * `ALIAS` for count 0. Feeding it back to `setpe -w` installs the same entries.
 */
export function formatMap(entries: readonly MapEntry[]): string {
  return entries
    .map((e) => `${e.base} ${e.address} ${e.count === 0 ? "ALIAS" : e.count}\n`)
    .join("");
}
