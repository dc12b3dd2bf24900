/**
 * Who may use the node-to-node channel when no cluster key is in use (PROTOCOL.md §8.4): GOMD's
 * access control list reduced to the one rule om needs. A peer is let in when it is this node
 * (loopback), a member of the cluster map, or in one of the allowed networks, by default the
 * networks of the interfaces om discover talks on. With a key, the key decides instead.
 */
import { formatIPv4, isIPv4, parseIPv4 } from "../base/ipv4.ts";

/** An IPv4 network: its base address (host bits cleared) as a u32 and its prefix length. */
export interface Cidr {
  readonly base: number;
  readonly prefix: number;
}

/** 127.0.0.0/8: this node itself, always allowed. */
export const LOOPBACK: Cidr = { base: 0x7f000000, prefix: 8 };

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/len` or a bare address (a /32). Host bits may be set, as `ip addr` prints a
 * network (10.77.0.1/24 is 10.77.0.0/24). Throws SyntaxError for anything else.
 */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const length = slash < 0 ? "32" : text.slice(slash + 1);
  if (!isIPv4(address)) {
    throw new SyntaxError(`Cannot parse network "${text}": "${address}" is not an IPv4 address`);
  }
  if (!/^\d{1,2}$/.test(length) || Number(length) > 32) {
    throw new SyntaxError(`Cannot parse network "${text}": prefix length is not 0 to 32`);
  }
  const prefix = Number(length);
  return { base: (parseIPv4(address) & maskOf(prefix)) >>> 0, prefix };
}

/** Formats a network as `a.b.c.d/len`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`;
}

/** The network of an interface; throws SyntaxError for a netmask that is not contiguous. */
export function networkOf(iface: { readonly address: string; readonly netmask: string }): Cidr {
  const mask = parseIPv4(iface.netmask);
  const prefix = 32 - trailingZeros(mask);
  if (maskOf(prefix) !== mask) {
    throw new SyntaxError(`Cannot use netmask "${iface.netmask}": not contiguous`);
  }
  return { base: (parseIPv4(iface.address) & mask) >>> 0, prefix };
}

/** Trailing zero bits of a mask (32 for 0). */
function trailingZeros(mask: number): number {
  if (mask === 0) return 32;
  let zeros = 0;
  while (((mask >>> zeros) & 1) === 0) zeros++;
  return zeros;
}

/**
 * The dotted quad of a peer address as a socket reports it: IPv4 as is, IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`) unwrapped, `::1` as 127.0.0.1; undefined for any other IPv6 address.
 */
export function peerIPv4(address: string): string | undefined {
  if (isIPv4(address)) return address;
  const lower = address.toLowerCase();
  if (lower === "::1") return "127.0.0.1";
  if (lower.startsWith("::ffff:") && isIPv4(lower.slice(7))) return lower.slice(7);
  return undefined;
}

/** True when the dotted quad `address` lies in `cidr`. */
export function inCidr(address: string, cidr: Cidr): boolean {
  return ((parseIPv4(address) & maskOf(cidr.prefix)) >>> 0) === cidr.base;
}

/** Decides whether a peer address may use the channel. */
export type Acl = (address: string) => boolean;

/** What {@linkcode makeAcl} lets in besides loopback. */
export interface AclOptions {
  /** The addresses of the nodes in the cluster map, asked afresh at every check. */
  readonly members: () => ReadonlySet<string>;
  /** Networks (`a.b.c.d/len` or addresses); default: the networks of `interfaces`. */
  readonly allowed?: readonly string[];
  /** The interfaces this node talks on, whose networks are allowed when `allowed` is not given. */
  readonly interfaces?: readonly { readonly address: string; readonly netmask: string }[];
}

/**
 * Builds the no-key access rule: loopback, cluster members and the allowed networks get in,
 * nobody else, and nothing that is not IPv4. The networks are parsed now, so a bad one is a
 * SyntaxError at start-up, not a surprise at the first connection.
 */
export function makeAcl(options: AclOptions): Acl {
  const networks = [
    LOOPBACK,
    ...(options.allowed?.map(parseCidr) ?? (options.interfaces ?? []).map(networkOf)),
  ];
  return (raw) => {
    const address = peerIPv4(raw);
    if (address === undefined) return false;
    return networks.some((n) => inCidr(address, n)) || options.members().has(address);
  };
}
