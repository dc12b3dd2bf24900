/**
 * A man in the middle of a page link (PROTOCOL.md §11.1), for the tests of the sealed page
 * stream: a TCP proxy from its own port on 127.0.0.1 to a target's page listener that lets the
 * source's 64-byte token through, cuts each direction into records (`u32 length` ‖ sealed bytes)
 * and, at one chosen record, flips a bit of it, replays it, drops it, swaps it with the next one,
 * injects a record before it, or cuts the link there (between records, or in the middle of it).
 * It records every byte of both directions, for the tests that look for a job's memory on the
 * wire.
 */

const HOST = "127.0.0.1";
const TOKEN_LENGTH = 64;

/** What the man in the middle does to the chosen record. */
export type PageTampering =
  | "flip"
  | "replay"
  | "drop"
  | "reorder"
  | "inject"
  | "cut"
  | "cutInside";

/** The two directions of a page link. */
export type PageWay = "toTarget" | "toSource";

/** Which record to tamper with, and how. */
export interface PageTamperPlan {
  readonly direction: PageWay;
  /** The record: its index in its direction (0: the first), or the first that `at` accepts. */
  readonly at: number | ((record: Uint8Array, index: number) => boolean);
  readonly action: PageTampering;
  /** For "inject": the bytes written before the chosen record (default: a forged record). */
  readonly inject?: Uint8Array;
}

/** Chunks of bytes read, taken from the front. */
class ByteQueue {
  #chunks: Uint8Array[] = [];
  length = 0;

  push(chunk: Uint8Array) {
    this.#chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes (n <= length), removed. */
  take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      const used = Math.min(chunk.length, n - filled);
      out.set(chunk.subarray(0, used), filled);
      filled += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    this.length -= n;
    return out;
  }

  /** The u32 (network order) at the front, without taking it. */
  peekLength(): number {
    const head = this.take(4);
    this.#chunks.unshift(head);
    this.length += 4;
    return new DataView(head.buffer).getUint32(0);
  }
}

/** A record no key sealed: a length of 64 and 64 random bytes. */
function forged(): Uint8Array {
  const record = new Uint8Array(4 + 64);
  new DataView(record.buffer).setUint32(0, 64);
  record.set(crypto.getRandomValues(new Uint8Array(64)), 4);
  return record;
}

/**
 * A proxy to the page listener at `port` that tampers as `plan` says (or only records, without
 * one). `tampered` resolves once the plan was carried out; `captured(direction)` is every byte
 * that direction carried so far, as its sender sent it.
 */
export function pageProxy(port: number, plan?: PageTamperPlan) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const conns = new Set<Deno.Conn>();
  const captured: Record<PageWay, Uint8Array[]> = { toTarget: [], toSource: [] };
  let carriedOut!: () => void;
  const tampered = new Promise<void>((resolve) => carriedOut = resolve);

  const writeAll = async (to: Deno.Conn, bytes: Uint8Array) => {
    while (bytes.length) bytes = bytes.subarray(await to.write(bytes));
  };

  /** Forwards `from` to `to` record by record, tampering with the planned one. */
  const pump = async (from: Deno.Conn, to: Deno.Conn, direction: PageWay) => {
    const buffer = new Uint8Array(1 << 20);
    const pending = new ByteQueue();
    let token = direction === "toTarget" ? TOKEN_LENGTH : 0;
    let index = 0;
    let done = false; // the plan was carried out (or is no plan of this direction)
    let held: Uint8Array | undefined; // a record held back to be reordered
    const mine = plan?.direction === direction ? plan : undefined;
    const chosen = (record: Uint8Array, i: number) =>
      mine !== undefined && !done &&
      (typeof mine.at === "number" ? mine.at === i : mine.at(record, i));
    /** Forwards one record; false once the link is cut. */
    const forward = async (record: Uint8Array): Promise<boolean> => {
      const i = index++;
      if (held) {
        const first = held;
        held = undefined;
        await writeAll(to, record);
        await writeAll(to, first);
        carriedOut();
        return true;
      }
      if (!chosen(record, i)) {
        await writeAll(to, record);
        return true;
      }
      done = true;
      switch (mine!.action) {
        case "flip": {
          const copy = record.slice();
          copy[4 + Math.floor((copy.length - 4) / 2)] ^= 0x01;
          await writeAll(to, copy);
          break;
        }
        case "replay":
          await writeAll(to, record);
          await writeAll(to, record);
          break;
        case "drop":
          break;
        case "reorder":
          held = record;
          return true;
        case "inject":
          await writeAll(to, mine!.inject ?? forged());
          await writeAll(to, record);
          break;
        case "cut":
        case "cutInside":
          if (mine!.action === "cutInside") {
            await writeAll(to, record.subarray(0, Math.floor(record.length / 2)));
          }
          await to.closeWrite().catch(() => {});
          carriedOut();
          return false;
      }
      carriedOut();
      return true;
    };
    try {
      reading: for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        captured[direction].push(chunk);
        pending.push(chunk);
        if (token > 0) {
          const passed = pending.take(Math.min(token, pending.length));
          token -= passed.length;
          await writeAll(to, passed);
        }
        while (token === 0 && pending.length >= 4) {
          const length = pending.peekLength();
          if (pending.length < 4 + length) break;
          if (!(await forward(pending.take(4 + length)))) {
            // Cut: the rest of this direction goes nowhere (it is still read and recorded).
            for (;;) {
              const more = await from.read(buffer);
              if (more === null) break reading;
              captured[direction].push(buffer.slice(0, more));
            }
          }
        }
      }
      if (pending.length > 0) await writeAll(to, pending.take(pending.length));
      await to.closeWrite();
    } catch {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch { /* closed */ }
        conns.delete(conn);
      }
    }
  };

  const loop = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: HOST, port });
      conns.add(inbound);
      conns.add(outbound);
      const both = [pump(inbound, outbound, "toTarget"), pump(outbound, inbound, "toSource")];
      void Promise.all(both).then(() => {
        for (const conn of [inbound, outbound]) {
          try {
            conn.close();
          } catch { /* closed */ }
          conns.delete(conn);
        }
      });
    }
  })().catch(() => {});

  const concat = (parts: readonly Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
    return out;
  };

  return {
    port: (listener.addr as Deno.NetAddr).port,
    tampered,
    /** Every byte `direction` carried so far. */
    captured: (direction: PageWay) => concat(captured[direction]),
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      conns.clear();
      await loop;
    },
  };
}
