/**
 * How a channel connection starts (PROTOCOL.md §8.4), both sides of it: the client says HELLO with
 * its protocol version and a nonce; the server answers WELCOME (or REFUSED and closes); with a
 * cluster key both sides then prove they hold it (mutual challenge-response over fresh nonces, so a
 * recorded conversation cannot be replayed) and seal every later frame with keys of this
 * connection alone (seal.ts, PROTOCOL.md §8.7); without one, the server's access rule decides by
 * the peer's address, and nothing is sealed. The client checks that the node that answers is the
 * one it dialled. What the handshake learns about the client is its {@linkcode Peer}, handed to
 * every handler of the connection. Frames: frame.ts and conn.ts; the server and the client:
 * server.ts and client.ts.
 */
import { type Acl, peerIPv4 } from "./access.ts";
import { Writer } from "../base/cursor.ts";
import type { FrameConn } from "./conn.ts";
import {
  type Frame,
  FrameError,
  HelloFlags,
  NONCE_SIZE,
  PROOF_SIZE,
  PROTOCOL_VERSION,
  UnsupportedVersionError,
} from "./frame.ts";
import { type ClusterKey, sameMac, sign } from "../base/key.ts";
import { deriveSeal } from "./seal.ts";

/** The channel's TCP port (discovery's UDP port is 20301). */
export const DEFAULT_CHANNEL_PORT = 20302;

/**
 * Who sent a request: its address (a dotted quad) and port, the node id its HELLO announced, and
 * whether it proved the cluster key.
 */
export interface Peer {
  readonly address: string;
  readonly port: number;
  readonly nodeId: number;
  readonly authenticated: boolean;
  /**
   * What the handlers keep about this connection (e.g. the local socket's user): empty at the
   * handshake, the same object for every request of the connection, gone with it.
   */
  readonly session?: Map<string, unknown>;
}

/**
 * The connection was refused (REFUSED from the peer; or the peer failed our key check, speaks
 * another protocol version, or is not the node dialled).
 */
export class ChannelRefusedError extends Error {
  override name = "ChannelRefusedError";
  constructor(readonly reason: string, peer: string) {
    super(`Cannot talk to ${peer}: ${reason}`);
  }
}

/**
 * A peer's refusal of our protocol version, said plainly from this side: which versions each
 * speaks and which node to upgrade. The REFUSED frame carries only text, and a version-1 node's
 * text is fixed ("unsupported protocol version 2 (this node speaks 1)"; version 2's adds which
 * node to upgrade before the parenthesis), so this one refusal is recognized by its words; any
 * other reason is returned as it is.
 */
export function plainRefusal(reason: string): string {
  const match = /^unsupported protocol version (\d+)\b.*\(this node speaks (\d+)\)$/.exec(reason);
  if (!match) return reason;
  return versionMismatch(Number(match[2]));
}

/** What a client says of a peer that speaks protocol version `theirs`. */
function versionMismatch(theirs: number): string {
  return `it speaks protocol version ${theirs} and this node ${PROTOCOL_VERSION}: upgrade om on ${
    theirs < PROTOCOL_VERSION ? "that node" : "this node"
  }`;
}

/**
 * The server's handshake ended in a refusal; `sent` tells whether the server sends REFUSED with
 * `reason` (its own refusal) or the peer did.
 */
