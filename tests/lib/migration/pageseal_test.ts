/**
 * The sealed page stream's records (lib/migration/pageseal.ts): the key schedule and the record
 * bytes pinned (PROTOCOL.md §11.1's example, checked against Python's HKDF and ChaCha20-Poly1305
 * when it was written), the cipher checked against RFC 8439, and every way a record can be
 * changed on the way failing to open, with nothing of it returned.
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import {
  derivePageKeys,
  hexBytes,
  isPageSecret,
  newPageSecret,
  PAGE_SEAL_LABELS,
  RECORD_DATA_MAX,
  RECORD_MAX_LENGTH,
  RECORD_MIN_LENGTH,
  RecordKind,
  recordLength,
  RecordOpener,
  RecordSealer,
  toHex,
} from "../../../lib/migration/pageseal.ts";
import { SealError, sealIv } from "../../../lib/channel/seal.ts";

const encoder = new TextEncoder();
const hex = (text: string) => Uint8Array.from(text.match(/../g)!, (b) => parseInt(b, 16));

/** PROTOCOL.md §11.1's example: secret 00 01 … 1f, token 32 × ab. */
const SECRET = toHex(Uint8Array.from({ length: 32 }, (_, i) => i));
const TOKEN = "ab".repeat(32);

/** A record's length field and its box. */
/** A record's length field and box, in a copy (a record opens in place). */
const split = (record: Uint8Array) => {
  const copy = record.slice();
  return [copy.subarray(0, 4), copy.subarray(4)] as const;
};

async function keys() {
  return await derivePageKeys(SECRET, TOKEN);
}

Deno.test("pageseal: the key schedule and the records, byte for byte", async () => {
  assert.deepEqual(PAGE_SEAL_LABELS, {
    sourceToTarget: "om-page-link source to target",
    targetToSource: "om-page-link target to source",
  });
  const { sourceToTarget, targetToSource } = await keys();
  assert.equal(
    toHex(sourceToTarget),
    "3451c1fd67ff33e7c6586baf774c1b203c8e2f5daa5089f3d99684c7ddfd69d5",
  );
  assert.equal(
    toHex(targetToSource),
    "fbca87222426cbbd0cbd8d5fed8c6fee07cc23c516b2145ec9229f51f2d83c65",
  );
  const sealer = new RecordSealer(sourceToTarget);
  assert.equal(
    toHex(sealer.seal(RecordKind.data, encoder.encode("pages"))),
    "00000016" + "6e071704c8bf" + "339fe13497faaed5290e1664c371b200",
  );
  assert.equal(
    toHex(sealer.seal(RecordKind.end)),
    "00000011" + "93" + "2b14719d6d248143cc1a3456a58ff63e",
  );
  assert.equal(sealer.count, 2);
  // The kinds are on the wire: they never change.
  assert.deepEqual(RecordKind, { data: 0, end: 1 });
  assert.equal(RECORD_MIN_LENGTH, 17);
  assert.equal(RECORD_MAX_LENGTH, 17 + (1 << 20));
});

Deno.test("pageseal: the cipher is RFC 8439's ChaCha20-Poly1305 (its section 2.8.2)", () => {
  const cipher = createCipheriv(
    "chacha20-poly1305",
    Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i),
    hex("070000004041424344454647"),
    { authTagLength: 16 },
  );
  const plaintext = encoder.encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
      "future, sunscreen would be it.",
  );
  cipher.setAAD(hex("50515253c0c1c2c3c4c5c6c7"), { plaintextLength: plaintext.length });
  const out = cipher.update(plaintext);
  cipher.final();
  assert.equal(toHex(out.subarray(0, 16)), "d31a8d34648e60db7b86afbc53ef7ec2");
  assert.equal(toHex(out.subarray(-4)), "c64b6116");
  assert.equal(toHex(cipher.getAuthTag()), "1ae10b594f09e26a7e902ecbd0600691");
});

Deno.test("pageseal: secrets are 64 fresh hex characters; a key per direction and link", async () => {
  const a = newPageSecret();
  assert.ok(isPageSecret(a), a);
  assert.notEqual(a, newPageSecret());
  assert.ok(!isPageSecret(a.toUpperCase()));
  assert.ok(!isPageSecret(a.slice(2)));
  assert.ok(!isPageSecret(7));
  assert.throws(() => hexBytes("xyz"), TypeError);
  const one = await keys();
  assert.notDeepEqual(one.sourceToTarget, one.targetToSource);
  const otherToken = await derivePageKeys(SECRET, "cd".repeat(32));
  assert.notDeepEqual(one.sourceToTarget, otherToken.sourceToTarget, "the token is in the keys");
});

