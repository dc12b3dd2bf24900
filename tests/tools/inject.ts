/**
 * Test tool: sends discovery datagrams (good or malformed) to the group from inside a lab node.
 *   deno run -A inject.ts KIND COUNT [SRC]
 * KIND: join | ack | leave (a valid datagram claiming SRC), or garbage (a mix of every kind of
 * malformed datagram). Prints the number of datagrams sent. With OM_INJECT_KEY=FILE the datagrams
 * are sealed with that cluster key; with OM_INJECT_REPLAY=1 the same sealed bytes are sent every
 * time (a replay).
 */
import dgram from "node:dgram";
import { DEFAULTS } from "../../lib/cli/config.ts";
import { seal, Sequencer } from "../../lib/discovery/auth.ts";
import { importKey, parseKeyText } from "../../lib/base/key.ts";
import { encodeAnnouncement } from "../../lib/discovery/datagram.ts";

const [kind, countText, src = "10.77.0.99"] = Deno.args;
const count = Number(countText ?? "1");
const socket = dgram.createSocket({ type: "udp4" });
await new Promise<void>((resolve) => socket.bind(0, resolve));
socket.setMulticastTTL(1);

const good = (k: "join" | "ack" | "leave") =>
  encodeAnnouncement({ kind: k, source: { address: src, netmask: "255.255.255.0" }, aliases: [] });

function garbage(i: number): Uint8Array {
  const base = good("join");
  switch (i % 6) {
    case 0:
      return base.subarray(0, i % 53); // truncated
    case 1: {
      const b = base.slice();
      b[0] ^= 0xff; // wrong magic
      return b;
    }
    case 2: {
      const b = base.slice();
      b[52] = 0x7a; // unknown type
      return b;
    }
    case 3: {
      const b = base.slice();
      b.set([0, 0, 0, 0], 4); // source 0.0.0.0
      return b;
    }
    case 4: {
      const b = new Uint8Array(54); // one byte too many
      b.set(base);
      return b;
    }
    default:
      return crypto.getRandomValues(new Uint8Array(53)); // noise of the right length
  }
}

const keyFile = Deno.env.get("OM_INJECT_KEY");
const key = keyFile
  ? await importKey(parseKeyText(await Deno.readTextFile(keyFile), keyFile))
  : undefined;
const sequencer = new Sequencer(() => Date.now());
let replayed: Uint8Array | undefined;

let sent = 0;
for (let i = 0; i < count; i++) {
  let bytes = kind === "garbage" ? garbage(i) : good(kind as "join" | "ack" | "leave");
  if (key) {
    bytes = replayed ?? await seal(key, bytes, sequencer.next());
    if (Deno.env.get("OM_INJECT_REPLAY") === "1") replayed = bytes;
  }
  await new Promise<void>((resolve, reject) =>
    socket.send(bytes, DEFAULTS.port, DEFAULTS.group, (e) => (e ? reject(e) : resolve()))
  );
  sent++;
  if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 1));
}
socket.close();
console.log(sent);
