/**
 * All byte reading and writing goes through these two cursors: a DataView over exactly the
 * buffer given, named reads in network byte order, exact lengths, leftover bytes rejected.
 */

/** Reads big-endian fields from a buffer; every short read throws a RangeError with the offset. */
export class Reader {
  readonly #view: DataView;
  #offset = 0;

  constructor(readonly bytes: Uint8Array, readonly what: string) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.#view.byteLength - this.#offset;
  }

  #need(n: number, field: string): number {
    if (this.remaining < n) {
      throw new RangeError(
        `Cannot read ${this.what}: ${field} needs ${n} bytes at offset ${this.#offset}, ` +
          `${this.remaining} left`,
      );
    }
    const at = this.#offset;
    this.#offset += n;
    return at;
  }

  u8(field: string): number {
    return this.#view.getUint8(this.#need(1, field));
  }

  u16(field: string): number {
    return this.#view.getUint16(this.#need(2, field), false);
  }

  u32(field: string): number {
    return this.#view.getUint32(this.#need(4, field), false);
  }

  bytesOf(n: number, field: string): Uint8Array {
    const at = this.#need(n, field);
    return this.bytes.subarray(at, at + n);
  }

  /** Throws unless every byte was read. */
  end(): void {
    if (this.remaining !== 0) {
      throw new RangeError(
        `Cannot read ${this.what}: ${this.remaining} unexpected bytes after offset ${this.#offset}`,
      );
    }
  }
}

/** Writes big-endian fields into a buffer of a known size. */
export class Writer {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#view = new DataView(this.bytes.buffer);
  }

  u8(value: number): this {
    this.#view.setUint8(this.#offset, value);
    this.#offset += 1;
    return this;
  }

  u16(value: number): this {
    this.#view.setUint16(this.#offset, value, false);
    this.#offset += 2;
    return this;
  }

  u32(value: number): this {
    this.#view.setUint32(this.#offset, value >>> 0, false);
    this.#offset += 4;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.bytes.set(bytes, this.#offset);
    this.#offset += bytes.length;
    return this;
  }

  /** Returns the buffer; throws if it was not filled exactly. */
  done(): Uint8Array {
    if (this.#offset !== this.bytes.length) {
      throw new RangeError(`Cannot finish buffer: wrote ${this.#offset} of ${this.bytes.length}`);
    }
    return this.bytes;
  }
}
