/**
 * The plan of a lab, before anything is made: the standard topology of `om lab up N --nets K`
 * (which node on which network, at which address), the checks any topology must pass, the lab's
 * name rule and the memory sizes `--memory` takes. Pure functions: nothing here touches the
 * machine, so `om lab up` can refuse a bad request before it makes anything.
 */
import { isIPv4 } from "../base/ipv4.ts";

/** Nodes of one lab: 1..250, so that `10.77.K.I` never reaches the broadcast address. */
export const MAX_NODES = 250;
/** Networks of one lab (bridges br0..br15; node 1 has an interface on each). */
export const MAX_NETS = 16;

/**
 * The TCP port of every lab node's status page (`om lab up` sets `http = <eth0 address>:PORT` in
 * each node's om.conf): om's ports are 20301 (UDP) and 20302, and 20380 is the page's in a lab.
 */
export const LAB_HTTP_PORT = 20380;

/** One interface of a node to be: on network `net`, with this address. */
export interface NicSpec {
  readonly net: number;
  readonly address: string;
  /** Prefix length; default 24. */
  readonly prefix?: number;
}

/** One node to be: its number (1..250), its interfaces (eth0 first) and its discover flags. */
export interface NodeSpec {
  readonly index: number;
  readonly nics: readonly NicSpec[];
  /** Flags its `om discover -n` always gets, before any others (the gateway's `-i`). */
  readonly discoverArgs?: readonly string[];
}

/** The address of node `index` on network `net`: 10.77.net.index. */
export function labAddress(net: number, index: number): string {
  return `10.77.${net}.${index}`;
}

/**
 * The standard topology of `om lab up N --nets K`: node I on network (I-1) mod K with address
 * 10.77.((I-1) mod K).I, except node 1, the gateway, which has one interface per network (ethK on net K)
 * and is told to use them all (`-i eth0,eth1,...`) so it relays between them.
 */
export function planLab(nodes: number, options: { nets?: number } = {}): NodeSpec[] {
  const nets = options.nets ?? 1;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
    throw new RangeError(`Cannot plan a lab of ${nodes} nodes: from 1 to ${MAX_NODES}`);
  }
  if (!Number.isInteger(nets) || nets < 1 || nets > Math.min(nodes, MAX_NETS)) {
    throw new RangeError(
      `Cannot plan ${nets} networks for ${nodes} nodes: from 1 to ${Math.min(nodes, MAX_NETS)}`,
    );
  }
  const plan: NodeSpec[] = [];
  for (let index = 1; index <= nodes; index++) {
    if (index === 1 && nets > 1) {
      const nics = Array.from({ length: nets }, (_, net) => ({ net, address: labAddress(net, 1) }));
      plan.push({ index, nics, discoverArgs: ["-i", nics.map((_, i) => `eth${i}`).join(",")] });
    } else {
      const net = (index - 1) % nets;
      plan.push({ index, nics: [{ net, address: labAddress(net, index) }] });
    }
  }
  return plan;
}

/** Throws TypeError unless `name` can name a lab (it prefixes namespaces and cgroups). */
export function checkLabName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/.test(name)) {
    throw new TypeError(
      `Cannot use lab name "${name}": 1 to 32 letters, digits, "-", "_" or ".", starting ` +
        `with a letter or digit`,
    );
  }
  return name;
}

/** Checks a topology: node numbers, networks, addresses, no address twice. */
export function checkTopology(nodes: readonly NodeSpec[]): void {
  if (nodes.length === 0) throw new RangeError("Cannot make a lab without nodes");
  const indices = new Set<number>();
  const addresses = new Set<string>();
  for (const node of nodes) {
    if (!Number.isInteger(node.index) || node.index < 1 || node.index > MAX_NODES) {
      throw new RangeError(`Cannot make node ${node.index}: numbers go from 1 to ${MAX_NODES}`);
    }
    if (indices.has(node.index)) throw new RangeError(`Cannot make node ${node.index} twice`);
    indices.add(node.index);
    if (node.nics.length < 1 || node.nics.length > MAX_NETS) {
      throw new RangeError(`Cannot make node ${node.index}: 1 to ${MAX_NETS} interfaces`);
    }
    const nets = new Set<number>();
    for (const nic of node.nics) {
      if (!Number.isInteger(nic.net) || nic.net < 0 || nic.net >= MAX_NETS) {
        throw new RangeError(
          `Cannot put node ${node.index} on network ${nic.net}: from 0 to ${MAX_NETS - 1}`,
        );
      }
      if (nets.has(nic.net)) {
        throw new RangeError(`Cannot put node ${node.index} on network ${nic.net} twice`);
      }
      nets.add(nic.net);
      if (!isIPv4(nic.address)) {
        throw new SyntaxError(`Cannot use address "${nic.address}": not a dotted quad`);
      }
      const prefix = nic.prefix ?? 24;
      if (!Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
        throw new RangeError(`Cannot use prefix /${prefix} for ${nic.address}: from 8 to 30`);
      }
      if (addresses.has(nic.address)) {
        throw new RangeError(`Cannot give address ${nic.address} twice`);
      }
      addresses.add(nic.address);
    }
  }
}

/** Parses a memory size: bytes, or a number with K, M, G or T (powers of 1024), e.g. 512M. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) {
    throw new SyntaxError(`Cannot parse size "${text}": expected a number and K, M, G or T`);
  }
  const power = " KMGT".indexOf(match[2].toUpperCase() || " ");
  const bytes = Math.round(Number(match[1]) * 1024 ** power);
  if (bytes < 4096) throw new RangeError(`Cannot use size "${text}": less than 4 KiB`);
  return bytes;
}
