/**
 * Multicast UDP for the discovery daemon, through Deno.listenDatagram (it starts 8 ms faster
 * than node:dgram, which matters when a whole cluster starts at once; PROTOCOL.md §2.1). One
 * receiving socket bound to the group and joined on every talking interface; one sending socket
 * per interface, bound to that interface's address: Deno has no IP_MULTICAST_IF, and Linux sends
 * multicast out of the interface that owns a socket's source address. There is no IP_PKTINFO
 * either, so the arriving interface is inferred from the sender's address and the interfaces'
 * netmasks (the first interface when no network matches: routed multicast).
 */
import { sameNetwork } from "../base/ipv4.ts";
import type { NetInterface } from "./interfaces.ts";
import type { DatagramHandler, Transport } from "./transport.ts";

/** How to open the multicast transport. */
export interface MulticastOptions {
  readonly group: string;
  readonly port: number;
  /** The interfaces that send and receive. */
  readonly interfaces: readonly NetInterface[];
  /** Multicast TTL (1 when unset: the local network only). */
  readonly ttl?: number;
  /** Hear our own sends (only for tests with several senders in one namespace). */
  readonly loopback?: boolean;
  /** Socket errors after start (logged by the caller; the daemon keeps running). */
  readonly onError: (error: Error) => void;
}

/** Opens the transport; resolves once every socket is bound and joined. */
export async function openMulticast(
  options: MulticastOptions,
  handler: DatagramHandler,
): Promise<Transport> {
  const { group, port, interfaces } = options;
  const loopback = options.loopback ?? false;
  const sockets: Deno.DatagramConn[] = [];
  const senders = new Map<string, Deno.DatagramConn>();
  let closed = false;
  const closeAll = () => {
    closed = true;
    for (const socket of sockets) {
      try {
        socket.close();
      } catch { /* already closed */ }
    }
  };
  let receiver: Deno.DatagramConn;
  try {
    receiver = Deno.listenDatagram({
      transport: "udp",
      hostname: group,
      port,
      reuseAddress: true,
      loopback,
    });
    sockets.push(receiver);
    for (const nic of interfaces) await receiver.joinMulticastV4(group, nic.address);
    for (const nic of interfaces) {
      const sender = Deno.listenDatagram({
        transport: "udp",
        hostname: nic.address,
        port: 0,
        loopback,
      });
      sockets.push(sender);
      senders.set(nic.name, sender);
      // TTL and loopback are set through a membership; it receives nothing (another port).
      const membership = await sender.joinMulticastV4(group, nic.address);
      await membership.setTTL(options.ttl ?? 1);
      await membership.setLoopback(loopback);
    }
  } catch (error) {
    closeAll();
    throw error;
  }
  // One receive loop per socket: concurrent receive() calls resolve out of order.
  (async () => {
    while (!closed) {
      let bytes: Uint8Array, from: Deno.Addr;
      try {
        [bytes, from] = await receiver.receive();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        options.onError(error as Error);
        continue;
      }
      const sender = from as Deno.NetAddr;
      const arrival = interfaces.find((nic) =>
        sameNetwork(sender.hostname, nic.address, nic.netmask)
      ) ??
        interfaces[0];
      handler(bytes, { address: sender.hostname, port: sender.port }, arrival.name);
    }
  })();
  const destination: Deno.NetAddr = { transport: "udp", hostname: group, port };
  return {
    send: async (bytes, via) => {
      const sender = senders.get(via);
      if (!sender) throw new Error(`Cannot send via "${via}": not a talking interface`);
      await sender.send(bytes, destination);
    },
    close: () => {
      closeAll();
      return Promise.resolve();
    },
  };
}
