import assert from "node:assert/strict";
import { type ChannelClient, connectChannel } from "../../../lib/channel/client.ts";
import { builtinHandlers, type Handler, serveChannel } from "../../../lib/channel/server.ts";
import { systemClock } from "../../../lib/base/clock.ts";
import { guardLocal, LOCAL_ACCESS, sessionUid } from "../../../lib/jobs/localauth.ts";
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
