/**
 * The discovery datagram of omdiscd(1): 53 bytes, network byte order. PROTOCOL.md §1 is the
 * reference; this table is a copy of it.
 *
 * | offset | size | field | meaning                                              |
 * |-------:|-----:|-------|------------------------------------------------------|
 * |      0 |    4 | mgcn  | magic 0x4f4d4443 ("OMDC")                            |
 * |      4 |    4 | src   | address of the sending node (its node id's address)  |
 * |      8 |    4 | msk   | netmask of src                                       |
 * |     12 |   40 | ifnN/mskN | five (alias address, netmask) pairs, 0/0 = none  |
 * |     52 |    1 | t     | 'j' join, 'a' acknowledgement/announce, 'l' leave    |
 */
import { Reader, Writer } from "../base/cursor.ts";
import { formatIPv4, parseIPv4, validHost, validMask } from "../base/ipv4.ts";
import { WireError } from "../base/wireerror.ts";

/** The magic number, om's own (the original's is lost): "OMDC" in ASCII. */
export const MAGIC = 0x4f4d4443;
/** The length of every discovery datagram. */
export const DATAGRAM_SIZE = 53;
/** How many alias pairs a datagram carries. */
export const ALIAS_SLOTS = 5;

/** Message types: the byte values are on the wire and never change. */
export const MessageType = {
  join: 0x6a, // 'j'
  ack: 0x61, // 'a'
  leave: 0x6c, // 'l'
} as const;
export type MessageKind = keyof typeof MessageType;

/** An address with its netmask, both dotted quads. */
export interface Interface {
  readonly address: string;
  readonly netmask: string;
}

/** A decoded discovery datagram. */
export interface Announcement {
  readonly kind: MessageKind;
  readonly source: Interface;
  readonly aliases: readonly Interface[];
}

const kindOfByte = new Map<number, MessageKind>(
  Object.entries(MessageType).map(([kind, byte]) => [byte, kind as MessageKind]),
);

/** Encodes an announcement into its 53 bytes. */
export function encodeAnnouncement(message: Announcement): Uint8Array {
  if (message.aliases.length > ALIAS_SLOTS) {
    throw new RangeError(
      `Cannot encode ${message.aliases.length} aliases: a datagram holds ${ALIAS_SLOTS}`,
    );
  }
  const writer = new Writer(DATAGRAM_SIZE)
    .u32(MAGIC)
    .u32(parseIPv4(message.source.address))
    .u32(parseIPv4(message.source.netmask));
  for (let slot = 0; slot < ALIAS_SLOTS; slot++) {
    const alias = message.aliases[slot];
    writer.u32(alias ? parseIPv4(alias.address) : 0).u32(alias ? parseIPv4(alias.netmask) : 0);
  }
  return writer.u8(MessageType[message.kind]).done();
}

/**
 * Decodes a datagram. Throws a WireError (with the reason to count it under) for a wrong length,
 * a wrong magic, an unknown type, or addresses no node can have. Never trusts a field unchecked.
 */
export function decodeAnnouncement(bytes: Uint8Array): Announcement {
  if (bytes.length !== DATAGRAM_SIZE) {
    throw new WireError(
      "length",
      `Cannot decode datagram: ${bytes.length} bytes, expected ${DATAGRAM_SIZE}`,
    );
  }
  const reader = new Reader(bytes, "discovery datagram");
  const magic = reader.u32("mgcn");
  if (magic !== MAGIC) {
    throw new WireError("magic", `Cannot decode datagram: magic 0x${magic.toString(16)}`);
  }
  const source = reader.u32("src");
  const netmask = reader.u32("msk");
  const pairs: [number, number][] = [];
  for (let slot = 1; slot <= ALIAS_SLOTS; slot++) {
    pairs.push([reader.u32(`ifn${slot}`), reader.u32(`msk${slot}`)]);
  }
  const typeByte = reader.u8("t");
  reader.end();
  const kind = kindOfByte.get(typeByte);
  if (!kind) {
    throw new WireError("type", `Cannot decode datagram: unknown type 0x${typeByte.toString(16)}`);
  }
  if (!validHost(source)) {
    throw new WireError("source", `Cannot decode datagram: source ${formatIPv4(source)}`);
  }
  if (!validMask(netmask)) {
    throw new WireError("netmask", `Cannot decode datagram: netmask ${formatIPv4(netmask)}`);
  }
  const aliases: Interface[] = [];
  for (const [address, mask] of pairs) {
    if (address === 0 && mask === 0) continue;
    if (!validHost(address) || !validMask(mask) || address === source) {
      throw new WireError(
        "alias",
        `Cannot decode datagram: alias ${formatIPv4(address)}/${formatIPv4(mask)}`,
      );
    }
    aliases.push({ address: formatIPv4(address), netmask: formatIPv4(mask) });
  }
  return {
    kind,
    source: { address: formatIPv4(source), netmask: formatIPv4(netmask) },
    aliases,
  };
}