export class Refusal extends Error {
  constructor(readonly reason: string, readonly sent: "us" | "peer") {
    super(reason);
  }
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const LABELS = {
  server: encoder.encode("om-channel-server"),
  client: encoder.encode("om-channel-client"),
};

/**
 * A side's proof that it holds the key: HMAC-SHA-256(key, "om-channel-server" || client nonce ||
 * server nonce) for the server, HMAC-SHA-256(key, "om-channel-client" || server nonce || client
 * nonce) for the client. The labels and the order keep one side's proof from serving as the
 * other's.
 */
export function channelProof(
  key: ClusterKey,
  side: "server" | "client",
  nonces: { readonly client: Uint8Array; readonly server: Uint8Array },
): Promise<Uint8Array> {
  const label = LABELS[side];
  const [first, second] = side === "server"
    ? [nonces.client, nonces.server]
    : [nonces.server, nonces.client];
  return sign(
    key,
    new Writer(label.length + 2 * NONCE_SIZE).raw(label).raw(first).raw(second).done(),
  );
}

const nonce = () => crypto.getRandomValues(new Uint8Array(NONCE_SIZE));

/**
 * Turns Nagle's algorithm off on a TCP connection: every frame is written whole, and with
 * several requests in flight Nagle held each small frame back until the previous one was
 * acknowledged, which the peer delays up to 40 ms (seen here: 8 small `mig.file` requests in
 * flight took 50 ms, one after the other 7 ms).
 */
export function noDelay(conn: Deno.Conn): void {
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
}

/** A frame's type as messages name it: HELLO, REQUEST, ... */
export const frameLabel = (frame: Frame): string => frame.type.toUpperCase();

/**
 * The server's side of the handshake with the client at `remote`: reads HELLO, refuses (throws a
 * {@linkcode Refusal}) a client of another version, a key on one side only, an address the access
 * rule `acl` does not allow, or a wrong proof; otherwise sends WELCOME, checks AUTH when there is
 * a `key`, and resolves with the client as a Peer. Throws FrameError for a frame out of place.
 */
export async function serverHandshake(
  link: FrameConn,
  options: {
    readonly remote: Deno.Addr;
    readonly key: ClusterKey | undefined;
    readonly acl: Acl | undefined;
    readonly nodeId: number;
  },
): Promise<Peer> {
  const { remote, key, acl, nodeId } = options;
  let hello: Frame | null;
  try {
    hello = await link.next();
  } catch (error) {
    if (error instanceof UnsupportedVersionError) throw new Refusal(error.message, "us");
    throw error;
  }
  if (hello === null) throw new FrameError("Cannot start: connection closed before HELLO");
  if (hello.type !== "hello") {
    throw new FrameError(`Cannot start: expected HELLO, got ${frameLabel(hello)}`);
  }
  const clientHasKey = (hello.flags & HelloFlags.key) !== 0;
  if (key && !clientHasKey) {
    throw new Refusal("authentication failed: this node requires the cluster key", "us");
  }
  if (!key && clientHasKey) {
    throw new Refusal("authentication failed: this node has no cluster key", "us");
  }
  const address = "hostname" in remote ? peerIPv4(remote.hostname) ?? remote.hostname : "local";
  if (acl && !acl(address)) {
    throw new Refusal(
      `not allowed: ${address} is not a cluster member nor in the allowed networks`,
      "us",
    );
  }
  const nonces = { client: hello.nonce, server: nonce() };
  await link.send({
    type: "welcome",
    version: PROTOCOL_VERSION,
    nodeId,
    nonce: nonces.server,
    proof: key ? await channelProof(key, "server", nonces) : new Uint8Array(PROOF_SIZE),
  });
  if (key) {
    const auth = await link.next();
    if (auth === null) throw new FrameError("Cannot start: connection closed before AUTH");
    if (auth.type === "refused") throw new Refusal(auth.reason, "peer");
    if (auth.type !== "auth") {
      throw new FrameError(`Cannot start: expected AUTH, got ${frameLabel(auth)}`);
    }
    if (!sameMac(auth.proof, await channelProof(key, "client", nonces))) {
      throw new Refusal("authentication failed", "us");
    }
    link.established(
      await deriveSeal(key, "server", {
        version: PROTOCOL_VERSION,
        nonces,
        clientNode: hello.nodeId,
        serverNode: nodeId,
      }),
    );
  } else {
    link.established();
  }
  const port = "port" in remote ? remote.port : 0;
  return {
    address,
    port,
    nodeId: hello.nodeId,
    authenticated: key !== undefined,
    session: new Map(),
  };
}

/**
 * The client's side of the handshake with the server `where` (for messages): sends HELLO as node
 * `nodeId`, checks WELCOME (its version; its proof when there is a `key`; that it comes from node
 * `expectNodeId` when given), with a key sends AUTH and seals the connection, and resolves with
 * the server's node id. Throws ChannelRefusedError when the server refuses, speaks another
 * version, fails the key check or is another node; FrameError for a frame out of place.
 */
export async function clientHandshake(
  link: FrameConn,
  options: {
    readonly where: string;
    readonly key: ClusterKey | undefined;
    readonly nodeId: number;
    readonly expectNodeId?: number;
  },
): Promise<number> {
  const { where, key, expectNodeId } = options;
  const nonces: { client: Uint8Array; server: Uint8Array } = { client: nonce(), server: EMPTY };
  await link.send({
    type: "hello",
    version: PROTOCOL_VERSION,
    nodeId: options.nodeId,
    flags: key ? HelloFlags.key : 0,
    nonce: nonces.client,
  });
  const welcome = await link.next();
  if (welcome === null) throw new Error(`Cannot talk to ${where}: closed during the handshake`);
  if (welcome.type === "refused") {
    throw new ChannelRefusedError(plainRefusal(welcome.reason), where);
  }
  if (welcome.type !== "welcome") {
    throw new FrameError(`Cannot talk to ${where}: expected WELCOME, got ${frameLabel(welcome)}`);
  }
  if (welcome.version !== PROTOCOL_VERSION) {
    await link.refuse(new UnsupportedVersionError(welcome.version).message);
    throw new ChannelRefusedError(versionMismatch(welcome.version), where);
  }
  nonces.server = welcome.nonce;
  if (key && !sameMac(welcome.proof, await channelProof(key, "server", nonces))) {
    await link.refuse("authentication failed");
    throw new ChannelRefusedError(
      "authentication failed (its proof does not match this node's cluster key)",
      where,
    );
  }
  if (expectNodeId !== undefined && welcome.nodeId !== expectNodeId) {
    await link.refuse(`wrong node: this client dialled node ${expectNodeId}`);
    throw new ChannelRefusedError(
      `it answered as node ${welcome.nodeId} (at ${where})`,
      `node ${expectNodeId}`,
    );
  }
  if (key) {
    await link.send({ type: "auth", proof: await channelProof(key, "client", nonces) });
    link.established(
      await deriveSeal(key, "client", {
        version: PROTOCOL_VERSION,
        nonces,
        clientNode: options.nodeId,
        serverNode: welcome.nodeId,
      }),
    );
  } else {
    link.established();
  }
  return welcome.nodeId;
}
