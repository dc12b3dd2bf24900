/**
 * The small transport the discovery daemon talks through: send a datagram out of one interface,
 * get every datagram with the interface it arrived on. The real one is multicast UDP
 * (lib/discovery/udp.ts); the in-memory network here makes state-machine tests of the daemon fast.
 */

/** Where a datagram came from. */
export interface Peer {
  readonly address: string;
  readonly port: number;
}

/** Called for each datagram; `via` is the name of the interface it arrived on. */
export type DatagramHandler = (bytes: Uint8Array, from: Peer, via: string) => void;

/** An open transport. */
export interface Transport {
  /** Sends to the group out of the named interface. */
  send(bytes: Uint8Array, via: string): Promise<void>;
  close(): Promise<void>;
}

/** An in-memory multicast segment: every member on a network hears every other one's sends. */
export class MemoryNetwork {
  readonly #members = new Set<
    { net: string; address: string; name: string; handler: DatagramHandler }
  >();
  /** Datagrams sent, for assertions. */
  readonly sent: { from: string; net: string; bytes: Uint8Array }[] = [];

  /**
   * Attaches a node: `nics` maps each interface name to its network name and address. Delivery is
   * asynchronous (a microtask), like a real network.
   */
  attach(
    nics: Record<string, { net: string; address: string }>,
    handler: DatagramHandler,
  ): Transport {
    const mine = Object.entries(nics).map(([name, nic]) => ({ ...nic, name, handler }));
    for (const m of mine) this.#members.add(m);
    return {
      send: (bytes, via) => {
        const nic = nics[via];
        if (!nic) return Promise.reject(new Error(`Cannot send via "${via}": no such interface`));
        this.sent.push({ from: nic.address, net: nic.net, bytes });
        const copy = bytes.slice();
        for (const member of this.#members) {
          if (member.net !== nic.net || mine.includes(member)) continue;
          queueMicrotask(() =>
            member.handler(copy, { address: nic.address, port: 0 }, member.name)
          );
        }
        return Promise.resolve();
      },
      close: () => {
        for (const m of mine) this.#members.delete(m);
        return Promise.resolve();
      },
    };
  }

  /** Sends raw bytes onto a network from an address that is not a member (a test's injector). */
  inject(net: string, from: string, bytes: Uint8Array): void {
    for (const member of this.#members) {
      if (member.net === net) {
        member.handler(bytes.slice(), { address: from, port: 0 }, member.name);
      }
    }
  }
}
