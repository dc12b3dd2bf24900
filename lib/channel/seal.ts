/**
 * Sealed sessions (PROTOCOL.md §8.7): after a handshake with the cluster key, both sides derive
 * one AES-256-GCM key per direction for this connection alone (HKDF-SHA-256 over the cluster key,
 * salted with both nonces, with the protocol version and both node ids in the info), and every
 * later frame, both ways, travels sealed: encrypted and authenticated, its header included, under
 * a 96-bit counter of its direction as the IV. The counters are never sent: both sides count, so a
 * frame altered, replayed, reordered, dropped or injected on the way does not open, and the
 * connection ends. How a sealed frame sits on the wire is conn.ts's (`FrameConn`); this file is
 * the key schedule and the cipher.
 */
import { Writer } from "../base/cursor.ts";
import type { ClusterKey } from "../base/key.ts";

/** Size of the GCM tag after each sealed frame's ciphertext. */
export const SEAL_TAG_SIZE = 16;
/** Size of the IV: a direction's frame counter, as 4 zero bytes and a u64 (network order). */
export const SEAL_IV_SIZE = 12;

/** What both sides know after the handshake and bind into the keys (PROTOCOL.md §8.7). */
export interface SessionParams {
  /** The protocol version both speak. */
  readonly version: number;
  /** The HELLO's nonce and the WELCOME's. */
  readonly nonces: { readonly client: Uint8Array; readonly server: Uint8Array };
  /** The node id of the HELLO (0 for a tool) and of the WELCOME. */
  readonly clientNode: number;
  readonly serverNode: number;
}

/** The two directions, each with its own key and counter. */
export type Direction = "clientToServer" | "serverToClient";

/** The HKDF info labels of the two directions' keys. */
export const SEAL_LABELS: Readonly<Record<Direction, string>> = {
  clientToServer: "om-channel-seal client to server",
  serverToClient: "om-channel-seal server to client",
};

const encoder = new TextEncoder();

/** HKDF's salt: the client nonce, then the server nonce (64 bytes). */
export function sessionSalt(params: SessionParams): Uint8Array {
  return new Writer(params.nonces.client.length + params.nonces.server.length)
    .raw(params.nonces.client).raw(params.nonces.server).done();
}

/** HKDF's info for one direction: its label, then u16 version, client node, server node. */
export function sessionInfo(direction: Direction, params: SessionParams): Uint8Array {
  const label = encoder.encode(SEAL_LABELS[direction]);
  return new Writer(label.length + 6).raw(label).u16(params.version).u16(params.clientNode)
    .u16(params.serverNode).done();
}

/** The IV of a direction's frame number `counter` (0 for the first sealed frame). */
export function sealIv(counter: number): Uint8Array {
  return new Writer(SEAL_IV_SIZE).u32(0).u32(Math.floor(counter / 2 ** 32)).u32(counter >>> 0)
    .done();
}

/**
 * A sealed frame that does not open, or an unsealed frame where a sealed one must be: the frame
 * was altered, replayed, reordered, dropped or injected on the way (or the peer's keys differ).
 * The connection cannot go on. The message is the reason, to follow "Cannot talk to PEER: ".
 */
export class SealError extends Error {
  override name = "SealError";
}

/** Derives the AES-256-GCM key of one direction. */
async function directionKey(
  base: CryptoKey,
  direction: Direction,
  params: SessionParams,
): Promise<CryptoKey> {
  return await crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: sessionSalt(params) as Uint8Array<ArrayBuffer>,
      info: sessionInfo(direction, params) as Uint8Array<ArrayBuffer>,
    },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/**
 * The seal of one side of a connection after a keyed handshake: `side` sends with its own
 * direction's key and opens with the other's.
 */
export async function deriveSeal(
  key: ClusterKey,
  side: "client" | "server",
  params: SessionParams,
): Promise<Seal> {
  const base = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(key.bytes),
    "HKDF",
    false,
    ["deriveKey"],
  );
  const [clientToServer, serverToClient] = await Promise.all([
    directionKey(base, "clientToServer", params),
    directionKey(base, "serverToClient", params),
  ]);
  return side === "client"
    ? new Seal({ send: clientToServer, receive: serverToClient })
    : new Seal({ send: serverToClient, receive: clientToServer });
}

/** Frames a direction may seal: far beyond any connection's life (2^53, JavaScript's limit). */
const LAST_COUNTER = Number.MAX_SAFE_INTEGER;

/**
 * One connection's two directions: a key and a counter each. `seal` takes its counter at the
 * call, so frames sealed in some order must be sent in that order (FrameConn does); `open`
 * expects the peer's frames in the order it sealed them, each once.
 */
export class Seal {
  readonly #send: CryptoKey;
  readonly #receive: CryptoKey;
  #sent = 0;
  #received = 0;

  constructor(keys: { readonly send: CryptoKey; readonly receive: CryptoKey }) {
    this.#send = keys.send;
    this.#receive = keys.receive;
  }

  /**
   * Encrypts `plaintext` under the next send counter, authenticating `header` with it; resolves
   * to the ciphertext and its tag (SEAL_TAG_SIZE bytes longer than the plaintext).
   */
  seal(plaintext: Uint8Array, header: Uint8Array): Promise<Uint8Array> {
    if (this.#sent >= LAST_COUNTER) {
      return Promise.reject(new SealError("the seal's counter is spent: connect again"));
    }
    const iv = sealIv(this.#sent++);
    return crypto.subtle.encrypt(
      { name: "AES-GCM", iv: iv as Uint8Array<ArrayBuffer>, additionalData: view(header) },
      this.#send,
      view(plaintext),
    ).then((box) => new Uint8Array(box));
  }

  /**
   * Decrypts the peer's next frame, `box` (ciphertext and tag), with its `header`; throws
   * SealError when it does not open.
   */
  async open(box: Uint8Array, header: Uint8Array): Promise<Uint8Array> {
    const counter = this.#received++;
    if (box.length < SEAL_TAG_SIZE) {
      throw new SealError(notOpened(counter, "too short to hold a tag"));
    }
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: sealIv(counter) as Uint8Array<ArrayBuffer>,
            additionalData: view(header),
          },
          this.#receive,
          view(box),
        ),
      );
    } catch {
      throw new SealError(notOpened(counter, TAMPERED));
    }
  }
}

/** Why a sealed frame does not open, when its tag does not match. */
export const TAMPERED = "it was altered, replayed, reordered, dropped or injected on the way";

const notOpened = (counter: number, why: string) => `sealed frame ${counter} did not open: ${why}`;

/** The bytes as WebCrypto takes them (a view on an ArrayBuffer, not a copy). */
const view = (bytes: Uint8Array) => bytes as Uint8Array<ArrayBuffer>;
