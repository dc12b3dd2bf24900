/**
 * Test tool: one request on a daemon's local socket, as whoever runs it.
 *   deno run -A localreq.ts ROOT COMMAND [BODY] [TOKEN]
 * Authenticates with a fresh token, or sends `auth` with TOKEN as given (a forgery). Prints the
 * reply body, or "error: MESSAGE" (exit 1).
 */
import { connectChannel, RemoteError } from "../../lib/channel/client.ts";
import { connectLocal, localSocketPath } from "../../lib/jobs/localauth.ts";

const [root, command, body = "", token] = Deno.args;
const encoder = new TextEncoder();
try {
  const client = token === undefined
    ? await connectLocal(root, { timeoutMs: 5000 })
    : await connectChannel({ path: localSocketPath(root), timeoutMs: 5000 });
  try {
    if (token !== undefined) {
      await client.request("auth", encoder.encode(JSON.stringify({ token })));
    }
    console.log(new TextDecoder().decode(await client.request(command, encoder.encode(body))));
  } finally {
    await client.close();
  }
} catch (error) {
  console.log(`error: ${error instanceof RemoteError ? error.error : (error as Error).message}`);
  Deno.exit(1);
}
