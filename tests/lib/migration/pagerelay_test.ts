/**
 * The relay at each end of a page link (lib/migration/pagerelay.ts), for real on loopback: the
 * relay here plays a target's, between its local end (the page server's socket) and the other
 * node (the source), both played by the test. What comes sealed goes out opened, record by
 * record, and only records that opened; every cut, flipped bit, replayed, reordered, dropped or
 * injected record, a missing end record, a silent peer and a local end that stops reading end the
 * relay with a reason.
 */
import assert from "node:assert/strict";
import {
  derivePageKeys,
  newPageSecret,
  type PageKeys,
  RECORD_HEADER_SIZE,
  RecordKind,
  recordLength,
  RecordOpener,
  RecordSealer,
} from "../../../lib/migration/pageseal.ts";
import { type PageRelay, PageRelayError, relayPages } from "../../../lib/migration/pagerelay.ts";
import { newPageToken } from "../../../lib/migration/pagelink.ts";
import { concat } from "../../tools/sealedpages.ts";

const encoder = new TextEncoder();

/** Two ends of one loopback TCP connection. */
async function pair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  return [a, b];
}

/** Every byte `conn` gives until its end (or until it breaks). */
async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(1 << 16);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return concat(...parts);
    parts.push(buffer.slice(0, n));
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array) {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** A target's relay under test, its local end, the other node, and the link's keys. */
async function setUp(
  options: { silenceMs?: number; heartbeatMs?: number; keys?: PageKeys } = {},
) {
  const keys = options.keys ?? await derivePageKeys(newPageSecret(), newPageToken());
  const [plain, local] = await pair();
  const [sealed, other] = await pair();
  const relay = relayPages(plain, sealed, {
    send: keys.targetToSource,
    receive: keys.sourceToTarget,
    peer: "the source",
    local: "the page server",
    silenceMs: options.silenceMs,
    heartbeatMs: options.heartbeatMs,
  });
  const close = () => {
    for (const conn of [local, other]) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  return { keys, relay, local, other, close };
}

/** The source's records of `texts`, and its end record, each on its own. */
function records(key: Uint8Array, texts: string[]): Uint8Array[] {
  const sealer = new RecordSealer(key);
  return [
    ...texts.map((text) => sealer.seal(RecordKind.data, encoder.encode(text))),
    sealer.seal(RecordKind.end),
  ];
}

/** The records in `bytes`, opened with `key`: their data, and whether the end came. */
function opened(key: Uint8Array, sealed: Uint8Array) {
  const bytes = sealed.slice(); // records open in place
  const opener = new RecordOpener(key);
  const data: Uint8Array[] = [];
  let empty = 0;
  for (let at = 0; at < bytes.length && !opener.ended;) {
    const field = bytes.subarray(at, at + RECORD_HEADER_SIZE);
    const length = recordLength(field, opener.counter);
    const record = opener.open(field, bytes.subarray(at + 4, at + 4 + length));
    if (record.kind === RecordKind.data && record.data.length === 0) empty++;
    else if (record.kind === RecordKind.data) data.push(record.data);
    at += 4 + length;
  }
  return { data: concat(...data), ended: opener.ended, heartbeats: empty };
}

/** The relay's failure (it must fail). */
async function failure(relay: PageRelay): Promise<PageRelayError> {
  const error = await relay.done.then(() => undefined, (e) => e);
  assert.ok(error instanceof PageRelayError, `the relay failed: ${error}`);
  return error;
}

Deno.test("pagerelay: the peer's records come out opened, the local end's go sealed, and both end", async () => {
  const { keys, relay, local, other } = await setUp();
  // 3 MiB and a bit, in records of at most 1 MiB, as a source sends them.
  const pages = crypto.getRandomValues(new Uint8Array(65536));
  const stream = new Uint8Array(3 * (1 << 20) + 100);
  for (let at = 0; at < stream.length; at += pages.length) {
    stream.set(pages.subarray(0, stream.length - at), at);
  }
  const sealer = new RecordSealer(keys.sourceToTarget);
  const received = readAll(local);
  for (let at = 0; at < stream.length; at += 1 << 20) {
    await writeAll(other, sealer.seal(RecordKind.data, stream.subarray(at, at + (1 << 20))));
  }
  await writeAll(other, sealer.seal(RecordKind.end));
  assert.deepEqual(await received, stream, "every byte, in order, and then the end");
  // The page server answers and ends: its answer goes sealed, then the end record.
  await writeAll(local, encoder.encode("answer"));
  await local.closeWrite();
  const back = await readAll(other);
  await relay.done;
  assert.equal(new TextDecoder().decode(opened(keys.targetToSource, back).data), "answer");
  assert.ok(opened(keys.targetToSource, back).ended);
  assert.ok(!new TextDecoder().decode(back).includes("answer"), "nothing in clear");
  local.close();
  other.close();
});

Deno.test("pagerelay: every cut of the peer's stream fails the relay; only whole records get through", async () => {
  const keys = await derivePageKeys(newPageSecret(), newPageToken());
  const parts = records(keys.sourceToTarget, ["aaa", "bbbb"]);
  const stream = concat(...parts);
  // Where each record ends in the stream: what is through once it has.
  const ends = parts.map((_, i) => concat(...parts.slice(0, i + 1)).length);
  for (let cut = 0; cut < stream.length; cut++) {
    const { error, got } = await deliverWith(keys, stream.subarray(0, cut));
    const whole = ends.filter((end) => end <= cut).length;
    assert.equal(got, ["", "aaa", "aaabbbb", "aaabbbb"][whole], `cut at ${cut}`);
    assert.equal(error.side, "peer");
    assert.match(
      error.message,
      cut === 0 || ends.includes(cut)
        ? /the page link from the source ended before its end record: it was cut short/
        : /ended in the middle of record \d: it was cut short on the way/,
      `cut at ${cut}`,
    );
  }
});

/**
 * What the local end gets, and how the relay fails, when the other node sends `bytes` under the
 * link's `keys` and ends the connection.
 */
async function deliverWith(keys: PageKeys, bytes: Uint8Array) {
  const { relay, local, other, close } = await setUp({ keys });
  const received = readAll(local);
  await writeAll(other, bytes).catch(() => {});
  await other.closeWrite().catch(() => {});
  const error = await failure(relay);
  const got = new TextDecoder().decode(await received);
  close();
  return { error, got };
}

Deno.test("pagerelay: a flipped bit anywhere in the stream fails the relay at that record", async () => {
  const keys = await derivePageKeys(newPageSecret(), newPageToken());
  const parts = records(keys.sourceToTarget, ["aaa", "bbbb"]);
  const stream = concat(...parts);
  const ends = parts.map((_, i) => concat(...parts.slice(0, i + 1)).length);
  for (let byte = 0; byte < stream.length; byte++) {
    const changed = stream.slice();
    changed[byte] ^= 0x10;
    const { error, got } = await deliverWith(keys, changed);
    const before = ends.filter((end) => end <= byte).length;
    assert.equal(got, ["", "aaa", "aaabbbb"][before], `bit flipped in byte ${byte}`);
    assert.equal(error.side, "peer");
    // A length field changed within its bounds waits for bytes that never come: a cut.
    assert.match(
      error.message,
      new RegExp(`sealed record ${before} did not open|in the middle of record ${before}`),
      `byte ${byte}`,
    );
  }
});

Deno.test("pagerelay: a record replayed, reordered, dropped or injected fails the relay there", async () => {
  const keys = await derivePageKeys(newPageSecret(), newPageToken());
  const [a, b, c, end] = records(keys.sourceToTarget, ["aaa", "bbbb", "cc"]);
  const forged = new Uint8Array(4 + 40);
  new DataView(forged.buffer).setUint32(0, 40);
  forged.set(crypto.getRandomValues(new Uint8Array(40)), 4);
  const cases: [string, Uint8Array[], string, number][] = [
    ["replayed", [a, b, b, c, end], "aaabbbb", 2],
    ["reordered", [a, c, b, end], "aaa", 1],
    ["dropped", [a, c, end], "aaa", 1],
    ["injected", [a, forged, b, c, end], "aaa", 1],
    ["after the end", [a, b, c, end, a], "aaabbbbcc", -1],
  ];
  for (const [what, sent, through, at] of cases) {
    if (at < 0) {
      // Nothing is read after the end record: the relay ends well, with what came before it.
      const { relay, local, other, close } = await setUp({ keys });
      const received = readAll(local);
      await writeAll(other, concat(...sent));
      await other.closeWrite();
      assert.equal(new TextDecoder().decode(await received), through, what);
      local.close();
      await relay.done;
      close();
      continue;
    }
    const { error, got } = await deliverWith(keys, concat(...sent));
    assert.equal(got, through, what);
    assert.match(error.message, new RegExp(`sealed record ${at} did not open`), what);
  }
});

Deno.test("pagerelay: a missing end record fails the relay, whatever came before", async () => {
  const keys = await derivePageKeys(newPageSecret(), newPageToken());
  const [a, b] = records(keys.sourceToTarget, ["aaa", "bbbb"]);
  const { error, got } = await deliverWith(keys, concat(a, b));
  assert.equal(got, "aaabbbb");
  assert.match(error.message, /ended before its end record: it was cut short on the way/);
});

Deno.test("pagerelay: a silent peer fails the relay; heartbeats keep a quiet one alive", async () => {
  // Nothing at all from the other node.
  const silent = await setUp({ silenceMs: 400, heartbeatMs: 100 });
  const started = performance.now();
  const error = await failure(silent.relay);
  const took = performance.now() - started;
  assert.match(error.message, /nothing came from the source on the page link for 400 ms/);
  assert.equal(error.side, "peer");
  assert.ok(took >= 390 && took < 3000, `failed after ${took} ms`);
  silent.close();

  // A quiet node that sends its heartbeats for 1.2 s, then its pages and its end.
  const { keys, relay, local, other, close } = await setUp({ silenceMs: 400, heartbeatMs: 100 });
  const back = readAll(other);
  const received = readAll(local);
  const sealer = new RecordSealer(keys.sourceToTarget);
  for (let i = 0; i < 12; i++) {
    await writeAll(other, sealer.seal(RecordKind.data));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await writeAll(other, sealer.seal(RecordKind.data, encoder.encode("pages")));
  await writeAll(other, sealer.seal(RecordKind.end));
  assert.equal(new TextDecoder().decode(await received), "pages");
  local.close();
  await relay.done;
  // Its own local end was quiet all along: it sent heartbeats meanwhile.
  const answers = opened(keys.targetToSource, await back);
  assert.ok(answers.heartbeats >= 5, `${answers.heartbeats} heartbeats`);
  assert.ok(answers.ended);
  close();
});

Deno.test("pagerelay: a local end that stops reading fails the relay", async () => {
  const { keys, relay, local, other, close } = await setUp({ silenceMs: 400, heartbeatMs: 100 });
  // 32 MiB for a page server that reads nothing: the socket buffers fill, the relay's write
  // makes no progress.
  const sealer = new RecordSealer(keys.sourceToTarget);
  const chunk = new Uint8Array(1 << 20);
  const sending = (async () => {
    for (let i = 0; i < 32; i++) await writeAll(other, sealer.seal(RecordKind.data, chunk));
  })().catch(() => {});
  const back = readAll(other);
  const error = await failure(relay);
  assert.equal(error.side, "local");
  assert.match(error.message, /the page server took nothing of the page link for 400 ms/);
  await sending;
  await back;
  local.close();
  close();
});

Deno.test("pagerelay: abort ends it at once, both connections closed", async () => {
  const { relay, local, other, close } = await setUp();
  relay.abort("the page server was stopped");
  const error = await failure(relay);
  assert.equal(error.message, "the page server was stopped");
  assert.equal((await readAll(local)).length, 0);
  assert.equal((await readAll(other)).length, 0);
  close();
});
