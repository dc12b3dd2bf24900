/**
 * The node-information message: what a node measures of itself, sent to the group at every
 * information interval (the openMosix info daemon's job), beside the 53-byte discovery datagram
 * (which stays as it is). 48 bytes, network byte order; PROTOCOL.md §1.2 is the reference.
 *
 * | offset | size | field  | meaning                                                    |
 * |-------:|-----:|--------|------------------------------------------------------------|
 * |      0 |    4 | magic  | 0x4f4d4e49 ("OMNI")                                        |
 * |      4 |    1 | version| 1                                                          |
 * |      5 |    1 | flags  | bit 0 block (takes no guests), bits 1-7 zero               |
 * |      6 |    2 | cpus   | CPUs the node may use, 1..65535                            |
 * |      8 |    4 | src    | the node's address (its id's address, as in the datagram)  |
 * |     12 |    4 | load   | openMosix load: 100 = one busy CPU of the reference speed  |
 * |     16 |    4 | speed  | 10000 = the 1 GHz reference                                |
 * |     20 |    2 | util   | CPU utilisation, percent 0..100                            |
 * |     22 |    2 | zero   | reserved, 0                                                |
 * |     24 |    8 | mem    | memory available as om counts it, bytes                    |
 * |     32 |    8 | rmem   | raw free memory, bytes                                     |
 * |     40 |    8 | tmem   | total memory, bytes                                        |
 */
import { Reader, Writer } from "../base/cursor.ts";
import { formatIPv4, parseIPv4, validHost } from "../base/ipv4.ts";
import { WireError } from "../base/wireerror.ts";

export const INFO_MAGIC = 0x4f4d4e49;
export const INFO_VERSION = 1;
export const INFO_SIZE = 48;

/** Flag bits of byte 5. */
export const InfoFlag = { block: 0x01 } as const;

/** A decoded node-information message. */
export interface InfoMessage {
  readonly source: string;
  readonly block: boolean;
  readonly cpus: number;
  readonly load: number;
  readonly speed: number;
  readonly util: number;
  readonly mem: number;
  readonly rmem: number;
  readonly tmem: number;
}

const U32_MAX = 0xffffffff;
const clampU32 = (n: number) => Math.max(0, Math.min(U32_MAX, Math.round(n)));

function u64(writer: Writer, value: number): Writer {
  const v = Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.round(value)));
  return writer.u32(Math.floor(v / 2 ** 32)).u32(v % 2 ** 32);
}

function readU64(reader: Reader, field: string): number {
  const high = reader.u32(`${field} (high)`);
  const low = reader.u32(`${field} (low)`);
  const value = high * 2 ** 32 + low;
  if (value > Number.MAX_SAFE_INTEGER) {
    throw new WireError("range", `Cannot decode node information: ${field} too large`);
  }
  return value;
}

/** Encodes a node-information message. */
export function encodeInfo(message: InfoMessage): Uint8Array {
  const writer = new Writer(INFO_SIZE)
    .u32(INFO_MAGIC)
    .u8(INFO_VERSION)
    .u8(message.block ? InfoFlag.block : 0)
    .u16(Math.max(1, Math.min(0xffff, Math.round(message.cpus))))
    .u32(parseIPv4(message.source))
    .u32(clampU32(message.load))
    .u32(clampU32(message.speed))
    .u16(Math.max(0, Math.min(100, Math.round(message.util))))
    .u16(0);
  u64(writer, message.mem);
  u64(writer, message.rmem);
  u64(writer, message.tmem);
  return writer.done();
}

/** Decodes a node-information message; WireError (with a drop reason) for anything wrong. */
export function decodeInfo(bytes: Uint8Array): InfoMessage {
  if (bytes.length !== INFO_SIZE) {
    throw new WireError(
      "length",
      `Cannot decode node information: ${bytes.length} bytes, expected ${INFO_SIZE}`,
    );
  }
  const reader = new Reader(bytes, "node information");
  const magic = reader.u32("magic");
  if (magic !== INFO_MAGIC) {
    throw new WireError("magic", `Cannot decode node information: magic 0x${magic.toString(16)}`);
  }
  const version = reader.u8("version");
  if (version !== INFO_VERSION) {
    throw new WireError("type", `Cannot decode node information: version ${version}`);
  }
  const flags = reader.u8("flags");
  const cpus = reader.u16("cpus");
  const source = reader.u32("src");
  const load = reader.u32("load");
  const speed = reader.u32("speed");
  const util = reader.u16("util");
  const reserved = reader.u16("reserved");
  const mem = readU64(reader, "mem");
  const rmem = readU64(reader, "rmem");
  const tmem = readU64(reader, "tmem");
  reader.end();
  if ((flags & ~InfoFlag.block) !== 0 || reserved !== 0 || cpus === 0 || util > 100) {
    throw new WireError("range", "Cannot decode node information: reserved bits or bad range");
  }
  if (!validHost(source)) {
    throw new WireError("source", `Cannot decode node information: source ${formatIPv4(source)}`);
  }
  return {
    source: formatIPv4(source),
    block: (flags & InfoFlag.block) !== 0,
    cpus,
    load,
    speed,
    util,
    mem,
    rmem,
    tmem,
  };
}
