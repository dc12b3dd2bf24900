/**
 * What a node's /proc says about its network: the sockets of `net/udp`, `net/tcp` (and their
 * IPv6 twins), which processes hold them (their `fd/` links name `socket:[INODE]`), and the IPv4
 * routes of `net/route`. /proc/net is the network namespace of the process that reads it, so in
 * a lab node these are the node's own. Addresses there are hexadecimal in the host's byte order
 * (little-endian on every machine om runs on).
 */
import { formatIPv4, parseIPv4 } from "../base/ipv4.ts";

/** The state of a listening TCP socket in `net/tcp`. */
export const TCP_LISTEN = 0x0a;

/** One socket of `net/udp` or `net/tcp`. */
export interface ProcSocket {
  /** Its local address: dotted for IPv4, the 32 hex digits for IPv6. */
  readonly address: string;
  readonly port: number;
  /** `st`: for TCP, TCP_LISTEN while it listens. */
  readonly state: number;
  readonly inode: number;
}

/** A little-endian hexadecimal IPv4 address of /proc ("0100007F") as a number. */
export function procIPv4(hex: string): number {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) throw new SyntaxError(`Cannot read address "${hex}"`);
  const n = parseInt(hex, 16);
  return (((n & 0xff) << 24) | ((n >>> 8 & 0xff) << 16) | ((n >>> 16 & 0xff) << 8) | (n >>> 24)) >>>
    0;
}

/** Parses `net/udp`, `net/tcp`, `net/udp6` or `net/tcp6`; lines it cannot read are skipped. */
export function parseProcNet(text: string): ProcSocket[] {
  const sockets: ProcSocket[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const local = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/.exec(fields[1]);
    if (!local || !/^[0-9A-Fa-f]{2}$/.test(fields[3]) || !/^\d+$/.test(fields[9])) continue;
    sockets.push({
      address: local[1].length === 8 ? formatIPv4(procIPv4(local[1])) : local[1],
      port: parseInt(local[2], 16),
      state: parseInt(fields[3], 16),
      inode: Number(fields[9]),
    });
  }
  return sockets;
}

/** The sockets of `proto` (udp or tcp, IPv4 and IPv6) under `procDir`; none when unreadable. */
export async function readSockets(procDir: string, proto: "udp" | "tcp"): Promise<ProcSocket[]> {
  const texts = await Promise.all(
    [proto, `${proto}6`].map((name) => Deno.readTextFile(`${procDir}/net/${name}`).catch(() => "")),
  );
  return texts.flatMap(parseProcNet);
}

/**
 * Which processes hold the sockets `inodes`: the pids whose `fd/` has a link to
 * `socket:[INODE]`, by inode. Processes whose descriptors cannot be read (another user's, when not
 * root) are not found.
 */
export async function socketHolders(
  procDir: string,
  inodes: ReadonlySet<number>,
): Promise<Map<number, number[]>> {
  const holders = new Map<number, number[]>();
  if (inodes.size === 0) return holders;
  for await (const entry of Deno.readDir(procDir)) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    try {
      for await (const fd of Deno.readDir(`${procDir}/${pid}/fd`)) {
        const target = await Deno.readLink(`${procDir}/${pid}/fd/${fd.name}`).catch(() => "");
        const match = /^socket:\[(\d+)\]$/.exec(target);
        if (!match || !inodes.has(Number(match[1]))) continue;
        const list = holders.get(Number(match[1])) ?? [];
        if (!list.includes(pid)) list.push(pid);
        holders.set(Number(match[1]), list);
      }
    } catch {
      // Gone, or not ours to read.
    }
  }
  return holders;
}

/** One IPv4 route of `net/route`. */
export interface Route {
  readonly iface: string;
  readonly destination: number;
  readonly mask: number;
}

/** Parses `net/route`; lines it cannot read are skipped. */
export function parseRoutes(text: string): Route[] {
  const routes: Route[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    try {
      routes.push({
        iface: fields[0],
        destination: procIPv4(fields[1]),
        mask: procIPv4(fields[7]),
      });
    } catch {
      // Not a route line.
    }
  }
  return routes;
}

/** The route the kernel takes to `address`: the one with the longest matching mask. */
export function routeTo(routes: readonly Route[], address: string): Route | undefined {
  const target = parseIPv4(address);
  let best: Route | undefined;
  for (const route of routes) {
    if (((target & route.mask) >>> 0) !== route.destination) continue;
    if (!best || (route.mask >>> 0) > (best.mask >>> 0)) best = route;
  }
  return best;
}

/** A route as `ip route` shows it: "default dev eth0", "224.0.0.0/4 dev eth0". */
export function describeRoute(route: Route): string {
  if (route.mask === 0) return `default dev ${route.iface}`;
  let bits = 0;
  for (let mask = route.mask >>> 0; mask !== 0; mask = (mask << 1) >>> 0) bits++;
  return `${formatIPv4(route.destination)}/${bits} dev ${route.iface}`;
}
