/**
 * The system's host-name resolver (/etc/hosts, DNS) for `mosctl whois`: IPv4 only, each look-up
 * bounded in time, so an unreachable name server costs seconds, not minutes. node:dns is loaded
 * at the first look-up: the verbs that look nothing up start without it.
 */
import { withTimeout } from "../base/time.ts";
import type { HostResolver } from "./whois.ts";

/** How long a host-name look-up may take before whois gives up on it. */
export const LOOKUP_TIMEOUT_MS = 3000;

function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  const seconds = LOOKUP_TIMEOUT_MS / 1000;
  return withTimeout(promise, LOOKUP_TIMEOUT_MS, `Cannot ${what}: no answer in ${seconds} s`);
}

/** The system's resolver, IPv4 only, each look-up bounded by LOOKUP_TIMEOUT_MS. */
export const SYSTEM_RESOLVER: HostResolver = {
  async lookup(host) {
    const { lookup } = await import("node:dns/promises");
    const found = await bounded(lookup(host, { family: 4, all: true }), `look up "${host}"`);
    return found.map((a) => a.address);
  },
  async reverse(address) {
    const { reverse } = await import("node:dns/promises");
    return await bounded(reverse(address), `look up the name of ${address}`);
  },
};
