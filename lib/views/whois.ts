/**
 * Naming a node, for `mosctl whois` and every verb that takes a node: an id (decimal, or hex as
 * showmap prints it), an address, or a host name, resolved against the map in force. Ranges count
 * up the last byte of their address and aliases are further addresses of their node, as
 * lib/state/mapfile.ts expands them. Host names go through an injected resolver.
 */
import type { MapEntry } from "../state/hpcmap.ts";
import { formatNodeId, isIPv4 } from "../base/ipv4.ts";
import { listNodes, MAX_NODE_ID } from "../state/mapfile.ts";
import { readMap, type StatePaths } from "../state/tree.ts";
import { noMapInForce, requireSelf } from "./thisnode.ts";

/** Host-name look-ups (the system's resolver in om, a table in tests). */
export interface HostResolver {
  /** The IPv4 addresses of a host name; rejects when it has none. */
  lookup(host: string): Promise<string[]>;
  /** The host names of an address, best first; empty or a rejection when it has none. */
  reverse(address: string): Promise<string[]>;
}

/** What a whois argument names. */
export type NodeQuery =
  | { readonly kind: "id"; readonly id: number }
  | { readonly kind: "address"; readonly address: string }
  | { readonly kind: "host"; readonly host: string };

/** A node and its addresses in the map: its range's address first, then its aliases. */
export interface WhoisAnswer {
  readonly id: number;
  readonly addresses: readonly string[];
}

/** One address with the host name it resolves back to (null when none). */
export interface NamedAddress {
  readonly address: string;
  readonly name: string | null;
}

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Parses a node id: `2780` or `0x0adc`, 1 to 65535; throws SyntaxError otherwise. */
export function parseNodeId(text: string): number {
  if (!/^(\d+|0[xX][0-9a-fA-F]+)$/.test(text)) {
    throw new SyntaxError(`Cannot use "${text}" as a node id: not a number`);
  }
  const id = Number(text);
  if (id < 1 || id > MAX_NODE_ID) {
    throw new SyntaxError(`Cannot use "${text}" as a node id: not between 1 and ${MAX_NODE_ID}`);
  }
  return id;
}

/** Tells what a whois argument is: an id, a dotted quad, or a host name; SyntaxError otherwise. */
export function parseNodeQuery(text: string): NodeQuery {
  if (/^(\d+|0[xX][0-9a-fA-F]+)$/.test(text)) return { kind: "id", id: parseNodeId(text) };
  if (/^[\d.]+$/.test(text)) {
    if (!isIPv4(text)) throw new SyntaxError(`Cannot use "${text}": not an IPv4 address`);
    return { kind: "address", address: text };
  }
  if (!HOST_NAME.test(text)) {
    throw new SyntaxError(`Cannot use "${text}": neither a node id, an address nor a host name`);
  }
  return { kind: "host", host: text };
}

/** The addresses the map gives node `id`: its range's first, then its aliases; [] when none. */
export function addressesOf(entries: readonly MapEntry[], id: number): string[] {
  const ranges = entries.filter((e) => e.count > 0);
  const aliases = entries.filter((e) => e.count === 0);
  return listNodes([...ranges, ...aliases]).filter((n) => n.id === id).map((n) => n.address);
}

/** The node the map gives `address` (through a range or an alias), or undefined. */
export function nodeOfAddress(entries: readonly MapEntry[], address: string): number | undefined {
  return listNodes(entries).find((n) => n.address === address)?.id;
}

/**
 * Answers a query against the map's entries. Throws an Error naming what was not found: an id or
 * address the map does not have, a host name that does not resolve or resolves only to addresses
 * the map does not have.
 */
