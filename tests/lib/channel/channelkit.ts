/**
 * What the channel's tests share: a server on loopback that is always closed, a bare connection
 * that speaks frames by hand (for misbehaving peers), a HELLO, and a fresh cluster key.
 */
import { silentLogger } from "../../../lib/base/log.ts";
import {
  type ChannelServer,
  serveChannel,
  type ServeChannelOptions,
} from "../../../lib/channel/server.ts";
import { FrameConn } from "../../../lib/channel/conn.ts";
import { type Frame, HelloFlags, PROTOCOL_VERSION } from "../../../lib/channel/frame.ts";
import { importKey } from "../../../lib/base/key.ts";

/** The logger the servers of the tests log to: nowhere. */
export const logger = silentLogger;
/** Where the tests' servers listen. */
export const HOST = "127.0.0.1";

/** A fresh random cluster key. */
export const newKey = () => importKey(crypto.getRandomValues(new Uint8Array(32)));

/** A server on HOST, an ephemeral port, as node 7. */
export function serve(options: Partial<ServeChannelOptions> = {}): ChannelServer {
  return serveChannel({ hostname: HOST, port: 0, nodeId: 7, logger, ...options });
}

/** Runs `body` with a server, always closing it. */
export async function withServer(
  options: Partial<ServeChannelOptions>,
  body: (server: ChannelServer) => Promise<void>,
): Promise<void> {
  const server = serve(options);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** A bare TCP connection that speaks frames by hand, for the tests of misbehaving peers. */
export async function raw(port: number) {
  const conn = await Deno.connect({ hostname: HOST, port });
  const link = new FrameConn(conn);
  return {
    conn,
    link,
    write: async (bytes: Uint8Array) => {
      let rest = bytes;
      while (rest.length) rest = rest.subarray(await conn.write(rest));
    },
    /** Every frame until the server closes (a reset after the last frame counts as closing). */
    async frames(): Promise<Frame[]> {
      const frames: Frame[] = [];
      try {
        for (let frame = await link.next(); frame; frame = await link.next()) frames.push(frame);
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      }
      link.close();
      return frames;
    },
  };
}

/** A HELLO from node 3, of this protocol version unless told, with a fresh nonce. */
export const helloFrame = (options: { version?: number; key?: boolean } = {}): Frame => ({
  type: "hello",
  version: options.version ?? PROTOCOL_VERSION,
  nodeId: 3,
  flags: options.key ? HelloFlags.key : 0,
  nonce: crypto.getRandomValues(new Uint8Array(32)),
});
