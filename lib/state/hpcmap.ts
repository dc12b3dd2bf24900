/**
 * The binary cluster map, `admin/config`, and the node-id file, `admin/mospe`, as om writes them
 * in its state tree, in /proc/hpc on an openMosix kernel and in the ALPHA files. The originals'
 * layout is lost, so these are om's own; PROTOCOL.md §3.2-3.3 is the reference.
 *
 * admin/config:
 * | offset | size | field                                            |
 * |-------:|-----:|--------------------------------------------------|
 * |      0 |    4 | magic 0x4f4d4346 ("OMCF")                        |
 * |      4 |    1 | version, 1                                       |
 * |      5 |    1 | gateways (setpe -g), 0..2                        |
 * |      6 |    2 | N, the number of entries                         |
 * |  8+8i |    2 | entry i: base node id, 1..65535                  |
 * | 10+8i |    2 | entry i: count, 0 = ALIAS of node `base`         |
 * | 12+8i |    4 | entry i: IPv4 address of node `base`             |
 *
 * admin/mospe: 4 bytes, this node's id as a big-endian u32 (0 = not configured).
 */
import { Reader, Writer } from "../base/cursor.ts";
import { formatIPv4, parseIPv4 } from "../base/ipv4.ts";

export const CONFIG_MAGIC = 0x4f4d4346;
export const CONFIG_VERSION = 1;
const HEADER_SIZE = 8;
const ENTRY_SIZE = 8;

/** One row of the map: `count` nodes from `base` at `address` counting up, or an alias (0). */
export interface MapEntry {
  readonly base: number;
  readonly address: string;
  readonly count: number;
}

/** A whole map as the kernel takes it. */
export interface ClusterMap {
  readonly gateways: number;
  readonly entries: readonly MapEntry[];
}

/** Encodes `admin/config`. */
export function encodeConfig(map: ClusterMap): Uint8Array {
  const writer = new Writer(HEADER_SIZE + ENTRY_SIZE * map.entries.length)
    .u32(CONFIG_MAGIC)
    .u8(CONFIG_VERSION)
    .u8(map.gateways)
    .u16(map.entries.length);
  for (const entry of map.entries) {
    writer.u16(entry.base).u16(entry.count).u32(parseIPv4(entry.address));
  }
  return writer.done();
}

/** Decodes `admin/config`; throws RangeError on a wrong size, magic or version. */
export function decodeConfig(bytes: Uint8Array): ClusterMap {
  const reader = new Reader(bytes, "cluster map");
  const magic = reader.u32("magic");
  if (magic !== CONFIG_MAGIC) {
    throw new RangeError(`Cannot read cluster map: magic 0x${magic.toString(16)}`);
  }
  const version = reader.u8("version");
  if (version !== CONFIG_VERSION) {
    throw new RangeError(`Cannot read cluster map: version ${version}, expected 1`);
  }
  const gateways = reader.u8("gateways");
  const count = reader.u16("count");
  const entries: MapEntry[] = [];
  for (let i = 0; i < count; i++) {
    const base = reader.u16(`entry ${i} base`);
    const n = reader.u16(`entry ${i} count`);
    entries.push({ base, count: n, address: formatIPv4(reader.u32(`entry ${i} address`)) });
  }
  reader.end();
  return { gateways, entries };
}

/** Encodes `admin/mospe`. */
export function encodeMospe(id: number): Uint8Array {
  return new Writer(4).u32(id).done();
}

/** Decodes `admin/mospe`. */
export function decodeMospe(bytes: Uint8Array): number {
  const reader = new Reader(bytes, "node id file");
  const id = reader.u32("id");
  reader.end();
  return id;
}
