/**
 * A TCP proxy for tests of what a connection does when the peer goes away: it forwards between
 * its own port on 127.0.0.1 and another, and on demand goes silent (keeps every connection open
 * and forwards nothing, as a cut cable does; new connections are accepted and never answered) or
 * resets every connection.
 */

const HOST = "127.0.0.1";

/** A TCP proxy to `port`; `silent` drops every byte both ways; `reset()` closes them all. */
export function proxy(port: number) {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const conns = new Set<Deno.Conn>();
  const state = { silent: false, accepted: 0 };
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (!state.silent) await to.write(buffer.subarray(0, n));
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
      state.accepted++;
      if (state.silent) {
        conns.add(inbound); // accepted and never answered: the handshake times out
        continue;
      }
      const outbound = await Deno.connect({ hostname: HOST, port });
      conns.add(inbound);
      conns.add(outbound);
      void pump(inbound, outbound);
      void pump(outbound, inbound);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    state,
    reset() {
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      conns.clear();
    },
    async close() {
      listener.close();
      this.reset();
      await loop;
    },
  };
}
