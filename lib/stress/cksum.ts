/**
 * POSIX `cksum` (the CRC-32 of IEEE 802.3's polynomial 0x04C11DB7, most significant bit first,
 * over the bytes and then their count, complemented), incrementally: the stream workload's output
 * is checksummed here as it arrives, and the stdin and pipeline workloads run `cksum` inside the
 * job, so the value `om stress` expects of them is computed here the same way. `cksum` prints
 * "CRC LENGTH", which {@linkcode formatCksum} reproduces.
 */

const POLY = 0x04c11db7;

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ POLY : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** A checksum and the number of bytes it covers, as `cksum` prints them. */
export interface CksumValue {
  readonly crc: number;
  readonly length: number;
}

/** A running `cksum`: feed it bytes with `update`, read the value with `value`. */
export class Cksum {
  #crc = 0;
  #length = 0;

  /** Adds `bytes` to the checksum. */
  update(bytes: Uint8Array): this {
    let crc = this.#crc;
    for (let i = 0; i < bytes.length; i++) {
      crc = ((crc << 8) ^ TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
    }
    this.#crc = crc;
    this.#length += bytes.length;
    return this;
  }

  /** The checksum of everything fed so far (feeding may go on afterwards). */
  value(): CksumValue {
    let crc = this.#crc;
    // The length goes in too, least significant byte first, without leading zero bytes.
    for (let n = this.#length; n > 0; n = Math.floor(n / 256)) {
      crc = ((crc << 8) ^ TABLE[((crc >>> 24) ^ (n % 256)) & 0xff]) >>> 0;
    }
    return { crc: ~crc >>> 0, length: this.#length };
  }
}

/** The `cksum` of `bytes` at once. */
export function cksum(bytes: Uint8Array): CksumValue {
  return new Cksum().update(bytes).value();
}

/** The line `cksum` prints for standard input: "CRC LENGTH". */
export function formatCksum(value: CksumValue): string {
  return `${value.crc} ${value.length}`;
}
