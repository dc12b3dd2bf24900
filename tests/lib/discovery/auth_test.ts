import assert from "node:assert/strict";
import { ReplayGuard, seal, Sequencer, TRAILER_SIZE, unseal } from "../../../lib/discovery/auth.ts";
import { importKey, newKeyText, parseKeyText } from "../../../lib/base/key.ts";
import type { WireError } from "../../../lib/base/wireerror.ts";

const key = async () => await importKey(parseKeyText(newKeyText(), "k"));

Deno.test("auth: a sealed datagram opens with the same key, not with another", async () => {
  const a = await key();
  const b = await key();
  const body = new Uint8Array(53).fill(7);
  const sealed = await seal(a, body, 1_700_000_000_000_000);
  assert.equal(sealed.length, 53 + TRAILER_SIZE);
  const opened = await unseal(a, sealed);
  assert.deepEqual(opened.body, body);
  assert.equal(opened.seq, 1_700_000_000_000_000);
  await assert.rejects(unseal(b, sealed), (e: WireError) => e.reason === "auth");
  for (const offset of [0, 52, 53, 60, sealed.length - 1]) {
    const tampered = sealed.slice();
    tampered[offset] ^= 1;
    await assert.rejects(unseal(a, tampered), (e: WireError) => e.reason === "auth", `${offset}`);
  }
  await assert.rejects(unseal(a, sealed.subarray(0, 24)), (e: WireError) => e.reason === "length");
});

Deno.test("auth: sequence numbers rise; replays and stale ones are refused", () => {
  let now = 1_000_000;
  const sequencer = new Sequencer(() => now);
  const first = sequencer.next();
  const second = sequencer.next();
  assert.ok(second > first, "rises within the same millisecond");
  now += 5;
  assert.ok(sequencer.next() >= now * 1000);
  const guard = new ReplayGuard();
  assert.equal(guard.admit("10.0.0.1", first, now), true);
  assert.equal(guard.admit("10.0.0.1", first, now), false, "the same again");
  assert.equal(guard.admit("10.0.0.1", first - 1, now), false, "an older one");
  assert.equal(guard.admit("10.0.0.2", first, now), true, "another sender has its own");
  assert.equal(guard.admit("10.0.0.3", (now - 61_000) * 1000, now), false, "too old");
  assert.equal(guard.admit("10.0.0.3", (now + 61_000) * 1000, now), false, "from the future");
});

Deno.test("key: the file format, and a file others can read is refused", async () => {
  const text = newKeyText();
  assert.match(text, /^om-cluster-key-v1 [0-9a-f]{64}\n$/);
  assert.equal(parseKeyText(text, "k").length, 32);
  assert.throws(() => parseKeyText("om-cluster-key-v1 abc\n", "/k"), /not an om key file/);
  const { loadKey } = await import("../../../lib/base/key.ts");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ok.key`, text, { mode: 0o600 });
    assert.match((await loadKey(`${dir}/ok.key`)).fingerprint, /^[0-9a-f]{8}$/);
    await Deno.writeTextFile(`${dir}/open.key`, text, { mode: 0o644 });
    await Deno.chmod(`${dir}/open.key`, 0o644);
    await assert.rejects(loadKey(`${dir}/open.key`), /readable by others \(mode 644\)/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
