/**
 * The daemon's side of om exec on real sockets: a sealed channel on loopback between two
 * services (nodes 1 and 2), and exec.ask handed a local socket's peer as the guard leaves it.
 */
import assert from "node:assert/strict";
import { systemClock } from "../../../lib/base/clock.ts";
import { jsonBytes } from "../../../lib/base/json.ts";
import { createLogger } from "../../../lib/base/log.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { type ChannelClient, connectChannel } from "../../../lib/channel/client.ts";
import type { Peer } from "../../../lib/channel/handshake.ts";
import { serveChannel } from "../../../lib/channel/server.ts";
import { ExecService, type ExecServiceOptions } from "../../../lib/exec/service.ts";
import { type ExecResult, readResult } from "../../../lib/exec/wire.ts";
import { HOST, logger, newKey } from "../channel/channelkit.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** What a service logged, line by line. */
function recorder() {
  const lines: string[] = [];
  return {
    lines,
    logger: createLogger((level, line) => lines.push(`${level}: ${line}`), () => true),
  };
}

/** The peer of a local-socket connection of user `uid`, as lib/jobs/localauth.ts leaves it. */
const localPeer = (uid: number): Peer => ({
  address: "local",
  port: 0,
  nodeId: 0,
  authenticated: false,
  session: new Map([["uid", uid]]),
});

/**
 * Node 2 serves exec.run on a sealed channel (allowing `allow`); node 1 asks it. Runs `body`
 * with node 1's exec.ask, and closes everything.
 */
async function withTwoNodes(
  options: {
    allow2?: string[];
    allow1?: string[];
    more2?: Partial<ExecServiceOptions>;
    serve2?: boolean;
  },
  body: (
    ask: (request: unknown, uid?: number) => Promise<ExecResult>,
    logs: { one: string[]; two: string[] },
    run2: () => Promise<ChannelClient>,
    running2: () => number,
  ) => Promise<void>,
): Promise<void> {
  const key = await newKey();
  const one = recorder();
  const two = recorder();
  const node2 = new ExecService({
    nodeId: 2,
    keyed: true,
    allow: options.allow2 ?? ["*"],
    logger: two.logger,
    clock: systemClock,
    connect: () => Promise.reject(new Error("not used")),
    ...options.more2,
  });
  const server = serveChannel({
    hostname: HOST,
    port: 0,
    key,
    nodeId: 2,
    logger,
    handlers: options.serve2 === false ? new Map() : node2.channelHandlers(),
  });
  const dial = (node: number) =>
    node === 2
      ? connectChannel({ hostname: HOST, port: server.port, key, nodeId: 1, expectNodeId: 2 })
      : Promise.reject(new Error(`node ${node} is not in the cluster map`));
  const node1 = new ExecService({
    nodeId: 1,
    keyed: true,
    allow: options.allow1 ?? [],
    logger: one.logger,
    clock: systemClock,
    connect: dial,
  });
  const handler = node1.localHandlers().get("exec.ask")!;
  try {
    await body(
      async (request, uid = 0) =>
        readResult(await handler(jsonBytes(request), localPeer(uid)), "exec.ask"),
      { one: one.lines, two: two.lines },
      () => dial(2),
      () => node2.running,
    );
  } finally {
    node1.close();
    node2.close();
    await server.close();
  }
}

Deno.test("service: node 1 asks node 2 over the sealed channel; node 2 logs who asked from where", async () => {
  await withTwoNodes({}, async (ask, logs) => {
    const result = await ask({
      node: 2,
      argv: ["sh", "-c", "echo hi; echo oops >&2; exit 4"],
      timeoutMs: 5000,
    });
    assert.equal(result.node, 2);
    assert.deepEqual(result.outcome, { kind: "exited", code: 4 });
    assert.equal(text(result.stdout), "hi\n");
    assert.equal(text(result.stderr), "oops\n");
    const running = logs.two.find((l) => l.includes("exec: running"));
    assert.equal(
      running,
      'info: exec: running ["sh","-c","echo hi; echo oops >&2; exit 4"] as root, asked by root ' +
        "(uid 0) on node 1 at 127.0.0.1, time limit 5000 ms",
    );
    assert.ok(
      logs.two.some((l) =>
        /ended: exited \(status 4\) after \d+ ms, 8 bytes of output kept, 0 dropped$/.test(l)
      ),
      logs.two.join("\n"),
    );
  });
});

Deno.test("service: each node decides by its own exec_allow, and says why it refuses", async () => {
  await withTwoNodes({ allow1: [], allow2: ["uname"] }, async (ask, logs) => {
    const here = await ask({ node: 1, argv: ["uname"], timeoutMs: 5000 });
    assert.equal(here.node, 1);
    assert.deepEqual(here.outcome, {
      kind: "refused",
      reason: 'Cannot run "uname": om exec is off on this node (exec_allow is empty; set ' +
        "exec_allow in its om.conf, OM_EXEC_ALLOW or --exec-allow: names, paths, * for all)",
    });
    assert.ok(
      logs.one.some((l) =>
        l.startsWith(
          'warning: exec: refused ["uname"] asked by root (uid 0) on node 1 at the local socket',
        )
      ),
      logs.one.join("\n"),
    );
    assert.deepEqual((await ask({ node: 2, argv: ["uname"], timeoutMs: 5000 })).outcome, {
      kind: "exited",
      code: 0,
    });
    assert.deepEqual((await ask({ node: 2, argv: ["id"], timeoutMs: 5000 })).outcome, {
      kind: "refused",
      reason: 'Cannot run "id": exec_allow on this node does not allow it (exec_allow = uname)',
    });
    assert.ok(
      logs.two.some((l) =>
        l.startsWith('warning: exec: refused ["id"] asked by root (uid 0) on node 1 at 127.0.0.1')
      ),
    );
  });
});

