/**
 * The page link's two perl ends, for real on loopback (no CRIU needed): the token admits the
 * connection, a connection without it is closed unread, the commands get the socket as stdin.
 */
import assert from "node:assert/strict";
import {
  connectorArgs,
  DUMP_GATE,
  isPageToken,
  linkPages,
  listenerArgs,
  listenForPages,
  newPageToken,
  PAGE_CONNECTOR,
  PAGE_LINK_FAILED,
  PAGE_LINK_SILENCE_MS,
  PAGE_LISTENER,
  PageLinkError,
} from "../../../lib/migration/pagelink.ts";
import { tempDir } from "../../tools/tempdir.ts";

const encoder = new TextEncoder();

Deno.test("pagelink: tokens are 64 fresh hex characters", () => {
  const a = newPageToken();
  assert.ok(isPageToken(a), a);
  assert.notEqual(a, newPageToken());
  assert.ok(!isPageToken(a.toUpperCase()));
  assert.ok(!isPageToken(a.slice(1)));
  assert.ok(!isPageToken(42));
});

Deno.test("pagelink: the argv of both ends, and what they refuse", () => {
  const t = "ab".repeat(32);
  assert.deepEqual(
    connectorArgs(["criu", "dump"], { hostname: "10.0.0.2", port: 4000, token: t }),
    ["-e", PAGE_CONNECTOR, "10.0.0.2", "4000", t, "", "criu", "dump"],
  );
  assert.deepEqual(
    connectorArgs(["criu"], { hostname: "h", port: 1, token: t }, "/m/1-out/gate").slice(2, 7),
    ["h", "1", t, "/m/1-out/gate", "criu"],
  );
  assert.throws(
    () => connectorArgs(["x"], { hostname: "h", port: 1, token: t }, "gate"),
    RangeError,
  );
  assert.deepEqual(listenerArgs(["criu", "page-server"], { token: t, seconds: 5 }), [
    "-e",
    PAGE_LISTENER,
    t,
    "5",
    "criu",
    "page-server",
  ]);
  assert.throws(() => connectorArgs(["x"], { hostname: "h", port: 0, token: t }), RangeError);
  assert.throws(() => connectorArgs(["x"], { hostname: "h", port: 1, token: "xyz" }), TypeError);
  assert.throws(() => listenerArgs(["x"], { token: "AB".repeat(32) }), TypeError);
});

Deno.test("pagelink: only the connection with the token reaches the command", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const token = newPageToken();
  // The target's command stores what arrives on its stdin (the socket).
  const listener = await listenForPages(["sh", "-c", `cat > ${dir}/got`], { token });
  // A stranger first: a wrong token, then data; it gets nothing and is closed.
  const stranger = await Deno.connect({ hostname: "127.0.0.1", port: listener.port });
  await stranger.write(encoder.encode("0".repeat(64) + "forged pages"));
  // Closed with its bytes unread: an end of stream, or a reset for the unread bytes.
  const answer = await stranger.read(new Uint8Array(16)).catch((e) =>
    e instanceof Deno.errors.ConnectionReset ? null : Promise.reject(e)
  );
  assert.equal(answer, null, "the stranger's connection is closed, with nothing said");
  stranger.close();
  // The source's end: linked first, its command runs (and writes to the socket) at the go.
  const link = await linkPages(
    ["sh", "-c", `printf 'the pages' >&0; echo ran > ${dir}/ran`],
    { hostname: "127.0.0.1", port: listener.port, token },
  );
  assert.equal(await Deno.stat(`${dir}/ran`).catch(() => null), null, "nothing ran before go");
  assert.equal((await link.go()).code, 0);
  assert.equal((await listener.child.status).code, 0);
  assert.equal(await Deno.readTextFile(`${dir}/got`), "the pages");
});

/** A command that writes its stdin socket's keepalive options and TCP_USER_TIMEOUT to `file`. */
const socketOptions = (file: string) => [
  "perl",
  "-e",
  "use Socket qw(SOL_SOCKET SO_KEEPALIVE IPPROTO_TCP TCP_KEEPIDLE TCP_KEEPINTVL TCP_USER_TIMEOUT); " +
  "my @o = map { unpack('i', getsockopt(STDIN, $_->[0], $_->[1])) } " +
  "([SOL_SOCKET, SO_KEEPALIVE], [IPPROTO_TCP, TCP_KEEPIDLE], [IPPROTO_TCP, TCP_KEEPINTVL], " +
  "[IPPROTO_TCP, TCP_USER_TIMEOUT]); open(my $f, '>', $ARGV[0]) or die; print $f \"@o\"",
  file,
];

Deno.test("pagelink: neither end waits for good on a silent peer", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const token = newPageToken();
  const listener = await listenForPages(socketOptions(`${dir}/target`), { token });
  const link = await linkPages(socketOptions(`${dir}/source`), {
    hostname: "127.0.0.1",
    port: listener.port,
    token,
  });
  assert.equal((await link.go()).code, 0);
  assert.equal((await listener.child.status).code, 0);
  // Both ends probe a silent peer (keepalive after 5 s, then every 2 s) and give up on
  // unanswered bytes or probes, or a window shut, after PAGE_LINK_SILENCE_MS.
  const expected = `1 5 2 ${PAGE_LINK_SILENCE_MS}`;
  assert.equal(await Deno.readTextFile(`${dir}/target`), expected);
  assert.equal(await Deno.readTextFile(`${dir}/source`), expected);
});

