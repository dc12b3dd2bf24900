/**
 * Can om discover talk? The interface it talks on (`interface` in om.conf, else the default
 * route's: lib/discovery/interfaces.ts) must have an IPv4 address, and some route must lead to
 * the multicast group: without one, every send to the group fails ("Network is unreachable").
 */
import { defaultRouteInterface } from "../discovery/interfaces.ts";
import { type Check, missed, passed, unchecked } from "./report.ts";
import type { DoctorInputs } from "./inputs.ts";
import { describeRoute, parseRoutes, routeTo } from "./procnet.ts";

/** The multicast check. */
export async function checkMulticast(inputs: DoctorInputs): Promise<Check> {
  const { settings } = inputs;
  const { group, port, configFile } = settings;
  let table: string;
  try {
    table = await Deno.readTextFile(`${settings.proc}/net/route`);
  } catch (error) {
    return unchecked(
      "multicast",
      `cannot read ${settings.proc}/net/route: ${(error as Error).message}`,
      "run om doctor on a Linux node",
    );
  }
  const names = settings.interfaces.length
    ? settings.interfaces
    : [defaultRouteInterface(table)].filter((n): n is string => n !== undefined);
  if (names.length === 0) {
    return missed(
      "multicast",
      true,
      "no interface to talk on: no default route, and no interface set",
      `set interface = eth0 in ${configFile} (or om discover -i eth0), or add a default route`,
    );
  }
  const talking = [];
  for (const name of names) {
    const nic = inputs.interfaces.find((i) => i.name === name);
    if (!nic) {
      return missed(
        "multicast",
        true,
        `interface ${name} has no IPv4 address${
          settings.interfaces.length ? "" : " (the default route's)"
        }`,
        `give ${name} an address, or set interface = IF in ${configFile} to one that has`,
      );
    }
    talking.push(`${name} (${nic.address})`);
  }
  const route = routeTo(parseRoutes(table), group);
  if (!route) {
    return missed(
      "multicast",
      true,
      `no route to ${group}: every send to the group fails (Network is unreachable)`,
      `add a default route, or a route for multicast: ip route add 224.0.0.0/4 dev ${names[0]}`,
    );
  }
  return passed(
    "multicast",
    `group ${group}, port ${port}, on ${talking.join(", ")}; route ${describeRoute(route)}`,
  );
}
