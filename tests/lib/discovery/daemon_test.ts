import assert from "node:assert/strict";
import { silentLogger } from "../../../lib/base/log.ts";
import { FakeClock } from "../../../lib/base/clock.ts";
import { DiscoveryDaemon } from "../../../lib/discovery/daemon.ts";
import type { ClusterMap } from "../../../lib/state/hpcmap.ts";
import { MemoryNetwork } from "../../../lib/discovery/transport.ts";
import { encodeAnnouncement } from "../../../lib/discovery/datagram.ts";

const MASK = "255.255.255.0";

interface TestNode {
  daemon: DiscoveryDaemon;
  map: () => ClusterMap;
  writes: () => number;
}

/** A node on the memory network: nics maps interface name to [network, address]. */
function node(
  network: MemoryNetwork,
  clock: FakeClock,
  nics: Record<string, [string, string]>,
  options: { relay?: boolean; announce?: number; expire?: number } = {},
): TestNode {
  const talk = Object.entries(nics).map(([name, [, address]]) => ({
    name,
    address,
    netmask: MASK,
  }));
  let map: ClusterMap = { gateways: 0, entries: [] };
  let writes = 0;
  const daemon = new DiscoveryDaemon({
    self: {
      address: talk[0].address,
      netmask: MASK,
      aliases: talk.slice(1).map((n) => ({ address: n.address, netmask: MASK })),
    },
    talk,
    relay: options.relay ?? false,
    announceInterval: options.announce ?? 5000,
    expireAfter: options.expire ?? 15000,
  }, {
    openTransport: (handler) =>
      Promise.resolve(network.attach(
        Object.fromEntries(
          Object.entries(nics).map(([name, [net, address]]) => [name, { net, address }]),
        ),
        handler,
      )),
    writeMap: (_self, next) => {
      map = next;
      writes++;
      return Promise.resolve();
    },
    writeStats: () => Promise.resolve(),
    logger: silentLogger,
    clock,
    random: () => 0.5,
  });
  return { daemon, map: () => map, writes: () => writes };
}

/** Lets delivered datagrams and timers run: microtasks, then the clock, a few rounds. */
async function settle(clock: FakeClock, ms = 100): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    clock.advance(ms / 10);
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
}

const ids = (n: TestNode) =>
  n.map().entries.filter((e) => e.count > 0).map((e) => e.base).sort((x, y) => x - y);

Deno.test("daemon: nodes that start one after another all learn each other", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const nodes = [1, 2, 3, 4, 5].map((i) => node(network, clock, { eth0: ["a", `10.77.0.${i}`] }));
  for (const n of nodes) {
    await n.daemon.start();
    await settle(clock);
  }
  for (const n of nodes) assert.deepEqual(ids(n), [1, 2, 3, 4, 5]);
});

Deno.test("daemon: every node writes the same map, sorted by node id, whoever joined first", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  // Joined in this order; node 3 also has an alias on a second network.
  const nodes = [4, 2, 5, 1].map((i) => node(network, clock, { eth0: ["a", `10.77.0.${i}`] }));
  nodes.push(node(network, clock, { eth0: ["a", "10.77.0.3"], eth1: ["b", "10.77.1.3"] }));
  for (const n of nodes) {
    await n.daemon.start();
    await settle(clock);
  }
  const expected = [
    { base: 1, address: "10.77.0.1", count: 1 },
    { base: 2, address: "10.77.0.2", count: 1 },
    { base: 3, address: "10.77.0.3", count: 1 },
    { base: 3, address: "10.77.1.3", count: 0 },
    { base: 4, address: "10.77.0.4", count: 1 },
    { base: 5, address: "10.77.0.5", count: 1 },
  ];
  for (const n of nodes) assert.deepEqual(n.map(), { gateways: 0, entries: expected });
});

Deno.test("daemon: a burst of joins costs one acknowledgement per node", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const first = node(network, clock, { eth0: ["a", "10.77.0.1"] });
  await first.daemon.start();
  await settle(clock);
  const sentBefore = first.daemon.stats.sent;
  const others = [2, 3, 4, 5, 6].map((i) => node(network, clock, { eth0: ["a", `10.77.0.${i}`] }));
  await Promise.all(others.map((n) => n.daemon.start()));
  await settle(clock);
  assert.equal(first.daemon.stats.sent - sentBefore, 1, "one ack for five joins");
  for (const n of [first, ...others]) assert.deepEqual(ids(n), [1, 2, 3, 4, 5, 6]);
});

Deno.test("daemon: a stopped node leaves every map at once", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const nodes = [1, 2, 3].map((i) =>
    node(network, clock, { eth0: ["a", `10.77.0.${i}`] }, { announce: 1000, expire: 3000 })
  );
  for (const n of nodes) await n.daemon.start();
  await settle(clock);
  await nodes[2].daemon.stop();
  await settle(clock, 10);
  assert.deepEqual(ids(nodes[0]), [1, 2]);
  assert.deepEqual(ids(nodes[1]), [1, 2]);
  assert.deepEqual(ids(nodes[2]), [3], "a stopped node keeps only itself");
  assert.equal(nodes[0].daemon.stats.left, 1);
});

