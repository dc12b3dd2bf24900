/**
 * A small protocol-buffers writer and CRIU image patcher for tests, as a source node that forges
 * a dump's images would use (lib/criu/protobuf.ts and lib/criu/images.ts read them): a message is
 * a list of fields; an image file is its 8 header bytes, its entries, and any raw bytes after the
 * entries a test leaves alone (a ghost file's contents).
 */
import { decodeMessage } from "../../lib/criu/protobuf.ts";

/** A field as a test writes it: a varint (number, bigint or bool) or bytes (a string too). */
export interface Field {
  n: number;
  wire: 0 | 1 | 2 | 5;
  value: bigint | Uint8Array;
}

/** A varint's bytes (values below 0 as their 64-bit two's complement, as protobuf writes int32). */
export function varint(value: bigint | number): Uint8Array {
  let rest = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return new Uint8Array(out);
}

/** A sint32's zigzag value. */
export const zigzag = (value: number): number => ((value << 1) ^ (value >> 31)) >>> 0;

/** Encodes `fields`, in their order. */
export function encodeFields(fields: readonly Field[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const { n, wire, value } of fields) {
    parts.push(varint((n << 3) | wire));
    if (wire === 0) parts.push(varint(value as bigint));
    else if (wire === 2) parts.push(varint((value as Uint8Array).length), value as Uint8Array);
    else parts.push(value as Uint8Array);
  }
  return concat(parts);
}

/** The fields of a message's bytes, in their order. */
export function fieldsOf(bytes: Uint8Array): Field[] {
  return decodeMessage(bytes, { what: "a test's message" }).entries().map(([n, field]) => ({
    n,
    wire: field.wire,
    value: field.value,
  }));
}

/** Sets field `n` (every occurrence replaced by one) to a varint or to bytes. */
export function setField(
  fields: Field[],
  n: number,
  value: number | bigint | boolean | string | Uint8Array,
): Field[] {
  const field: Field = typeof value === "string"
    ? { n, wire: 2, value: new TextEncoder().encode(value) }
    : value instanceof Uint8Array
    ? { n, wire: 2, value }
    : { n, wire: 0, value: BigInt(value) };
  const at = fields.findIndex((each) => each.n === n);
  const rest = fields.filter((each) => each.n !== n);
  rest.splice(at < 0 ? rest.length : at, 0, field);
  return rest;
}

/** Changes embedded message `n` (made when absent) with `edit`. */
export function editField(fields: Field[], n: number, edit: (inner: Field[]) => Field[]): Field[] {
  const old = fields.find((each) => each.n === n);
  const inner = old ? fieldsOf(old.value as Uint8Array) : [];
  return setField(fields, n, encodeFields(edit(inner)));
}

/** The varint value of field `n`, if any. */
export function fieldValue(fields: readonly Field[], n: number): bigint | undefined {
  const field = fields.find((each) => each.n === n && each.wire === 0);
  return field?.value as bigint | undefined;
}

/** The bytes of field `n`, if any. */
export function fieldBytes(fields: readonly Field[], n: number): Uint8Array | undefined {
  const field = fields.find((each) => each.n === n && each.wire === 2);
  return field?.value as Uint8Array | undefined;
}

/** An image file: header, entries (message bytes), and raw bytes after `count` entries. */
export interface ImageFile {
  header: Uint8Array;
  entries: Uint8Array[];
  tail: Uint8Array;
}

/** Reads an image's header and its entries (only the first `count` when given: then the tail). */
export function readImageFile(bytes: Uint8Array, count = Infinity): ImageFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: Uint8Array[] = [];
  let offset = 8;
  while (offset < bytes.length && entries.length < count) {
    const size = view.getUint32(offset, true);
    entries.push(bytes.slice(offset + 4, offset + 4 + size));
    offset += 4 + size;
  }
  return { header: bytes.slice(0, 8), entries, tail: bytes.slice(offset) };
}

/** Writes an image back. */
export function writeImageFile(image: ImageFile): Uint8Array {
  const parts: Uint8Array[] = [image.header];
  for (const entry of image.entries) {
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, entry.length, true);
    parts.push(size, entry);
  }
  parts.push(image.tail);
  return concat(parts);
}

/**
 * Rewrites the entries of image file `path` (the first `count` only, when given): `edit` returns
 * an entry's new fields, or undefined to leave it; `add` appends entries.
 */
export async function patchImage(
  path: string,
  edit: (fields: Field[], index: number) => Field[] | undefined,
  options: { count?: number; add?: Field[][] } = {},
): Promise<void> {
  const image = readImageFile(await Deno.readFile(path), options.count);
  image.entries = image.entries.map((entry, i) => {
    const edited = edit(fieldsOf(entry), i);
    return edited ? encodeFields(edited) : entry;
  });
  for (const fields of options.add ?? []) image.entries.push(encodeFields(fields));
  await Deno.writeFile(path, writeImageFile(image));
}

/** The fields of every entry of image file `path`. */
export async function imageFields(path: string): Promise<Field[][]> {
  return readImageFile(await Deno.readFile(path)).entries.map(fieldsOf);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
