/**
 * IPv4 addresses as om handles them: dotted strings in objects and logs, 32-bit numbers on the
 * wire and in the binary map. Node ids come from the last two octets (omdiscd(1)).
 */

/** Parses a dotted quad; throws SyntaxError for anything else. */
export function parseIPv4(text: string): number {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new SyntaxError(`Cannot parse IPv4 address "${text}": not a dotted quad`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

/** True when `text` is a dotted quad. */
export function isIPv4(text: string): boolean {
  try {
    parseIPv4(text);
    return true;
  } catch {
    return false;
  }
}

/** Formats a 32-bit number as a dotted quad. */
export function formatIPv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** The openMosix node id of an address: `(octet3 << 8) | octet4`. */
export function nodeIdOf(address: string): number {
  return parseIPv4(address) & 0xffff;
}

/** Formats a node id as showmap does: `0x0adc`. */
export function formatNodeId(id: number): string {
  return `0x${id.toString(16).padStart(4, "0")}`;
}

/** The netmask of a prefix length (24 -> 255.255.255.0). */
export function maskOfPrefix(prefix: number): string {
  return formatIPv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** True when `address` lies in the network of `base`/`netmask`. */
export function sameNetwork(address: string, base: string, netmask: string): boolean {
  const mask = parseIPv4(netmask);
  return ((parseIPv4(address) & mask) >>> 0) === ((parseIPv4(base) & mask) >>> 0);
}

/** True for a contiguous netmask (ones then zeros), 0.0.0.0 excluded. */
export function validMask(mask: number): boolean {
  if (mask === 0) return false;
  const inverted = ~mask >>> 0;
  return (inverted & (inverted + 1)) === 0;
}

/** True for an address a node can have: not 0.0.0.0, not multicast/reserved, node id not 0. */
export function validHost(address: number): boolean {
  const first = address >>> 24;
  return address !== 0 && first !== 0 && first < 224 && (address & 0xffff) !== 0;
}
