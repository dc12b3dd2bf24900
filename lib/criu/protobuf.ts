/**
 * A reader of the protocol-buffers wire format, for CRIU's images (images.ts): each field is a key
 * varint (field number << 3 | wire type) and a value: 0 a varint, 1 eight bytes, 2 a length
 * varint and that many bytes (a string, bytes, or an embedded message), 5 four bytes (little
 * endian). Groups (wire types 3 and 4) are refused, as CRIU's messages have none.
 *
 * It reads images a source node sent, as a check before criu acts on them as root, so it reads
 * them as criu's protobuf-c would and fails where the two could disagree: every length is checked
 * against the bytes there are, varints are at most 10 bytes, messages hold at most
 * MAX_FIELDS fields and nest at most MAX_DEPTH deep, and a field that is not repeated may appear
 * only once (protobuf-c takes the last of a repeated scalar and merges repeated messages: a check
 * that looked at another one than criu uses would be fooled). A uint32 whose varint does not fit
 * 32 bits is refused (protobuf-c keeps the low 32 bits). Unknown fields are skipped. Every fault
 * is a SyntaxError that names what was read and the byte offset.
 */

/** The wire types the reader takes. */
export const Wire = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

/** Most fields one message may hold (a core image's register sets hold a few hundred). */
export const MAX_FIELDS = 65536;

/** Deepest nesting of messages read (CRIU's go four or five deep). */
export const MAX_DEPTH = 16;

/** One field as it is on the wire: a varint's value, or the bytes of the other wire types. */
export type ProtoField =
  | { readonly wire: 0; readonly at: number; readonly value: bigint }
  | { readonly wire: 1 | 2 | 5; readonly at: number; readonly value: Uint8Array };

/**
 * Reads a varint at `offset` of `bytes`: its value and the offset after it. Throws a SyntaxError
 * when it runs past the end or past 10 bytes, or does not fit 64 bits.
 */
export function readVarint(
  bytes: Uint8Array,
  offset: number,
  what = "a varint",
): { value: bigint; next: number } {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const at = offset + i;
    if (at >= bytes.length) {
      throw new SyntaxError(`Cannot read ${what}: a varint runs past the end at byte ${at}`);
    }
    const byte = bytes[at];
    if (i === 9 && byte > 1) {
      throw new SyntaxError(`Cannot read ${what}: the varint at byte ${offset} exceeds 64 bits`);
    }
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value, next: at + 1 };
  }
  throw new SyntaxError(`Cannot read ${what}: the varint at byte ${offset} is over 10 bytes long`);
}

/** A decoded message: its fields by number, in the order they came. */
export class ProtoMessage {
  readonly #fields: ReadonlyMap<number, readonly ProtoField[]>;

  /** `what`: the message, for errors; `depth`: how deep it is nested (0 for a top message). */
  constructor(
    fields: ReadonlyMap<number, readonly ProtoField[]>,
    readonly what: string,
    readonly depth: number,
  ) {
    this.#fields = fields;
  }

  /** Whether field `n` is present. */
  has(n: number): boolean {
    return this.#fields.has(n);
  }

  /** The field numbers present, ascending. */
  numbers(): number[] {
    return [...this.#fields.keys()].sort((a, b) => a - b);
  }

  /** Every field as it came, by number, in the order of the bytes. */
  entries(): [number, ProtoField][] {
    return [...this.#fields].flatMap(([n, fields]) =>
      fields.map((f): [number, ProtoField] => [n, f])
    )
      .sort((a, b) => a[1].at - b[1].at);
  }

  /** Every occurrence of field `n` (a repeated field), checked to be of wire type `wire`. */
  all(n: number, wire: number): readonly ProtoField[] {
    const fields = this.#fields.get(n) ?? [];
    for (const field of fields) {
      if (field.wire !== wire) {
        throw new SyntaxError(
          `Cannot read ${this.what}: field ${n} at byte ${field.at} has wire type ${field.wire}, ` +
            `not ${wire}`,
        );
      }
    }
    return fields;
  }

  /** The one occurrence of field `n`, of wire type `wire`; undefined when absent. */
  one(n: number, wire: number): ProtoField | undefined {
    const fields = this.all(n, wire);
    if (fields.length > 1) {
      throw new SyntaxError(
        `Cannot read ${this.what}: field ${n} appears ${fields.length} times (at bytes ` +
          `${fields.map((field) => field.at).join(", ")})`,
      );
    }
    return fields[0];
  }

  /** A uint64 (a varint). */
  uint64(n: number): bigint | undefined {
    const field = this.one(n, Wire.varint);
    return field?.wire === 0 ? field.value : undefined;
  }

  /** A uint32 or an enum: a varint that must fit 32 bits. */
  uint32(n: number): number | undefined {
    const value = this.uint64(n);
    if (value === undefined) return undefined;
    if (value > 0xffffffffn) {
      throw new SyntaxError(`Cannot read ${this.what}: field ${n} (${value}) exceeds 32 bits`);
    }
    return Number(value);
  }

  /** An int32: a varint holding a 32-bit value, negative ones sign-extended to 64 bits. */
  int32(n: number): number | undefined {
    const value = this.uint64(n);
    if (value === undefined) return undefined;
    const signed = BigInt.asIntN(64, value);
    if (signed < -0x80000000n || signed > 0x7fffffffn) {
      throw new SyntaxError(`Cannot read ${this.what}: field ${n} (${signed}) is not an int32`);
    }
    return Number(signed);
  }

  /** A sint32: a zigzag varint that must fit 32 bits. */
  sint32(n: number): number | undefined {
    const value = this.uint32(n);
    if (value === undefined) return undefined;
    return (value >>> 1) ^ -(value & 1);
  }

  /** A bool: any varint, true unless 0 (as protobuf-c reads it). */
  bool(n: number): boolean | undefined {
    const value = this.uint64(n);
    return value === undefined ? undefined : value !== 0n;
  }

  /** A bytes field. */
  bytes(n: number): Uint8Array | undefined {
    const field = this.one(n, Wire.bytes);
    return field?.wire === 2 ? field.value : undefined;
  }

  /** A string field: UTF-8, refused when it is not (or holds a NUL, which C would cut at). */
  string(n: number): string | undefined {
    const bytes = this.bytes(n);
    if (bytes === undefined) return undefined;
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      throw new SyntaxError(`Cannot read ${this.what}: field ${n} is not UTF-8`);
    }
    if (text.includes("\0")) {
      throw new SyntaxError(`Cannot read ${this.what}: field ${n} holds a NUL byte`);
    }
    return text;
  }

