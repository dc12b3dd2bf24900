/**
 * This node's IPv4 interfaces and the one its default route uses: what `om discover` talks on
 * when no `-i` is given. The error texts are omdiscd's own, word for word.
 */
import { maskOfPrefix } from "../base/ipv4.ts";

/** An interface with its IPv4 address. */
export interface NetInterface {
  readonly name: string;
  readonly address: string;
  readonly netmask: string;
}

/** The network cannot be set up; `lines` are the messages omdiscd logged, in order. */
export class NetworkSetupError extends Error {
  override name = "NetworkSetupError";
  constructor(readonly lines: readonly string[]) {
    super(lines.join(" "));
  }
}

const GIVE_UP = "Unable to initialize network.  Exiting.";

/** Every IPv4 interface address, in the kernel's order. */
export function listInterfaces(): NetInterface[] {
  return Deno.networkInterfaces()
    .filter((i) => i.family === "IPv4")
    .map((i) => ({
      name: i.name,
      address: i.address,
      netmask: i.netmask.includes(".") ? i.netmask : maskOfPrefix(Number(i.netmask)),
    }));
}

/** The interface named by the default route in /proc/net/route text, if any. */
export function defaultRouteInterface(routeTable: string): string | undefined {
  for (const line of routeTable.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length >= 8 && fields[1] === "00000000" && fields[7] === "00000000") {
      return fields[0];
    }
  }
  return undefined;
}

/**
 * Resolves the interfaces to use: the named ones (1 to 6), or the default route's. Throws
 * NetworkSetupError with omdiscd's messages when that is impossible.
 */
export function resolveInterfaces(
  names: readonly string[],
  available: readonly NetInterface[],
  routeTable: string,
): NetInterface[] {
  if (names.length > 6) {
    throw new NetworkSetupError([`Too many interfaces (${names.length}): at most 6.`, GIVE_UP]);
  }
  if (names.length === 0) {
    const name = defaultRouteInterface(routeTable);
    const found = name === undefined ? undefined : available.find((i) => i.name === name);
    if (!found) {
      throw new NetworkSetupError([
        "Unable to determine address of default interface.  This may happen because there " +
        "is no default route configured.  Without a default route, an interface must be: " +
        "Network is unreachable",
        GIVE_UP,
      ]);
    }
    return [found];
  }
  const result: NetInterface[] = [];
  for (const name of names) {
    const found = available.find((i) => i.name === name);
    if (!found) {
      throw new NetworkSetupError([
        `Unable to determine address of interface ${name}: No such device or no IPv4 address`,
        GIVE_UP,
      ]);
    }
    if (result.some((r) => r.name === name)) {
      throw new NetworkSetupError([`Interface ${name} is named twice.`, GIVE_UP]);
    }
    result.push(found);
  }
  return result;
}
