/**
 * A multicast probe for the lab tests (no socat on these machines): proves that a datagram sent
 * to a group in one node reaches another node.
 *
 *   mcast.ts recv GROUP PORT IFADDR TIMEOUT_MS   prints "TEXT from ADDR" for the first datagram
 *                                                and exits 0; exits 1 when none came in time
 *   mcast.ts send GROUP PORT IFADDR TEXT COUNT   sends TEXT COUNT times, 20 ms apart, from IFADDR
 *
 * Run with `deno run -A --unstable-net`.
 */
const [mode, group, portText, ifaddr, arg, countText] = Deno.args;
const port = Number(portText);

if (mode === "recv") {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: "0.0.0.0",
    port,
    reuseAddress: true,
  });
  await socket.joinMulticastV4(group, ifaddr);
  // Tell the test we listen, so it starts the sender only now.
  console.log("listening");
  const timer = setTimeout(() => {
    console.log("timeout");
    Deno.exit(1);
  }, Number(arg));
  const [data, from] = await socket.receive();
  clearTimeout(timer);
  console.log(`${new TextDecoder().decode(data)} from ${(from as Deno.NetAddr).hostname}`);
  socket.close();
  Deno.exit(0);
} else if (mode === "send") {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: ifaddr, port: 0 });
  const target: Deno.NetAddr = { transport: "udp", hostname: group, port };
  const bytes = new TextEncoder().encode(arg);
  for (let i = 0; i < Number(countText ?? 1); i++) {
    await socket.send(bytes, target);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  socket.close();
} else {
  console.error(
    "usage: mcast.ts recv GROUP PORT IFADDR TIMEOUT_MS | send GROUP PORT IFADDR TEXT N",
  );
  Deno.exit(2);
}
