/**
 * lib/channel/seal.ts: the key schedule and the cipher pinned against node:crypto's own HKDF and
 * AES-256-GCM (an independent implementation, the layout written out by hand from PROTOCOL.md
 * §8.7), the IV's counter, and every way a frame must fail to open: each bit flipped, replayed,
 * reordered, dropped, reflected back to its sender, or sealed for another connection.
 */
import assert from "node:assert/strict";
import { createCipheriv, hkdfSync } from "node:crypto";
import {
  deriveSeal,
  Seal,
  SEAL_IV_SIZE,
  SEAL_LABELS,
  SEAL_TAG_SIZE,
  SealError,
  sealIv,
  type SessionParams,
} from "../../../lib/channel/seal.ts";
import { importKey } from "../../../lib/base/key.ts";

const run = (from: number, n: number) =>
  Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
};

const KEY = run(0x33, 32);
const PARAMS: SessionParams = {
  version: 2,
  nonces: { client: run(0x10, 32), server: run(0x90, 32) },
  clientNode: 0x0adc,
  serverNode: 7,
};
const HEADER = new Uint8Array([0, 0, 0, 0x1d, 0x07]);
const PLAIN = new TextEncoder().encode("04 seq ping body");

/** One direction's key and the sealed bytes of `counter`, computed by node:crypto alone. */
function expected(label: string, counter: number, plain: Uint8Array, header: Uint8Array) {
  const key = new Uint8Array(
    hkdfSync(
      "sha256",
      KEY,
      cat(PARAMS.nonces.client, PARAMS.nonces.server),
      cat(new TextEncoder().encode(label), u16(2), u16(0x0adc), u16(7)),
      32,
    ),
  );
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setUint32(8, counter);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(header);
  return cat(cipher.update(plain), cipher.final(), cipher.getAuthTag());
}

Deno.test("seal: the labels, the IV and the tag are pinned", () => {
  assert.deepEqual(SEAL_LABELS, {
    clientToServer: "om-channel-seal client to server",
    serverToClient: "om-channel-seal server to client",
  });
  assert.equal(SEAL_IV_SIZE, 12);
  assert.equal(SEAL_TAG_SIZE, 16);
  assert.equal(hex(sealIv(0)), "000000000000000000000000");
  assert.equal(hex(sealIv(1)), "000000000000000000000001");
  assert.equal(hex(sealIv(2 ** 32 + 5)), "000000000000000100000005");
});

Deno.test("seal: keys and sealed bytes match HKDF-SHA-256 and AES-256-GCM of node:crypto", async () => {
  const key = await importKey(KEY);
  const client = await deriveSeal(key, "client", PARAMS);
  const server = await deriveSeal(key, "server", PARAMS);
  // Each side seals under its own direction's key, counting from 0.
  for (let counter = 0; counter < 3; counter++) {
    const fromClient = await client.seal(PLAIN, HEADER);
    assert.equal(
      hex(fromClient),
      hex(expected(SEAL_LABELS.clientToServer, counter, PLAIN, HEADER)),
      `client frame ${counter}`,
    );
    assert.deepEqual(await server.open(fromClient, HEADER), PLAIN);
    const fromServer = await server.seal(PLAIN, HEADER);
    assert.equal(
      hex(fromServer),
      hex(expected(SEAL_LABELS.serverToClient, counter, PLAIN, HEADER)),
      `server frame ${counter}`,
    );
    assert.deepEqual(await client.open(fromServer, HEADER), PLAIN);
  }
});

