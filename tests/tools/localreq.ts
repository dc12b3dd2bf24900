/**
 * Test tool: one request on a daemon's local socket, as whoever runs it.
 *   deno run -A localreq.ts ROOT COMMAND [BODY] [TOKEN]
 * Authenticates with a fresh token, or sends `auth` with TOKEN as given (a forgery). Prints the
 * reply body, or "error: MESSAGE" (exit 1).
 *
 * Imported, it gives `connectAs`: a connection of any user, made by root (a fresh token given to
 * that uid), and `ask`: one request with a JSON body and reply.
 */
import { type ChannelClient, connectChannel, RemoteError } from "../../lib/channel/client.ts";
import { connectLocal, localSocketPath } from "../../lib/jobs/localauth.ts";
import { createToken, usersDirPath } from "../../lib/jobs/usertoken.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Connects to the local socket of the state tree `root` as user `uid` (root only: the token is
 * made by root and given to `uid`). Throws the daemon's refusal of `auth` as an Error.
 */
export async function connectAs(
  root: string,
  uid: number,
  options: { readonly timeoutMs?: number } = {},
): Promise<ChannelClient> {
  const client = await connectChannel({ path: localSocketPath(root), ...options });
  try {
    const dir = usersDirPath(root);
    const token = await createToken(dir);
    await Deno.chown(`${dir}/${token}`, uid, uid);
    await ask(client, "auth", { token });
    return client;
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
}

/** One request: `body` as JSON, the reply's JSON; the daemon's error as an Error with its text. */
export async function ask(
  client: ChannelClient,
  command: string,
  body: unknown = {},
): Promise<unknown> {
  try {
    const reply = await client.request(command, encoder.encode(JSON.stringify(body)));
    return reply.length ? JSON.parse(decoder.decode(reply)) : undefined;
  } catch (error) {
    throw error instanceof RemoteError ? new Error(error.error, { cause: error }) : error;
  }
}

if (import.meta.main) {
  const [root, command, body = "", token] = Deno.args;
  try {
    const client = token === undefined
      ? await connectLocal(root, { timeoutMs: 5000 })
      : await connectChannel({ path: localSocketPath(root), timeoutMs: 5000 });
    try {
      if (token !== undefined) {
        await client.request("auth", encoder.encode(JSON.stringify({ token })));
      }
      console.log(decoder.decode(await client.request(command, encoder.encode(body))));
    } finally {
      await client.close();
    }
  } catch (error) {
    console.log(`error: ${error instanceof RemoteError ? error.error : (error as Error).message}`);
    Deno.exit(1);
  }
}
