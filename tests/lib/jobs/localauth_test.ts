import assert from "node:assert/strict";
import { type ChannelClient, connectChannel } from "../../../lib/channel/client.ts";
import { builtinHandlers, type Handler, serveChannel } from "../../../lib/channel/server.ts";
import { FakeClock, systemClock } from "../../../lib/base/clock.ts";
import type { Peer } from "../../../lib/channel/handshake.ts";
import {
  guardLocal,
  LOCAL_ACCESS,
  LocalAuthError,
  localFailure,
  LocalGuard,
  sessionUid,
} from "../../../lib/jobs/localauth.ts";
import { silentLogger as logger } from "../../../lib/base/log.ts";
import { createToken, prepareUsersDir } from "../../../lib/jobs/usertoken.ts";

const ROOT = Deno.uid() === 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (value: unknown) => encoder.encode(JSON.stringify(value));

/** A local socket with the guard: job 7 is root's, job 8 is uid 65534's. */
async function withGuarded(fn: (path: string, dir: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "om-localauth-test-" });
  const dir = `${root}/users`;
  prepareUsersDir(dir);
  const echo: Handler = (_body, peer) => Promise.resolve(json({ uid: sessionUid(peer) }));
  const server = serveChannel({
    path: `${root}/omdiscd.sock`,
    mode: 0o666,
    nodeId: 1,
    logger,
    handlers: guardLocal(
      new Map([
        ...builtinHandlers(1),
        ["job.run", echo],
        ["job.signal", echo],
        ["node.expel", echo],
        ["secret", echo],
      ]),
      { usersDir: dir, clock: systemClock, ownerOf: (id) => ({ 7: 0, 8: 65534 })[id] },
    ),
  });
  try {
    assert.equal((await Deno.lstat(`${root}/omdiscd.sock`)).mode! & 0o777, 0o666);
    await fn(`${root}/omdiscd.sock`, dir);
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
}

/** Authenticates as the owner of the token (chowned to `uid` first when given). */
async function auth(client: ChannelClient, dir: string, uid?: number): Promise<number> {
  const token = await createToken(dir);
  if (uid !== undefined) await Deno.chown(`${dir}/${token}`, uid, uid);
  return JSON.parse(decoder.decode(await client.request("auth", json({ token })))).uid;
}

const refusal = (client: ChannelClient, command: string, body: unknown) =>
  client.request(command, json(body)).then(
    () => "accepted",
    (error) => error.error as string,
  );

Deno.test("localauth: nothing before auth; a token once; then the user on every request", async () => {
  await withGuarded(async (path, dir) => {
    const client = await connectChannel({ path });
    try {
      assert.match(await refusal(client, "job.run", {}), /not authenticated \(send auth first\)/);
      assert.match(await refusal(client, "ping", {}), /not authenticated/);
      assert.match(
        await refusal(client, "auth", { token: "0123456789abcdef0123456789abcdef" }),
        /Cannot accept token .*no such file/,
      );
      assert.equal(await auth(client, dir), Deno.uid());
      assert.match(await refusal(client, "auth", { token: "x" }), /already uid/);
      // The session holds: the handler sees the same user on later requests.
      const reply = await client.request("job.run", json({}));
      assert.deepEqual(JSON.parse(decoder.decode(reply)), { uid: Deno.uid() });
    } finally {
      await client.close();
    }
  });
});

Deno.test({
  name: "localauth: a user runs and owns; another's job, root's commands are refused",
  ignore: !ROOT,
  fn: async () => {
    await withGuarded(async (path, dir) => {
      const user = await connectChannel({ path });
      const root = await connectChannel({ path });
      try {
        assert.equal(await auth(user, dir, 65534), 65534);
        assert.equal(await auth(root, dir), 0);
        assert.equal(await refusal(user, "job.run", {}), "accepted");
        assert.equal(await refusal(user, "job.signal", { id: 8, signal: "SIGINT" }), "accepted");
        assert.equal(
          await refusal(user, "job.signal", { id: 7, signal: "SIGINT" }),
          "Cannot signal job 7: Operation not permitted (it belongs to user root)",
        );
        // No such job: the handler says so (here it answers).
        assert.equal(await refusal(user, "job.signal", { id: 9 }), "accepted");
        assert.match(
          await refusal(user, "node.expel", {}),
          /Operation not permitted \(root only\)/,
        );
        // A command not in the table is root's.
        assert.equal(LOCAL_ACCESS["secret"], undefined);
        assert.match(await refusal(user, "secret", {}), /root only/);
        for (const command of ["job.signal", "node.expel", "secret"]) {
          assert.equal(await refusal(root, command, { id: 8 }), "accepted", command);
        }
      } finally {
        await user.close();
        await root.close();
      }
    });
  },
});

