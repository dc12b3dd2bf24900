/**
 * ChaCha20-Poly1305 (RFC 8439) in place, for the sealed page link (lib/migration/pageseal.ts):
 * by OpenSSL's libcrypto (`libcrypto.so.3`, in every Debian with OpenSSL 3) through Deno's FFI
 * when it loads, else by node:crypto. Both are the same cipher and make the same bytes, so two
 * nodes need not agree on which one they use. Why: the pages are a job's whole memory, sealed and
 * opened while the job is frozen, and on this project's machine OpenSSL seals them about three
 * times as fast as node:crypto (bench/seal.ts, bench/README.md), and in place, without a copy.
 *
 * libcrypto is loaded on the first use (no cost at start-up), once per process, from an absolute
 * path of a system library directory (findLibcrypto), without its configuration file, and only
 * used when it passes a self-test; one cipher context serves every call, since a call seals or
 * opens a whole record synchronously.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";

/** Bytes of the tag, of the key and of the nonce. */
export const CHACHA_TAG_SIZE = 16;
export const CHACHA_KEY_SIZE = 32;
export const CHACHA_NONCE_SIZE = 12;

/** One implementation of ChaCha20-Poly1305 in place. */
export interface ChaCha {
  /** Which one: OpenSSL's libcrypto through FFI, or node:crypto. */
  readonly name: "openssl" | "node";
  /**
   * Encrypts `text` in place and writes its tag to `tag` (CHACHA_TAG_SIZE bytes), with `aad`
   * authenticated too.
   */
  seal(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    text: Uint8Array,
    tag: Uint8Array,
  ): void;
  /**
   * Decrypts `text` in place when `tag` proves it and `aad`; false when it does not, and then
   * `text` holds nothing of the plaintext (it is zeroed).
   */
  open(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    text: Uint8Array,
    tag: Uint8Array,
  ): boolean;
}

function checkSizes(key: Uint8Array, nonce: Uint8Array, tag: Uint8Array): void {
  if (
    key.length !== CHACHA_KEY_SIZE || nonce.length !== CHACHA_NONCE_SIZE ||
    tag.length !== CHACHA_TAG_SIZE
  ) {
    throw new RangeError(
      `ChaCha20-Poly1305 takes a ${CHACHA_KEY_SIZE}-byte key, a ${CHACHA_NONCE_SIZE}-byte nonce ` +
        `and a ${CHACHA_TAG_SIZE}-byte tag, not ${key.length}, ${nonce.length} and ${tag.length}`,
    );
  }
}

/** node:crypto's ChaCha20-Poly1305 (a copy in and out per call). */
export const nodeChaCha: ChaCha = {
  name: "node",
  seal(key, nonce, aad, text, tag) {
    checkSizes(key, nonce, tag);
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, {
      authTagLength: CHACHA_TAG_SIZE,
    });
    cipher.setAAD(aad, { plaintextLength: text.length });
    if (text.length > 0) text.set(cipher.update(text));
    cipher.final();
    tag.set(cipher.getAuthTag());
  },
  open(key, nonce, aad, text, tag) {
    checkSizes(key, nonce, tag);
    const decipher = createDecipheriv("chacha20-poly1305", key, nonce, {
      authTagLength: CHACHA_TAG_SIZE,
    });
    decipher.setAAD(aad, { plaintextLength: text.length });
    decipher.setAuthTag(tag);
    try {
      const plain = text.length > 0 ? decipher.update(text) : new Uint8Array(0);
      decipher.final();
      text.set(plain);
      return true;
    } catch {
      text.fill(0);
      return false;
    }
  },
};

/** The libcrypto functions used, as Deno's FFI declares them. */
const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_CipherFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  OPENSSL_init_crypto: { parameters: ["u64", "pointer"], result: "i32" },
} as const;

/** OPENSSL_init_crypto's option that keeps openssl.cnf (and what it would load) unread. */
const OPENSSL_INIT_NO_LOAD_CONFIG = 0x80n;

/** EVP_CIPHER_CTX_ctrl's commands (openssl/evp.h). */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;

/** The most bytes one EVP_CipherUpdate takes (its length is an int). */
const UPDATE_MAX = 1 << 30;

/**
 * OpenSSL's ChaCha20-Poly1305 from the library at `path`, or undefined when it cannot be loaded
 * or does not pass the self-test (RFC 8439's vector, and a tag that must not open): a libcrypto
 * whose configuration offers no ChaCha20-Poly1305 (FIPS mode) leaves the page link to node:crypto
 * rather than failing it. The library is told not to read openssl.cnf, which could load modules
 * into the daemon.
 */