Deno.test("daemon: expiry removes a node that stopped announcing", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const a = node(network, clock, { eth0: ["a", "10.77.0.1"] }, { announce: 1000, expire: 3000 });
  await a.daemon.start();
  // A node heard once and never again (injected, as a killed daemon would look).
  network.inject(
    "a",
    "10.77.0.9",
    encodeAnnouncement({
      kind: "join",
      source: { address: "10.77.0.9", netmask: MASK },
      aliases: [],
    }),
  );
  await settle(clock, 10);
  assert.deepEqual(ids(a), [1, 9]);
  await settle(clock, 2900);
  assert.deepEqual(ids(a), [1, 9]);
  await settle(clock, 700);
  assert.deepEqual(ids(a), [1]);
  assert.equal(a.daemon.stats.expired, 1);
  await a.daemon.stop();
});

Deno.test("daemon: a two-interface node relays between two networks without loops", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const gateway = node(network, clock, { eth0: ["a", "10.77.0.1"], eth1: ["b", "10.77.1.1"] }, {
    relay: true,
  });
  // A second gateway between the same two networks: without loop prevention, relays ping-pong.
  const gateway2 = node(network, clock, { eth0: ["a", "10.77.0.2"], eth1: ["b", "10.77.1.2"] }, {
    relay: true,
  });
  const left = [3, 4].map((i) => node(network, clock, { eth0: ["a", `10.77.0.${i}`] }));
  const right = [5, 6].map((i) => node(network, clock, { eth0: ["b", `10.77.1.${i}`] }));
  for (const n of [gateway, gateway2, ...left, ...right]) await n.daemon.start();
  await settle(clock, 200);
  const all = [1, 2, 3, 4, 0x105, 0x106].sort((x, y) => x - y);
  for (const n of [gateway, gateway2, ...left, ...right]) {
    assert.deepEqual(ids(n), all, `map of ${n.map().entries[0]?.address}`);
  }
  // The gateways appear with their other interface as an alias.
  assert.ok(
    left[0].map().entries.some((e) => e.base === 1 && e.count === 0 && e.address === "10.77.1.1"),
  );
  // Quiet afterwards: no datagram keeps circulating.
  network.sent.length = 0;
  await settle(clock, 1000);
  assert.equal(network.sent.length, 0, "nothing circulates once the burst is over");
  assert.ok(gateway.daemon.stats.relayed > 0);
});

Deno.test("daemon: garbage is dropped and counted by reason, and changes nothing", async () => {
  const network = new MemoryNetwork();
  const clock = new FakeClock();
  const a = node(network, clock, { eth0: ["a", "10.77.0.1"] });
  await a.daemon.start();
  const writesBefore = a.writes();
  const good = encodeAnnouncement({
    kind: "join",
    source: { address: "10.77.0.2", netmask: MASK },
    aliases: [],
  });
  const badMagic = good.slice();
  badMagic[0] = 0;
  const badType = good.slice();
  badType[52] = 0x7a;
  for (let i = 0; i < 300; i++) {
    network.inject("a", "10.77.0.66", good.subarray(0, i % 53));
    network.inject("a", "10.77.0.66", badMagic);
    network.inject("a", "10.77.0.66", badType);
  }
  await settle(clock);
  assert.deepEqual(ids(a), [1]);
  assert.equal(a.writes(), writesBefore);
  assert.equal(a.daemon.stats.dropped.length, 300);
  assert.equal(a.daemon.stats.dropped.magic, 300);
  assert.equal(a.daemon.stats.dropped.type, 300);
  assert.equal(a.daemon.stats.accepted, 0);
  // A good datagram is still heard afterwards.
  network.inject("a", "10.77.0.2", good);
  await settle(clock);
  assert.deepEqual(ids(a), [1, 2]);
  await a.daemon.stop();
});

Deno.test("daemon: a join handled just as a map write ends is written too", async () => {
  // Datagrams arrive in microtasks; whatever the depth at which one lands around the end of a
  // write, the map on disk must end up with it (a race found by the benchmark).
  for (let depth = 0; depth < 8; depth++) {
    const network = new MemoryNetwork();
    const clock = new FakeClock();
    const a = node(network, clock, { eth0: ["a", "10.77.0.1"] });
    await a.daemon.start();
    const join = (i: number) =>
      encodeAnnouncement({
        kind: "join",
        source: { address: `10.77.0.${i}`, netmask: MASK },
        aliases: [],
      });
    network.inject("a", "10.77.0.2", join(2));
    let chain = Promise.resolve();
    for (let d = 0; d < depth; d++) chain = chain.then(() => {});
    await chain.then(() => network.inject("a", "10.77.0.3", join(3)));
    await settle(clock);
    await a.daemon.idle();
    assert.deepEqual(ids(a), [1, 2, 3], `join at microtask depth ${depth}`);
    await a.daemon.stop();
  }
});
