/**
 * ChaCha20-Poly1305 in place (lib/migration/chacha.ts): OpenSSL's through FFI and node:crypto's
 * make the same bytes (RFC 8439's test vector, and each opens what the other sealed, in views at
 * odd offsets of larger buffers as the page link uses them); a flipped bit of the text, the tag
 * or the AAD, or another nonce, does not open, and leaves no plaintext behind. libcrypto comes
 * only from a system directory only root may change, without its openssl.cnf, and only after a
 * self-test.
 */
import assert from "node:assert/strict";
import {
  type ChaCha,
  chacha,
  findLibcrypto,
  LIBCRYPTO,
  libcryptoDirs,
  nodeChaCha,
  openSslChaCha,
  selfTest,
} from "../../../lib/migration/chacha.ts";

const ROOT = Deno.uid() === 0;

const hex = (text: string) =>
  Uint8Array.from(text.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const openssl = openSslChaCha();
const both: ChaCha[] = openssl ? [openssl, nodeChaCha] : [nodeChaCha];

// RFC 8439 §2.8.2.
const KEY = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
const NONCE = hex("070000004041424344454647");
const AAD = hex("50515253c0c1c2c3c4c5c6c7");
const PLAIN = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, " +
    "sunscreen would be it.",
);
const CIPHER = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
  "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
  "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
  "3ff4def08e4b7a9de576d26586cec64b6116";
const TAG = "1ae10b594f09e26a7e902ecbd0600691";

Deno.test("chacha: OpenSSL's loads here (libcrypto.so.3), and is the one the page link uses", () => {
  assert.ok(openssl, `${LIBCRYPTO} did not load`);
  assert.equal(chacha().name, "openssl");
});

Deno.test("chacha: RFC 8439's test vector, sealed and opened in place by each", () => {
  for (const impl of both) {
    const text = PLAIN.slice();
    const tag = new Uint8Array(16);
    impl.seal(KEY, NONCE, AAD, text, tag);
    assert.equal(toHex(text), CIPHER, impl.name);
    assert.equal(toHex(tag), TAG, impl.name);
    assert.ok(impl.open(KEY, NONCE, AAD, text, tag), impl.name);
    assert.deepEqual(text, PLAIN, impl.name);
  }
});

Deno.test("chacha: each opens what the other sealed, in views at odd offsets; sizes 0 to 1 MiB", () => {
  for (const size of [0, 1, 15, 16, 17, 4095, 65537, 1 << 20]) {
    for (const sealer of both) {
      for (const opener of both) {
        const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
        const buffer = new Uint8Array(size + 64);
        const text = buffer.subarray(5, 5 + size);
        for (let at = 0; at < size; at += plain.length) text.set(plain.subarray(0, size - at), at);
        const expected = text.slice();
        const tag = buffer.subarray(5 + size, 5 + size + 16);
        const aad = buffer.subarray(1, 5);
        aad.set([0, 1, 2, 3]);
        sealer.seal(KEY, NONCE, aad, text, tag);
        if (size >= 16) assert.notDeepEqual(text, expected);
        // The bytes around are untouched.
        assert.deepEqual(buffer.subarray(0, 1), new Uint8Array(1));
        assert.deepEqual(buffer.subarray(5 + size + 16), new Uint8Array(43));
        assert.ok(opener.open(KEY, NONCE, aad, text, tag), `${sealer.name} -> ${opener.name}`);
        assert.deepEqual(text, expected, `${sealer.name} -> ${opener.name} at ${size}`);
      }
    }
  }
});

Deno.test("chacha: a flipped bit of the text, tag or AAD, or another nonce or key, does not open", () => {
  for (const impl of both) {
    const sealed = PLAIN.slice();
    const tag = new Uint8Array(16);
    impl.seal(KEY, NONCE, AAD, sealed, tag);
    const flip = (bytes: Uint8Array, at: number) => {
      const copy = bytes.slice();
      copy[at] ^= 1;
      return copy;
    };
    const cases: [string, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array][] = [
      ["text", KEY, NONCE, AAD, flip(sealed, 40), tag],
      ["tag", KEY, NONCE, AAD, sealed.slice(), flip(tag, 15)],
      ["aad", KEY, NONCE, flip(AAD, 0), sealed.slice(), tag],
      ["nonce", KEY, flip(NONCE, 11), AAD, sealed.slice(), tag],
      ["key", flip(KEY, 31), NONCE, AAD, sealed.slice(), tag],
    ];
    for (const [what, key, nonce, aad, text, t] of cases) {
      assert.equal(impl.open(key, nonce, aad, text, t), false, `${impl.name}: ${what}`);
      assert.deepEqual(text, new Uint8Array(text.length), `${impl.name}: ${what} left zeroes`);
    }
    // After a refusal the same context still opens a good record.
    const good = sealed.slice();
    assert.ok(impl.open(KEY, NONCE, AAD, good, tag));
    assert.deepEqual(good, PLAIN);
  }
});