  /** An embedded message, decoded one level deeper; `what` names it in errors. */
  message(n: number, what: string): ProtoMessage | undefined {
    const bytes = this.bytes(n);
    return bytes === undefined ? undefined : decodeMessage(bytes, {
      what: `${this.what}'s ${what}`,
      depth: this.depth + 1,
    });
  }

  /** Every occurrence of a repeated embedded message, decoded. */
  messages(n: number, what: string): ProtoMessage[] {
    return this.all(n, Wire.bytes).map((field, i) =>
      decodeMessage(field.value as Uint8Array, {
        what: `${this.what}'s ${what} ${i}`,
        depth: this.depth + 1,
      })
    );
  }
}

/**
 * Decodes one message's fields (not its embedded messages: those are decoded when asked for,
 * {@linkcode ProtoMessage.message}). Throws a SyntaxError naming `what` and the byte offset when
 * the bytes are not a well-formed message within the limits in this file's header.
 */
export function decodeMessage(
  bytes: Uint8Array,
  options: { what: string; depth?: number; maxFields?: number },
): ProtoMessage {
  const { what } = options;
  const depth = options.depth ?? 0;
  if (depth > MAX_DEPTH) {
    throw new SyntaxError(`Cannot read ${what}: messages nest more than ${MAX_DEPTH} deep`);
  }
  const maxFields = options.maxFields ?? MAX_FIELDS;
  const fields = new Map<number, ProtoField[]>();
  let count = 0;
  let offset = 0;
  while (offset < bytes.length) {
    const at = offset;
    if (++count > maxFields) {
      throw new SyntaxError(`Cannot read ${what}: more than ${maxFields} fields`);
    }
    const key = readVarint(bytes, offset, what);
    offset = key.next;
    const wire = Number(key.value & 7n);
    const number = key.value >> 3n;
    if (number < 1n || number > 0x1fffffffn) {
      throw new SyntaxError(`Cannot read ${what}: field number ${number} at byte ${at}`);
    }
    let field: ProtoField;
    if (wire === Wire.varint) {
      const value = readVarint(bytes, offset, what);
      offset = value.next;
      field = { wire, at, value: value.value };
    } else if (wire === Wire.fixed64 || wire === Wire.fixed32 || wire === Wire.bytes) {
      let length = wire === Wire.fixed64 ? 8 : 4;
      if (wire === Wire.bytes) {
        const size = readVarint(bytes, offset, what);
        offset = size.next;
        if (size.value > BigInt(bytes.length - offset)) {
          throw new SyntaxError(
            `Cannot read ${what}: field ${number} at byte ${at} says ${size.value} bytes, ` +
              `${bytes.length - offset} left`,
          );
        }
        length = Number(size.value);
      } else if (offset + length > bytes.length) {
        throw new SyntaxError(
          `Cannot read ${what}: field ${number} at byte ${at} needs ${length} bytes, ` +
            `${bytes.length - offset} left`,
        );
      }
      field = { wire, at, value: bytes.subarray(offset, offset + length) };
      offset += length;
    } else {
      throw new SyntaxError(
        `Cannot read ${what}: field ${number} at byte ${at} has wire type ${wire}`,
      );
    }
    const list = fields.get(Number(number));
    if (list) list.push(field);
    else fields.set(Number(number), [field]);
  }
  return new ProtoMessage(fields, what, depth);
}