export async function whois(
  query: NodeQuery,
  entries: readonly MapEntry[],
  resolver: HostResolver,
): Promise<WhoisAnswer> {
  if (query.kind === "id") {
    const addresses = addressesOf(entries, query.id);
    if (addresses.length === 0) {
      throw new Error(`Cannot find node ${query.id}: it is not in the map in force`);
    }
    return { id: query.id, addresses };
  }
  if (query.kind === "address") {
    const id = nodeOfAddress(entries, query.address);
    if (id === undefined) {
      throw new Error(`Cannot find address "${query.address}": it is not in the map in force`);
    }
    return { id, addresses: addressesOf(entries, id) };
  }
  let resolved: string[];
  try {
    resolved = await resolver.lookup(query.host);
  } catch (error) {
    const why = (error as { code?: string })?.code ??
      (error instanceof Error ? error.message : String(error));
    throw new Error(`Cannot resolve host name "${query.host}": ${why}`);
  }
  for (const address of resolved) {
    const id = nodeOfAddress(entries, address);
    if (id !== undefined) return { id, addresses: addressesOf(entries, id) };
  }
  throw new Error(
    `Cannot find host "${query.host}": it resolves to ${resolved.join(", ") || "nothing"}, ` +
      `which the map in force does not have`,
  );
}

/** Looks up each address's host name; a failed look-up gives null, never an error. */
export function nameAddresses(
  addresses: readonly string[],
  resolver: HostResolver,
): Promise<NamedAddress[]> {
  return Promise.all(addresses.map(async (address) => {
    try {
      return { address, name: (await resolver.reverse(address))[0] ?? null };
    } catch {
      return { address, name: null };
    }
  }));
}

/** `whois` without an argument: `This is om node #2780 (0x0adc) at 192.168.10.220`. */
export function renderSelf(answer: WhoisAnswer): string {
  const at = answer.addresses.length ? ` at ${answer.addresses.join(", ")}` : "";
  return `This is om node #${answer.id} (${formatNodeId(answer.id)})${at}\n`;
}

/** `whois ID`: one line per address, `192.168.10.78 (name)` or just the address. */
export function renderAddresses(named: readonly NamedAddress[]): string {
  return named.map((n) => `${n.address}${n.name === null ? "" : ` (${n.name})`}\n`).join("");
}

/** `whois ADDRESS|HOST`: the node id in decimal and in hex, `2780 (0x0adc)`. */
export function renderId(answer: WhoisAnswer): string {
  return `${answer.id} (${formatNodeId(answer.id)})\n`;
}

/** The `--json` form of a whois answer. */
export interface WhoisJson {
  id: number;
  idHex: string;
  /** The node is this one. */
  self: boolean;
  addresses: NamedAddress[];
}

/** The `--json` form of every whois answer. */
export function whoisJson(
  answer: WhoisAnswer,
  named: readonly NamedAddress[],
  self: boolean,
): WhoisJson {
  return { id: answer.id, idHex: formatNodeId(answer.id), self, addresses: [...named] };
}

/**
 * `mosctl whois` against the map in force: this node without a question, else the node the
 * question (its text as given, and what it names) asks for; as text and as JSON. Addresses are
 * named (a reverse look-up each) where the text shows them, after an id, and always in JSON.
 * Throws when no map is in force or the map does not have what was asked.
 */
export async function whoisView(
  paths: StatePaths,
  asked: { readonly text: string; readonly query: NodeQuery } | undefined,
  options: { readonly resolver: HostResolver; readonly json: boolean },
): Promise<{ text: string; json: WhoisJson }> {
  const state = await readMap(paths);
  let answer: WhoisAnswer;
  if (asked === undefined) {
    const { self, map } = requireSelf(paths, state);
    answer = { id: self, addresses: addressesOf(map.entries, self) };
  } else if (state === undefined) {
    throw new Error(`Cannot find "${asked.text}": ${noMapInForce(paths)}`);
  } else {
    answer = await whois(asked.query, state.map.entries, options.resolver);
  }
  const byId = asked?.query.kind === "id";
  const named = options.json || byId ? await nameAddresses(answer.addresses, options.resolver) : [];
  const text = asked === undefined
    ? renderSelf(answer)
    : byId
    ? renderAddresses(named)
    : renderId(answer);
  return { text, json: whoisJson(answer, named, state?.self === answer.id) };
}
