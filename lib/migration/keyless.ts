/**
 * A node without a cluster key moves no jobs (PROTOCOL.md §9, "Without a key"): nothing proves who
 * is at the other end of a connection, so a request to restore images, feed a job or take its
 * output could come from anyone on the LAN or any local user. Such a node serves discovery, node
 * information and the read-only channel commands; it refuses every `mig.*` and `job.*` request over
 * TCP, from anyone, loopback included, and its own moves say why, once and plainly.
 */
import type { Handler } from "../channel/server.ts";

/** Why nothing moves: said by every refusal and every move this node would have made. */
export const NEEDS_KEY = "moving jobs between nodes needs a cluster key: make one with " +
  "om keygen FILE, copy it to every node, and set key = FILE in om.conf (or --key FILE)";

/** The handlers of a keyless node for the migration's channel commands: each refuses. */
export function keylessHandlers(commands: readonly string[]): Map<string, Handler> {
  return new Map(
    commands.map((name): [string, Handler] => [
      name,
      () => Promise.reject(new Error(`Cannot run "${name}" on this node: ${NEEDS_KEY}`)),
    ]),
  );
}
