/**
 * The cluster key: 32 random bytes that every node of an authenticated cluster shares. The file
 * is one line, `om-cluster-key-v1 <64 hex digits>`, mode 0600 (PROTOCOL.md §9). HMAC-SHA-256
 * with it authenticates datagrams (lib/discovery/auth.ts) and channel connections (lib/channel/handshake.ts).
 */

const PREFIX = "om-cluster-key-v1";
const KEY_BYTES = 32;

/** A loaded key: its raw bytes and an HMAC key ready for signing. */
export interface ClusterKey {
  readonly bytes: Uint8Array;
  readonly hmac: CryptoKey;
  /** A short fingerprint for logs (first 8 hex digits of SHA-256 of the key). */
  readonly fingerprint: string;
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The text of a new key file. */
export function newKeyText(): string {
  return `${PREFIX} ${hex(crypto.getRandomValues(new Uint8Array(KEY_BYTES)))}\n`;
}

/** Parses a key file's text; SyntaxError when it is not one. */
export function parseKeyText(text: string, path: string): Uint8Array {
  const match = /^om-cluster-key-v1 ([0-9a-f]{64})\s*$/.exec(text);
  if (!match) {
    throw new SyntaxError(
      `Cannot read cluster key "${path}": not an om key file (expected "${PREFIX} <64 hex>")`,
    );
  }
  return new Uint8Array(match[1].match(/../g)!.map((b) => parseInt(b, 16)));
}

/** Imports key bytes for HMAC-SHA-256. */
export async function importKey(bytes: Uint8Array): Promise<ClusterKey> {
  const hmac = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(bytes),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return { bytes, hmac, fingerprint: hex(digest.subarray(0, 4)) };
}

/** Reads and imports a key file; refuses one that others can read. */
export async function loadKey(path: string): Promise<ClusterKey> {
  const info = await Deno.stat(path);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new Error(
      `Cannot use cluster key "${path}": readable by others (mode ${
        (info.mode & 0o777).toString(8)
      }); chmod 600 it`,
    );
  }
  return await importKey(parseKeyText(await Deno.readTextFile(path), path));
}

/** HMAC-SHA-256 of `data` with the key. */
export async function sign(key: ClusterKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key.hmac, new Uint8Array(data)));
}

/** Constant-time comparison of two MACs. */
export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