Deno.test("chacha: wrong sizes of key, nonce or tag are refused before anything", () => {
  for (const impl of both) {
    assert.throws(
      () => impl.seal(KEY.subarray(1), NONCE, AAD, PLAIN.slice(), new Uint8Array(16)),
      RangeError,
    );
    assert.throws(
      () => impl.open(KEY, NONCE.subarray(1), AAD, PLAIN.slice(), new Uint8Array(16)),
      RangeError,
    );
    assert.throws(() => impl.seal(KEY, NONCE, AAD, PLAIN.slice(), new Uint8Array(8)), RangeError);
  }
});

Deno.test("chacha: a library that does not load gives no OpenSSL, and node:crypto serves", () => {
  assert.equal(openSslChaCha("/nonexistent/libcrypto.so.3"), undefined);
});

Deno.test("chacha: libcrypto is taken only from a directory and a file that only root may change", async () => {
  const found = findLibcrypto();
  assert.ok(found?.startsWith("/"), `an absolute path: ${found}`);
  const dir = await Deno.makeTempDir();
  try {
    const lib = `${dir}/${LIBCRYPTO}`;
    await Deno.writeFile(lib, new Uint8Array(16));
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(lib, 0o644);
    if (ROOT) assert.equal(findLibcrypto([dir]), lib, "root's, 0644 in a 0755 directory");
    // Not a library: it does not load, and node:crypto serves.
    assert.equal(openSslChaCha(lib), undefined);
    await Deno.chmod(lib, 0o664);
    assert.equal(findLibcrypto([dir]), undefined, "a group-writable library");
    await Deno.chmod(lib, 0o644);
    await Deno.chmod(dir, 0o777);
    assert.equal(findLibcrypto([dir]), undefined, "a directory others may write");
    await Deno.chmod(dir, 0o755);
    if (ROOT) {
      await Deno.chown(lib, 65534, 65534);
      assert.equal(findLibcrypto([dir]), undefined, "another user's library");
    }
    // Later directories are looked in when the first has none.
    assert.equal(findLibcrypto(["/nonexistent", ...libcryptoDirs()]), found);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chacha: the self-test refuses a cipher that seals wrong or opens a forged tag", () => {
  assert.ok(selfTest(nodeChaCha));
  if (openssl) assert.ok(selfTest(openssl));
  const wrong: ChaCha = {
    ...nodeChaCha,
    seal: (key, nonce, aad, text, tag) => {
      nodeChaCha.seal(key, nonce, aad, text, tag);
      text[0] ^= 1;
    },
  };
  assert.equal(selfTest(wrong), false);
  const credulous: ChaCha = {
    ...nodeChaCha,
    open: (key, nonce, aad, text, tag) => {
      nodeChaCha.open(key, nonce, aad, text, tag);
      return true;
    },
  };
  assert.equal(selfTest(credulous), false);
});

Deno.test({
  name: "chacha: an openssl.cnf that offers no ChaCha20-Poly1305 (as FIPS mode) is not read",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      // Only the base provider: ChaCha20-Poly1305 would not be there if the file were read.
      await Deno.writeTextFile(
        `${dir}/base-only.cnf`,
        "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n" +
          "[provider_sect]\nbase = base_sect\n[base_sect]\nactivate = 1\n",
      );
      const script = `${dir}/which.ts`;
      await Deno.writeTextFile(
        script,
        `import { chacha } from ${
          JSON.stringify(new URL("../../../lib/migration/chacha.ts", import.meta.url).href)
        };\n` +
          "console.log(chacha().name);\n",
      );
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        env: { OPENSSL_CONF: `${dir}/base-only.cnf` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder();
      assert.equal(out.code, 0, text.decode(out.stderr));
      assert.equal(text.decode(out.stdout).trim(), "openssl");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