Deno.test("service: only root asks, only with a key", async () => {
  await withTwoNodes({}, async (ask, logs, run2) => {
    await assert.rejects(
      ask({ node: 2, argv: ["true"], timeoutMs: 5000 }, 1000),
      /^Error: Cannot ask the nodes to run commands: Operation not permitted \(root only\)$/,
    );
    assert.equal(logs.two.length, 0, "node 2 was not asked");
    // A node that asks in another user's name is refused by the node that would run it.
    const client = await run2();
    try {
      const reply = await client.request(
        "exec.run",
        jsonBytes({ argv: ["true"], timeoutMs: 5000, uid: 1000, user: "someone" }),
      );
      assert.deepEqual(readResult(reply).outcome, {
        kind: "refused",
        reason: 'Cannot run "true": only root may ask (asked as uid 1000)',
      });
      await assert.rejects(
        client.request("exec.run", jsonBytes({ argv: [], timeoutMs: 5000, uid: 0, user: "root" })),
        /Cannot read the body of exec\.run: no command given/,
      );
    } finally {
      await client.close();
    }
  });
  const keyless = new ExecService({
    nodeId: 1,
    keyed: false,
    allow: ["*"],
    logger,
    clock: systemClock,
    connect: () => Promise.reject(new Error("not used")),
  });
  await assert.rejects(
    keyless.localHandlers().get("exec.ask")!(
      jsonBytes({ node: 1, argv: ["true"], timeoutMs: 1000 }),
      localPeer(0),
    ),
    /^Error: Cannot ask the nodes to run commands: om exec needs a cluster key/,
  );
  await assert.rejects(
    keyless.channelHandlers().get("exec.run")!(
      jsonBytes({ argv: ["true"], timeoutMs: 1000, uid: 0, user: "root" }),
      { address: "10.0.0.9", port: 1, nodeId: 9, authenticated: false },
    ),
    /^Error: Cannot run "exec\.run" on this node: om exec needs a cluster key/,
  );
});

Deno.test("service: a node not in the map, one that does not know exec.run, a time limit", async () => {
  await withTwoNodes({ serve2: false }, async (ask) => {
    assert.deepEqual((await ask({ node: 3, argv: ["true"], timeoutMs: 5000 })).outcome, {
      kind: "unreachable",
      reason: "node 3 is not in the cluster map",
    });
    assert.deepEqual((await ask({ node: 2, argv: ["true"], timeoutMs: 5000 })).outcome, {
      kind: "refused",
      reason: 'unknown command "exec.run"',
    });
  });
  await withTwoNodes({}, async (ask) => {
    const started = Date.now();
    const result = await ask({ node: 2, argv: ["sleep", "30"], timeoutMs: 300 });
    assert.deepEqual(result.outcome, { kind: "timeout", afterMs: 300 });
    assert.ok(Date.now() - started < 5000);
  });
});

Deno.test("service: at most maxRunning commands at once; one more is refused as busy", async () => {
  await withTwoNodes({ more2: { maxRunning: 1 } }, async (ask, _logs, _run2, running2) => {
    const first = ask({ node: 2, argv: ["sleep", "2"], timeoutMs: 5000 });
    // Once the first runs on node 2 (a loaded machine may take a while), one more is refused.
    await retryUntil(() => running2() === 1, 5000, { what: "the first command to run" });
    assert.deepEqual((await ask({ node: 2, argv: ["true"], timeoutMs: 5000 })).outcome, {
      kind: "refused",
      reason: 'Cannot run "true": busy, 1 commands run here now',
    });
    assert.deepEqual((await first).outcome, { kind: "exited", code: 0 });
    assert.deepEqual((await ask({ node: 2, argv: ["true"], timeoutMs: 5000 })).outcome, {
      kind: "exited",
      code: 0,
    });
  });
});

Deno.test("service: commands run without a cgroup are said once in the log", async () => {
  await withTwoNodes(
    { more2: { cgroup: () => Promise.resolve(undefined) } },
    async (ask, logs) => {
      for (let i = 0; i < 2; i++) {
        assert.deepEqual((await ask({ node: 2, argv: ["true"], timeoutMs: 5000 })).outcome, {
          kind: "exited",
          code: 0,
        });
      }
      const said = logs.two.filter((line) => /without a cgroup of their own/.test(line));
      assert.equal(said.length, 1, logs.two.join("\n"));
      assert.match(said[0], /^warning: .*what made a session of its own survives/);
    },
  );
});

Deno.test("service: a new exec_allow applies at once (SIGHUP)", async () => {
  await withTwoNodes({ allow1: [] }, async (ask) => {
    assert.equal((await ask({ node: 1, argv: ["true"], timeoutMs: 5000 })).outcome.kind, "refused");
  });
  const service = new ExecService({
    nodeId: 1,
    keyed: true,
    allow: [],
    logger,
    clock: systemClock,
    connect: () => Promise.reject(new Error("not used")),
  });
  const ask = async () =>
    readResult(
      await service.localHandlers().get("exec.ask")!(
        jsonBytes({ node: 1, argv: ["true"], timeoutMs: 5000 }),
        localPeer(0),
      ),
    ).outcome.kind;
  assert.equal(await ask(), "refused");
  service.setAllow(["true"]);
  assert.equal(await ask(), "exited");
  service.close();
});
