/**
 * Test tool: one request over the node-to-node channel from inside a lab node.
 *   deno run -A chanreq.ts HOST COMMAND [KEYFILE|-] [BODY]
 * Prints the reply body, or "refused: REASON" / "error: MESSAGE" (exit 1).
 */
import { ChannelRefusedError } from "../../lib/channel/handshake.ts";
import { connectChannel } from "../../lib/channel/client.ts";
import { importKey, parseKeyText } from "../../lib/base/key.ts";

const [hostname, command, keyFile, body] = Deno.args;
const key = keyFile && keyFile !== "-"
  ? await importKey(parseKeyText(await Deno.readTextFile(keyFile), keyFile))
  : undefined;
try {
  const client = await connectChannel({ hostname, port: 20302, key, timeoutMs: 5000 });
  try {
    const bytes = body === undefined ? undefined : new TextEncoder().encode(body);
    console.log(new TextDecoder().decode(await client.request(command, bytes)));
  } finally {
    await client.close();
  }
} catch (error) {
  console.log(
    error instanceof ChannelRefusedError ? `refused: ${error.reason}` : `error: ${error}`,
  );
  Deno.exit(1);
}
