/**
 * lib/web/poller.ts against real channel servers on loopback, keyed and not: the three answers of
 * a node, one sealed connection kept for many polls, a keyless node's refusals, a node that cannot
 * be reached, and a server that went away and came back.
 */
import assert from "node:assert/strict";
import { silentLogger } from "../../../lib/base/log.ts";
import { connectChannel } from "../../../lib/channel/client.ts";
import { FakeClock } from "../../../lib/base/clock.ts";
import { JobTable } from "../../../lib/jobs/table.ts";
import { MoveLog } from "../../../lib/migration/movelog.ts";
import { PeerPoller } from "../../../lib/web/poller.ts";
import { NodeStatus } from "../../../lib/web/statuswire.ts";
import { HOST, newKey, serve } from "../channel/channelkit.ts";
import type { ClusterKey } from "../../../lib/base/key.ts";

const FLAGS = { stay: false, lstay: true, block: false, quiet: false };

/** Node 7's answers: one job, one move. */
function status(keyed: boolean) {
  const table = new JobTable(new FakeClock());
  table.add({ id: 70, home: 7, node: 7, command: ["sleep", "9"] });
  const moves = new MoveLog({ now: () => 123 });
  moves.begin({ id: 70, home: 7, from: 7, to: 2 }, { by: "balancer" })
    .ok({ frozenMs: 1, totalMs: 2 });
  return new NodeStatus({
    nodeId: 7,
    flags: () => Promise.resolve(FLAGS),
    net: () => ({ rx: 10, tx: 20 }),
    jobs: () => table.list(),
    moves,
    userName: () => Promise.resolve("root"),
  }).handlers(keyed);
}

function poller(port: number, key?: ClusterKey) {
  let connects = 0;
  const p = new PeerPoller({
    connect: (id, address) => {
      connects++;
      return connectChannel({ hostname: address, port, key, nodeId: 1, expectNodeId: id });
    },
    timeoutMs: () => 2000,
    logger: silentLogger,
  });
  return { poller: p, connects: () => connects };
}

Deno.test("poller: a keyed node's three answers, over one connection kept for every poll", async () => {
  const key = await newKey();
  const server = serve({ key, handlers: status(true) });
  const { poller: p, connects } = poller(server.port, key);
  try {
    const first = await p.poll(7, HOST, 0, 0);
    assert.deepEqual(first.node, { flags: FLAGS, net: { rx: 10, tx: 20 } });
    assert.deepEqual(first.jobs?.map((j) => [j.key, j.command]), [["7:70", "sleep 9"]]);
    assert.deepEqual(first.moves?.moves.map((m) => [m.by, m.result, m.to]), [[
      "balancer",
      "ok",
      2,
    ]]);
    const again = await p.poll(7, HOST, first.moves!.rev, first.moves!.epoch);
    assert.deepEqual(again.moves?.moves, [], "nothing new since");
    await p.poll(7, HOST, 0, 0);
    assert.equal(connects(), 1);
    assert.equal(server.stats.accepted, 1, "one handshake for three polls");
    assert.equal(p.connected, 1);
  } finally {
    await p.close();
    await server.close();
  }
  assert.equal(p.connected, 0);
});

Deno.test("poller: a keyless node answers status.node and refuses the rest; the connection stays", async () => {
  const server = serve({ handlers: status(false) });
  const { poller: p, connects } = poller(server.port);
  try {
    const report = await p.poll(7, HOST, 0, 0);
    assert.deepEqual(report.node?.flags, FLAGS);
    assert.equal(report.jobs, undefined);
    assert.equal(report.moves, undefined);
    await p.poll(7, HOST, 0, 0);
    assert.equal(connects(), 1);
  } finally {
    await p.close();
    await server.close();
  }
});

Deno.test("poller: a node that cannot be reached answers nothing; asked again, on a new connection", async () => {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = listener.addr.port;
  listener.close();
  const { poller: p, connects } = poller(port);
  assert.deepEqual(await p.poll(7, HOST, 0, 0), {});
  assert.equal(p.connected, 0);
  const server = serve({ port, handlers: status(false) });
  try {
    assert.ok((await p.poll(7, HOST, 0, 0)).node);
    assert.equal(connects(), 2);
  } finally {
    await p.close();
    await server.close();
  }
});

Deno.test("poller: a server that closed the connection is reached again at the next poll", async () => {
  let server = serve({ handlers: status(false) });
  const port = server.port;
  const { poller: p } = poller(port);
  try {
    assert.ok((await p.poll(7, HOST, 0, 0)).node);
    await server.close();
    assert.equal((await p.poll(7, HOST, 0, 0)).node, undefined);
    server = serve({ port, handlers: status(false) });
    assert.ok((await p.poll(7, HOST, 0, 0)).node);
  } finally {
    await p.close();
    await server.close();
  }
});