/** A seal whose two directions share one key, fresh (both counters at 0). */
async function loopSeal(bytes = KEY): Promise<() => Seal> {
  const key = await crypto.subtle.importKey("raw", bytes, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return () => new Seal({ send: key, receive: key });
}

Deno.test("seal: every single bit flipped, in the ciphertext, the tag or the header, fails", async () => {
  const fresh = await loopSeal();
  const box = await fresh().seal(PLAIN, HEADER);
  assert.deepEqual(await fresh().open(box, HEADER), PLAIN, "untouched, it opens");
  for (let bit = 0; bit < (box.length + HEADER.length) * 8; bit++) {
    const [b, h] = [box.slice(), HEADER.slice()];
    const at = bit >> 3;
    if (at < box.length) b[at] ^= 1 << (bit & 7);
    else h[at - box.length] ^= 1 << (bit & 7);
    await assert.rejects(fresh().open(b, h), SealError, `bit ${bit}`);
  }
  await assert.rejects(fresh().open(box.subarray(0, 15), HEADER), /too short to hold a tag/);
});

Deno.test("seal: a frame replayed, reordered, dropped or reflected does not open", async () => {
  const fresh = await loopSeal();
  const sender = fresh();
  const [f0, f1, f2] = [
    await sender.seal(run(1, 8), HEADER),
    await sender.seal(run(2, 8), HEADER),
    await sender.seal(run(3, 8), HEADER),
  ];
  const tampered =
    /sealed frame 1 did not open: it was altered, replayed, reordered, dropped or injected on the way/;
  // Replayed: frame 0 again where frame 1 is due.
  const replay = fresh();
  await replay.open(f0, HEADER);
  await assert.rejects(replay.open(f0, HEADER), tampered);
  // Reordered: frame 1 and 0 swapped.
  await assert.rejects(fresh().open(f1, HEADER), /sealed frame 0 did not open/);
  // Dropped: frame 1 never comes, frame 2 does.
  const drop = fresh();
  await drop.open(f0, HEADER);
  await assert.rejects(drop.open(f2, HEADER), tampered);
  // Reflected: a side's own frame sent back to it opens under the other direction's key: no.
  const key = await importKey(KEY);
  const client = await deriveSeal(key, "client", PARAMS);
  const own = await client.seal(PLAIN, HEADER);
  await assert.rejects(client.open(own, HEADER), SealError);
});

Deno.test("seal: another connection's nonces, node ids, version or key give other keys", async () => {
  const key = await importKey(KEY);
  const box = await (await deriveSeal(key, "client", PARAMS)).seal(PLAIN, HEADER);
  assert.deepEqual(await (await deriveSeal(key, "server", PARAMS)).open(box, HEADER), PLAIN);
  const others: [string, SessionParams, Uint8Array][] = [
    ["client nonce", { ...PARAMS, nonces: { ...PARAMS.nonces, client: run(0x11, 32) } }, KEY],
    ["server nonce", { ...PARAMS, nonces: { ...PARAMS.nonces, server: run(0x91, 32) } }, KEY],
    ["client node", { ...PARAMS, clientNode: 0x0add }, KEY],
    ["server node", { ...PARAMS, serverNode: 8 }, KEY],
    ["version", { ...PARAMS, version: 3 }, KEY],
    ["key", PARAMS, run(0x34, 32)],
  ];
  for (const [what, params, bytes] of others) {
    const server = await deriveSeal(await importKey(bytes), "server", params);
    await assert.rejects(server.open(box, HEADER), SealError, what);
  }
});

Deno.test("seal: the example of PROTOCOL.md §8.7, byte for byte", async () => {
  const fromHex = (text: string) =>
    new Uint8Array(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
  const params: SessionParams = {
    version: 2,
    nonces: { client: new Uint8Array(32).fill(0xc1), server: new Uint8Array(32).fill(0x5e) },
    clientNode: 3,
    serverNode: 7,
  };
  const key = await importKey(run(0, 32));
  const client = await deriveSeal(key, "client", params);
  const server = await deriveSeal(key, "server", params);
  const request = fromHex("04 00000001 04 70696e67 6869");
  const requestHeader = fromHex("0000001d 07");
  assert.equal(
    hex(cat(requestHeader, await client.seal(request, requestHeader))),
    "0000001d07a6862f4ba910ad87674432e382c3ec432d17c19ca940c0eab01203a2",
  );
  const reply = fromHex("05 00000001 0000 6869");
  const replyHeader = fromHex("0000001a 07");
  assert.equal(
    hex(cat(replyHeader, await server.seal(reply, replyHeader))),
    "0000001a07835ab0c18d4278715be84b48e13e066c8909569047a397a43f",
  );
});
