/**
 * A message from the network that does not decode, with the reason it is dropped: the discovery
 * datagram (lib/discovery/datagram.ts), the node-information message (lib/info/message.ts) and
 * their authentication trailer (lib/discovery/auth.ts) all throw it, and the daemon counts drops
 * by reason (PROTOCOL.md §1.3, `omdiscd.stats`).
 */

/** Why a datagram was refused; the daemon counts drops by this reason. */
export type DropReason =
  | "length"
  | "magic"
  | "type"
  | "source"
  | "netmask"
  | "alias"
  | "range"
  | "auth"
  | "replay"
  | "stranger";

/** Every drop reason, for counters (PROTOCOL.md §1.3). */
export const DROP_REASONS: readonly DropReason[] = [
  "length",
  "magic",
  "type",
  "source",
  "netmask",
  "alias",
  "range",
  "auth",
  "replay",
  "stranger",
];

/** A datagram that does not parse. */
export class WireError extends SyntaxError {
  override name = "WireError";
  constructor(readonly reason: DropReason, message: string) {
    super(message);
  }
}