Deno.test("pageseal: records open in order, once, to what was sealed", async () => {
  const { sourceToTarget } = await keys();
  const sealer = new RecordSealer(sourceToTarget);
  const opener = new RecordOpener(sourceToTarget);
  const big = crypto.getRandomValues(new Uint8Array(65536));
  const whole = new Uint8Array(RECORD_DATA_MAX);
  for (let at = 0; at < whole.length; at += big.length) whole.set(big, at);
  for (const data of [new Uint8Array(0), Uint8Array.of(7), whole]) {
    const opened = opener.open(...split(sealer.seal(RecordKind.data, data)));
    assert.equal(opened.kind, RecordKind.data);
    assert.deepEqual(opened.data, data);
  }
  assert.equal(opener.ended, false);
  assert.deepEqual(opener.open(...split(sealer.seal(RecordKind.end))), {
    kind: RecordKind.end,
    data: new Uint8Array(0),
  });
  assert.equal(opener.ended, true);
  assert.throws(() => sealer.seal(RecordKind.data), /the stream has ended/);
  assert.throws(
    () =>
      new RecordSealer(sourceToTarget).seal(RecordKind.data, new Uint8Array(RECORD_DATA_MAX + 1)),
    RangeError,
  );
  assert.throws(() => new RecordSealer(sourceToTarget).seal(RecordKind.end, Uint8Array.of(1)));
});

/** Whether opening `record` as the opener's next one fails with SealError matching `why`. */
function refused(opener: RecordOpener, record: Uint8Array, why: RegExp) {
  assert.throws(() => opener.open(...split(record)), (error: unknown) => {
    assert.ok(error instanceof SealError, String(error));
    assert.match(error.message, why);
    return true;
  });
}

Deno.test("pageseal: every truncation of a record, and a length out of bounds, fail it", async () => {
  const { sourceToTarget } = await keys();
  const record = new RecordSealer(sourceToTarget).seal(RecordKind.data, encoder.encode("pages"));
  for (let cut = 0; cut < record.length - 4; cut++) {
    refused(
      new RecordOpener(sourceToTarget),
      record.subarray(0, 4 + cut),
      /sealed record 0 did not open: (its length field does not match|its length \d+ is not)/,
    );
  }
  const field = (length: number) =>
    Uint8Array.of(length >>> 24, length >>> 16, length >>> 8, length);
  for (const length of [0, 16, RECORD_MAX_LENGTH + 1, 0xffffffff]) {
    assert.throws(() => recordLength(field(length), 3), /sealed record 3 did not open: its length/);
  }
  assert.equal(recordLength(field(RECORD_MAX_LENGTH), 0), RECORD_MAX_LENGTH);
});

Deno.test("pageseal: a flipped bit anywhere in a record fails it", async () => {
  const { sourceToTarget } = await keys();
  const record = new RecordSealer(sourceToTarget).seal(RecordKind.data, encoder.encode("pages"));
  for (let byte = 0; byte < record.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const changed = record.slice();
      changed[byte] ^= 1 << bit;
      refused(new RecordOpener(sourceToTarget), changed, /sealed record 0 did not open/);
    }
  }
});

Deno.test("pageseal: a record replayed, reordered, dropped, reflected, injected or after the end fails", async () => {
  const { sourceToTarget, targetToSource } = await keys();
  const sealer = new RecordSealer(sourceToTarget);
  const records = ["a", "b", "c"].map((text) => sealer.seal(RecordKind.data, encoder.encode(text)));
  const end = sealer.seal(RecordKind.end);
  const tampered = "it was altered, replayed, reordered, dropped or injected on the way";

  const replayed = new RecordOpener(sourceToTarget);
  replayed.open(...split(records[0]));
  refused(replayed, records[0], new RegExp(`sealed record 1 did not open: ${tampered}`));

  refused(new RecordOpener(sourceToTarget), records[1], /sealed record 0 did not open/);

  const dropped = new RecordOpener(sourceToTarget);
  dropped.open(...split(records[0]));
  refused(dropped, records[2], /sealed record 1 did not open/);

  // The source's own record sent back to it opens with neither of its keys.
  refused(new RecordOpener(targetToSource), records[0], /sealed record 0 did not open/);

  const forged = new Uint8Array(4 + 32);
  new DataView(forged.buffer).setUint32(0, 32);
  forged.set(crypto.getRandomValues(new Uint8Array(32)), 4);
  refused(new RecordOpener(sourceToTarget), forged, /sealed record 0 did not open/);

  const after = new RecordOpener(sourceToTarget);
  for (const record of [...records, end]) after.open(...split(record));
  refused(after, records[0], /sealed record 4 did not open: it came after the end record/);
});

Deno.test("pageseal: a record of a kind this version does not know fails it", async () => {
  const { sourceToTarget } = await keys();
  // Sealed with the right key and counter, as a later version might: kind 2.
  const length = Uint8Array.of(0, 0, 0, 17);
  const cipher = createCipheriv("chacha20-poly1305", sourceToTarget, sealIv(0), {
    authTagLength: 16,
  });
  cipher.setAAD(length, { plaintextLength: 1 });
  const box = new Uint8Array(17);
  box.set(cipher.update(Uint8Array.of(2)));
  cipher.final();
  box.set(cipher.getAuthTag(), 1);
  assert.throws(
    () => new RecordOpener(sourceToTarget).open(length, box),
    /sealed record 0 did not open: its kind 2 is not one of this version/,
  );
});