function openOpenSsl(path: string): ChaCha | undefined {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch {
    return undefined;
  }
  const s = lib.symbols;
  // Once per process, before anything else of the library (a later call changes nothing).
  if (s.OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, null) !== 1) return undefined;
  const ctx = s.EVP_CIPHER_CTX_new();
  const cipher = s.EVP_chacha20_poly1305();
  if (ctx === null || cipher === null) return undefined;
  const outLength = new Int32Array(1);
  const scratch = new Uint8Array(CHACHA_TAG_SIZE);
  const fail = (what: string): never => {
    throw new Error(`OpenSSL's ChaCha20-Poly1305 failed (${what})`);
  };
  /** Starts one record: the cipher, its key, its nonce and its direction. */
  const init = (encrypt: boolean, key: Uint8Array, nonce: Uint8Array) => {
    if (s.EVP_CipherInit_ex(ctx, cipher, null, key, nonce, encrypt ? 1 : 0) !== 1) fail("init");
  };
  /** The AAD, then `text` in place. */
  const update = (aad: Uint8Array, text: Uint8Array) => {
    if (aad.length > 0 && s.EVP_CipherUpdate(ctx, null, outLength, aad, aad.length) !== 1) {
      fail("aad");
    }
    for (let at = 0; at < text.length; at += UPDATE_MAX) {
      const part = text.subarray(at, Math.min(text.length, at + UPDATE_MAX));
      if (s.EVP_CipherUpdate(ctx, part, outLength, part, part.length) !== 1) fail("update");
      if (outLength[0] !== part.length) fail("a short update");
    }
  };
  const openssl: ChaCha = {
    name: "openssl",
    seal(key, nonce, aad, text, tag) {
      checkSizes(key, nonce, tag);
      init(true, key, nonce);
      update(aad, text);
      if (s.EVP_CipherFinal_ex(ctx, scratch, outLength) !== 1) fail("final");
      if (s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CHACHA_TAG_SIZE, tag) !== 1) {
        fail("tag");
      }
    },
    open(key, nonce, aad, text, tag) {
      checkSizes(key, nonce, tag);
      // The expected tag is set before the data, which the final step then checks against it.
      init(false, key, nonce);
      scratch.set(tag);
      if (s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CHACHA_TAG_SIZE, scratch) !== 1) {
        fail("tag");
      }
      try {
        update(aad, text);
      } catch (error) {
        text.fill(0); // nothing unauthenticated is left behind
        throw error;
      }
      if (s.EVP_CipherFinal_ex(ctx, scratch, outLength) === 1) return true;
      text.fill(0);
      return false;
    },
  };
  try {
    return selfTest(openssl) ? openssl : undefined;
  } catch {
    return undefined;
  }
}

// RFC 8439 §2.8.2's test vector.
const hex = (text: string) => Uint8Array.from(text.match(/../g)!, (b) => parseInt(b, 16));
const VECTOR = {
  key: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
  nonce: hex("070000004041424344454647"),
  aad: hex("50515253c0c1c2c3c4c5c6c7"),
  plain: "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the " +
    "future, sunscreen would be it.",
  sealed: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca96712" +
    "82fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4" +
    "fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
  tag: "1ae10b594f09e26a7e902ecbd0600691",
};

/** Whether `impl` seals RFC 8439's vector right, opens it, and refuses it with a changed tag. */
export function selfTest(impl: ChaCha): boolean {
  const toHex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const plain = new TextEncoder().encode(VECTOR.plain);
  const text = plain.slice();
  const tag = new Uint8Array(CHACHA_TAG_SIZE);
  impl.seal(VECTOR.key, VECTOR.nonce, VECTOR.aad, text, tag);
  if (toHex(text) !== VECTOR.sealed || toHex(tag) !== VECTOR.tag) return false;
  const forged = text.slice();
  const wrong = tag.slice();
  wrong[0] ^= 1;
  if (impl.open(VECTOR.key, VECTOR.nonce, VECTOR.aad, forged, wrong)) return false;
  if (!impl.open(VECTOR.key, VECTOR.nonce, VECTOR.aad, text, tag)) return false;
  return toHex(text) === toHex(plain);
}

/** libcrypto's file name. */
export const LIBCRYPTO = "libcrypto.so.3";

/** The directories libcrypto is looked for in, in order: Debian's multiarch ones first. */
export function libcryptoDirs(arch: string = Deno.build.arch): string[] {
  const multiarch = `${arch === "aarch64" ? "aarch64" : "x86_64"}-linux-gnu`;
  return [`/usr/lib/${multiarch}`, `/lib/${multiarch}`, "/usr/lib64", "/lib64", "/usr/lib", "/lib"];
}

/**
 * The first libcrypto of `dirs` that is root's and that nobody else may change (the file and its
 * directory: not group- or other-writable), or undefined. An absolute path: the daemon runs as
 * root, and the dynamic loader's search (LD_LIBRARY_PATH) is not asked.
 */
export function findLibcrypto(dirs: readonly string[] = libcryptoDirs()): string | undefined {
  const safe = (path: string) => {
    try {
      const info = Deno.statSync(path);
      return info.uid === 0 && ((info.mode ?? 0) & 0o022) === 0;
    } catch {
      return false;
    }
  };
  for (const dir of dirs) {
    const path = `${dir}/${LIBCRYPTO}`;
    if (safe(dir) && safe(path) && Deno.statSync(path).isFile) return path;
  }
  return undefined;
}

let chosen: ChaCha | undefined;

/**
 * The ChaCha20-Poly1305 the page link uses: OpenSSL's when a safe libcrypto is found, loads and
 * passes the self-test (once per process, at the first use), else node:crypto's.
 */
export function chacha(): ChaCha {
  if (chosen) return chosen;
  const path = findLibcrypto();
  return chosen = (path ? openOpenSsl(path) : undefined) ?? nodeChaCha;
}

/** OpenSSL's ChaCha20-Poly1305 from `path`, or undefined (for the tests and the benchmark). */
export function openSslChaCha(path = findLibcrypto()): ChaCha | undefined {
  return path ? openOpenSsl(path) : undefined;
}