Deno.test("pagelink: the connector exits with its command's status, or 124 when cancelled", async () => {
  const token = newPageToken();
  const listener = await listenForPages(["cat"], { token });
  const link = await linkPages(["sh", "-c", "exit 3"], {
    hostname: "127.0.0.1",
    port: listener.port,
    token,
  });
  assert.equal((await link.go()).code, 3);
  assert.equal((await listener.child.status).code, 0, "cat saw the end of the connection");

  const second = newPageToken();
  const other = await listenForPages(["cat"], { token: second });
  const cancelled = await linkPages(["sh", "-c", "exit 0"], {
    hostname: "127.0.0.1",
    port: other.port,
    token: second,
  });
  assert.equal((await cancelled.cancel()).code, PAGE_LINK_FAILED);
  assert.equal((await other.child.status).code, 0, "the link ended with nothing sent");
});

Deno.test("pagelink: a gated command starts at once, waits at its gate, and goes on at the go", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  const token = newPageToken();
  const listener = await listenForPages(["sh", "-c", `cat > ${dir}/got`], { token });
  const gate = `${dir}/gate`;
  const link = await linkPages(
    [
      "sh",
      "-c",
      `echo "$OM_GATE" > ${dir}/started; read -r go < "$OM_GATE" && [ "$go" = go ] && ` +
      `printf 'the pages' >&0 && echo ran > ${dir}/ran`,
    ],
    { hostname: "127.0.0.1", port: listener.port, token },
    { gate },
  );
  // Linked: the command runs and holds the gate open, and waits there.
  assert.equal(await Deno.readTextFile(`${dir}/started`), `${gate}\n`);
  assert.ok((await Deno.stat(gate)).isFifo, "the gate is a FIFO");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(await Deno.stat(`${dir}/ran`).catch(() => null), null, "nothing ran before go");
  assert.equal((await link.go()).code, 0);
  assert.equal((await listener.child.status).code, 0);
  assert.equal(await Deno.readTextFile(`${dir}/got`), "the pages");
  assert.equal(await Deno.stat(gate).catch(() => null), null, "the gate is removed");

  // Cancelled: the gate says no, the command gives up, the connector exits 124.
  const second = newPageToken();
  const other = await listenForPages(["cat"], { token: second });
  const cancelled = await linkPages(
    ["sh", "-c", `read -r go < "$OM_GATE"; echo "$go" > ${dir}/said; [ "$go" = go ]`],
    { hostname: "127.0.0.1", port: other.port, token: second },
    { gate },
  );
  assert.equal((await cancelled.cancel()).code, PAGE_LINK_FAILED);
  assert.equal(await Deno.readTextFile(`${dir}/said`), "no\n");
  assert.equal((await other.child.status).code, 0);
  assert.equal(await Deno.stat(gate).catch(() => null), null, "the gate is removed");

  // A command that ends before its gate: no link, and its status says why.
  const third = newPageToken();
  const last = await listenForPages(["cat"], { token: third });
  const error = await linkPages(
    ["sh", "-c", "exit 7"],
    { hostname: "127.0.0.1", port: last.port, token: third },
    { gate },
  ).then(() => undefined, (e) => e);
  assert.ok(error instanceof PageLinkError, String(error));
  assert.equal(error.exitCode, 7);
  assert.match(error.message, /it ended first \(exit code 7\)/);
  await last.child.status;
});

Deno.test("pagelink: criu's dump gate waits at pre-dump only, and passes only a go", async () => {
  await using tmp = await tempDir("pagelink");
  const dir = tmp.path;
  await Deno.writeTextFile(`${dir}/gate.sh`, DUMP_GATE, { mode: 0o700 });
  const gate = async (action: string, says: string) => {
    await Deno.writeTextFile(`${dir}/gate`, says);
    const env = { CRTOOLS_SCRIPT_ACTION: action, OM_GATE: `${dir}/gate` };
    return (await new Deno.Command(`${dir}/gate.sh`, { env }).output()).code;
  };
  assert.equal(await gate("pre-dump", "go\n"), 0);
  assert.equal(await gate("pre-dump", "no\n"), 1);
  assert.equal(await gate("pre-dump", ""), 1, "the end of the gate is no go");
  assert.equal(await gate("post-dump", ""), 0, "other steps pass at once");
});

Deno.test("pagelink: the listener gives up when nobody brings the token", async () => {
  const listener = await listenForPages(["true"], { token: newPageToken(), seconds: 1 });
  assert.equal((await listener.child.status).code, 124);
});

Deno.test("pagelink: no link when nobody listens", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  await assert.rejects(
    () => linkPages(["true"], { hostname: "127.0.0.1", port, token: newPageToken() }),
    /Cannot make the page link to 127\.0\.0\.1:\d+: it ended first \(exit code 124\)/,
  );
});
