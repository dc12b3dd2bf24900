/**
 * Test tool: HTTP requests to a status page from inside a lab node (the host's namespace cannot
 * reach a lab address), answers printed as one JSON line each.
 *   deno run -A webreq.ts URL [METHOD]
 *     prints {"status":N,"headers":{...},"body":"..."}
 *   deno run -A webreq.ts --events MS URL
 *     reads the event stream for MS milliseconds; prints {"status":N,"headers":{...}} and then one
 *     line per event, {"at":MS_SINCE_EPOCH,"event":"...","id":"...","data":{...}}, as it comes
 * Exit 1 with "error: ..." when the request cannot be made.
 */
const args = [...Deno.args];
try {
  if (args[0] === "--events") {
    const ms = Number(args[1]);
    const response = await fetch(args[2], { signal: AbortSignal.timeout(ms) });
    console.log(JSON.stringify({ status: response.status, headers: headersOf(response) }));
    let text = "";
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
          }
          if (!fields.event) continue;
          console.log(JSON.stringify({
            at: Date.now(),
            event: fields.event,
            id: fields.id,
            data: JSON.parse(fields.data),
          }));
        }
      }
    } catch (error) {
      if (!(error instanceof DOMException && error.name === "TimeoutError")) throw error;
    }
  } else {
    const [url, method = "GET"] = args;
    const response = await fetch(url, {
      method,
      ...(method === "POST" || method === "PUT" ? { body: "{}" } : {}),
    });
    console.log(JSON.stringify({
      status: response.status,
      headers: headersOf(response),
      body: await response.text(),
    }));
  }
} catch (error) {
  console.log(`error: ${error}`);
  Deno.exit(1);
}

function headersOf(response: Response): Record<string, string> {
  return Object.fromEntries(response.headers.entries());
}
