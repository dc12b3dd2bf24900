/**
 * A man in the middle of the node-to-node channel, for the tests of sealed sessions: a TCP proxy
 * from its own port on 127.0.0.1 to another that cuts each direction into frames (the `u32`
 * length prefix of PROTOCOL.md §8.1) and, at one chosen frame after the handshake, flips a bit of
 * it, replays it, drops it, swaps it with the next one, or injects a frame before it. It records
 * every byte of both directions, for the tests that look for plaintext on the wire.
 */

const HOST = "127.0.0.1";

/** What the man in the middle does to the chosen frame. */
export type Tampering = "flip" | "replay" | "drop" | "reorder" | "inject";

/** Which frame to tamper with, and how. */
export interface TamperPlan {
  /** The direction of the frame: the client's frames to the server, or the server's back. */
  readonly direction: "toServer" | "toClient";
  /** Its index among that direction's frames after the handshake (0: the first). */
  readonly at: number;
  readonly action: Tampering;
  /** For "inject": the frame written before the chosen one (length prefix included). */
  readonly inject?: Uint8Array;
}

/** Handshake frame types (HELLO, WELCOME, AUTH): not counted by `at`. */
const HANDSHAKE_TYPES = new Set([0x01, 0x02, 0x03]);

const concat = (parts: readonly Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};

/**
 * A proxy to `port` that tampers as `plan` says (or only records, without one). `tampered`
 * resolves once the plan was carried out; `captured(direction)` is every byte that direction
 * carried so far, as received from its sender.
 */
export function tamperProxy(port: number, plan?: TamperPlan) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const conns = new Set<Deno.Conn>();
  const captured = { toServer: [] as Uint8Array[], toClient: [] as Uint8Array[] };
  let carriedOut!: () => void;
  const tampered = new Promise<void>((resolve) => carriedOut = resolve);

  const writeAll = async (to: Deno.Conn, bytes: Uint8Array) => {
    while (bytes.length) bytes = bytes.subarray(await to.write(bytes));
  };

  /** Forwards `from` to `to` frame by frame, tampering with the planned one. */
  const pump = async (from: Deno.Conn, to: Deno.Conn, direction: "toServer" | "toClient") => {
    const buffer = new Uint8Array(1 << 20);
    let pending = new Uint8Array(0);
    let after = 0; // frames after the handshake seen so far
    let held: Uint8Array | undefined; // a frame held back to be reordered
    const mine = plan?.direction === direction ? plan : undefined;
    const forward = async (frame: Uint8Array) => {
      if (held) {
        const first = held;
        held = undefined;
        await writeAll(to, frame);
        await writeAll(to, first);
        carriedOut();
        return;
      }
      if (HANDSHAKE_TYPES.has(frame[4]) || !mine || after++ !== mine.at) {
        await writeAll(to, frame);
        return;
      }
      switch (mine.action) {
        case "flip": {
          const copy = frame.slice();
          copy[4 + Math.floor((copy.length - 4) / 2)] ^= 0x01;
          await writeAll(to, copy);
          break;
        }
        case "replay":
          await writeAll(to, frame);
          await writeAll(to, frame);
          break;
        case "drop":
          break;
        case "reorder":
          held = frame;
          return;
        case "inject":
          await writeAll(to, mine.inject!);
          await writeAll(to, frame);
          break;
      }
      carriedOut();
    };
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const chunk = buffer.slice(0, n);
        captured[direction].push(chunk);
        pending = concat([pending, chunk]);
        while (pending.length >= 4) {
          const length = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
          if (pending.length < 4 + length) break;
          await forward(pending.slice(0, 4 + length));
          pending = pending.slice(4 + length);
        }
      }
    } catch { /* closed */ }
    for (const conn of [from, to]) {
      try {
        conn.close();
      } catch { /* closed */ }
      conns.delete(conn);
    }
  };

  const loop = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: HOST, port });
      conns.add(inbound);
      conns.add(outbound);
      void pump(inbound, outbound, "toServer");
      void pump(outbound, inbound, "toClient");
    }
  })().catch(() => {});

  return {
    port: (listener.addr as Deno.NetAddr).port,
    tampered,
    /** Every byte `direction` carried so far. */
    captured: (direction: "toServer" | "toClient") => concat(captured[direction]),
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