Deno.test({
  name:
    "localauth: past its connections a user's auth is refused; one that does not authenticate in time is closed",
  ignore: !ROOT,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "om-localauth-test-" });
    const dir = `${root}/users`;
    prepareUsersDir(dir);
    // The guard as the server drives it: told of each connection, asked to close some.
    const clock = new FakeClock(Date.now());
    const guard = new LocalGuard({
      usersDir: dir,
      clock,
      ownerOf: () => undefined,
      maxConnectionsPerUser: 2,
      authTimeoutMs: 5000,
      maxPending: 4,
    });
    const auth = guard.wrap(builtinHandlers(1)).get("auth")!;
    const closed: string[] = [];
    const open = (name: string) => {
      const peer: Peer = {
        address: "local",
        port: 0,
        nodeId: 0,
        authenticated: false,
        session: new Map(),
      };
      const gone = guard.connected(peer, (reason) => closed.push(`${name}: ${reason}`));
      return { peer, gone };
    };
    const login = async (peer: Peer, uid: number) => {
      const token = await createToken(dir);
      await Deno.chown(`${dir}/${token}`, uid, uid);
      return JSON.parse(decoder.decode(await auth(json({ token }), peer))).uid;
    };
    try {
      const [a, b, c, idle] = ["a", "b", "c", "idle"].map(open);
      assert.equal(await login(a.peer, 65534), 65534);
      assert.equal(await login(b.peer, 65534), 65534);
      await assert.rejects(
        login(c.peer, 65534),
        new Error(
          "Cannot authenticate: user nobody has 2 connections open, the most one user may have",
        ),
      );
      assert.equal(sessionUid(c.peer), undefined);
      // Other users, root among them, are served.
      assert.equal(await login(open("other").peer, 1), 1);
      for (let i = 0; i < 3; i++) assert.equal(await login(open(`root${i}`).peer, 0), 0);
      assert.deepEqual(guard.stats, {
        connectionsRefused: 1,
        authTimeouts: 0,
        tokensRefused: 0,
        pendingClosed: 0,
      });
      // Time is up for those that did not authenticate (the refused one too): they are closed.
      clock.advance(5000);
      assert.deepEqual(closed.sort(), [
        "c: Cannot serve this connection: no auth within 5000 ms",
        "idle: Cannot serve this connection: no auth within 5000 ms",
      ]);
      assert.equal(guard.stats.authTimeouts, 2);
      c.gone();
      idle.gone();
      // One of the user's connections closes: the user may open another.
      a.gone();
      assert.equal(guard.connectionsOf(65534), 1);
      assert.equal(await login(open("d").peer, 65534), 65534);
      assert.equal(guard.connectionsOf(65534), 2);
      b.gone();
      assert.equal(guard.connectionsOf(65534), 1);
      // A flood of connections that never authenticate: past 4 waiting, the oldest is closed,
      // and a client that authenticates at once is served all the same.
      closed.length = 0;
      const flood = ["f1", "f2", "f3", "f4", "f5", "f6"].map(open);
      assert.deepEqual(closed, [
        "f1: Cannot serve this connection: 4 others wait to authenticate",
        "f2: Cannot serve this connection: 4 others wait to authenticate",
      ]);
      assert.equal(guard.stats.pendingClosed, 2);
      assert.equal(await login(open("prompt").peer, 1), 1);
      for (const connection of flood) connection.gone();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("localauth: what a command says when it cannot reach or is refused by its daemon", () => {
  assert.equal(
    localFailure(new Deno.errors.NotFound("connect"), "/run/om"),
    "Cannot reach om discover at /run/om/omdiscd.sock: is it running?",
  );
  assert.equal(
    localFailure(new LocalAuthError("Cannot use the local socket: too many tokens"), "/run/om"),
    "Cannot use the local socket: too many tokens",
  );
});
