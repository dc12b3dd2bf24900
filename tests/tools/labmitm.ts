/**
 * A man in the middle between lab nodes, for the attack tests of a whole migration
 * (tests/integration/mitm_test.ts): run inside a node's network namespace, it listens where the
 * other nodes reach that node (its channel port, and the page port its faults announce,
 * lib/migration/faults.ts `pagePortVia`) and forwards to where the node's daemon really listens.
 * Both links are cut into their units: the channel into frames (`u32 length` ‖ frame, PROTOCOL.md
 * §8.1; the handshake's HELLO, WELCOME and AUTH pass untouched), the page link into records
 * (`u32 length` ‖ sealed record, §11.1, after the source's 64-byte token).
 *
 *   deno run -A labmitm.ts '{"channel":{"listen":"A:P","forward":"A:P2"},"pages":{...}}'
 *
 * Each line on stdin is a plan for the next unit that matches it, on any connection of its link:
 * `{"link":"channel"|"pages","direction":"in"|"out","action":"flip"|"replay"|"drop"|"inject",
 * "skip":N,"minLength":N,"afterPages":true}` ("in": towards this node's daemon; "skip": matching
 * units let through first; "afterPages": only once a page link opened since, in the middle of a
 * move). It answers `armed`, then `tampered LINK ACTION LENGTH` once done. `{"stats":true}` is
 * answered with `bytes LINK N` for both links (all bytes forwarded towards the daemon so far).
 */

type Link = "channel" | "pages";
type Direction = "in" | "out";
type Action = "flip" | "replay" | "drop" | "inject";

interface Plan {
  link: Link;
  direction: Direction;
  action: Action;
  skip?: number;
  minLength?: number;
  /** Only once a page link was opened after the plan was armed: in the middle of a move. */
  afterPages?: boolean;
}

const HANDSHAKE_TYPES = new Set([0x01, 0x02, 0x03]);
const TOKEN_LENGTH = 64;
const encoder = new TextEncoder();

const say = (line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n"));

const endpoint = (text: string) => {
  const at = text.lastIndexOf(":");
  return { hostname: text.slice(0, at), port: Number(text.slice(at + 1)) };
};

const concat = (a: Uint8Array, b: Uint8Array) => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

const writeAll = async (to: Deno.Conn, bytes: Uint8Array) => {
  while (bytes.length) bytes = bytes.subarray(await to.write(bytes));
};

let plan: Plan | undefined;
let skipped = 0;
let pageLinks = 0;
let pageLinksAtArm = 0;
const forwarded: Record<Link, number> = { channel: 0, pages: 0 };

/** Whether the armed plan takes this unit (and, if so, disarms it). */
function takes(link: Link, direction: Direction, unit: Uint8Array): Plan | undefined {
  if (!plan || plan.link !== link || plan.direction !== direction) return undefined;
  if (link === "channel" && HANDSHAKE_TYPES.has(unit[4])) return undefined;
  if (unit.length < (plan.minLength ?? 0)) return undefined;
  if (plan.afterPages && pageLinks === pageLinksAtArm) return undefined;
  if (skipped++ < (plan.skip ?? 0)) return undefined;
  const taken = plan;
  plan = undefined;
  return taken;
}

/** A forged unit as long as `unit`: its header (and the channel's type byte), random bytes. */
function forged(link: Link, unit: Uint8Array): Uint8Array {
  const out = new Uint8Array(unit.length);
  for (let at = 0; at < out.length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(out.length, at + 65536)));
  }
  out.set(unit.subarray(0, link === "channel" ? 5 : 4));
  return out;
}

async function pump(link: Link, direction: Direction, from: Deno.Conn, to: Deno.Conn) {
  const buffer = new Uint8Array(1 << 20);
  let pending = new Uint8Array(0);
  // The page link's token comes first, unframed, from the source.
  let raw = link === "pages" && direction === "in" ? TOKEN_LENGTH : 0;
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      if (direction === "in") forwarded[link] += n;
      pending = concat(pending, buffer.subarray(0, n));
      if (raw) {
        const through = pending.subarray(0, Math.min(raw, pending.length));
        await writeAll(to, through);
        raw -= through.length;
        pending = pending.slice(through.length);
      }
      while (pending.length >= 4) {
        const length = new DataView(pending.buffer, pending.byteOffset).getUint32(0);
        if (pending.length < 4 + length) break;
        const unit = pending.slice(0, 4 + length);
        pending = pending.slice(4 + length);
        const taken = takes(link, direction, unit);
        if (!taken) {
          await writeAll(to, unit);
          continue;
        }
        // Said first: the node may end the connection at the first tampered byte.
        say(`tampered ${link} ${taken.action} ${unit.length}`);
        switch (taken.action) {
          case "flip": {
            unit[4 + Math.floor(length / 2)] ^= 0x01;
            await writeAll(to, unit);
            break;
          }
          case "replay":
            await writeAll(to, unit);
            await writeAll(to, unit);
            break;
          case "drop":
            break;
          case "inject":
            await writeAll(to, forged(link, unit));
            await writeAll(to, unit);
            break;
        }
      }
    }
    // The sender is done: so is this direction; the other goes on until it ends too.
    await to.closeWrite();
    return;
  } catch { /* broken */ }
  for (const conn of [from, to]) {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

async function serve(link: Link, listen: string, forward: string) {
  const listener = Deno.listen(endpoint(listen));
  for await (const inbound of listener) {
    if (link === "pages") pageLinks++;
    Deno.connect(endpoint(forward)).then(async (outbound) => {
      await Promise.all([
        pump(link, "in", inbound, outbound),
        pump(link, "out", outbound, inbound),
      ]);
      for (const conn of [inbound, outbound]) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }, () => inbound.close());
  }
}

const routes = JSON.parse(Deno.args[0]) as Partial<
  Record<Link, { listen: string; forward: string }>
>;
for (const link of ["channel", "pages"] as const) {
  const route = routes[link];
  if (route) void serve(link, route.listen, route.forward);
}
say("ready");

const decoder = new TextDecoder();
let text = "";
for await (const chunk of Deno.stdin.readable) {
  text += decoder.decode(chunk, { stream: true });
  let newline: number;
  while ((newline = text.indexOf("\n")) >= 0) {
    const line = text.slice(0, newline);
    text = text.slice(newline + 1);
    const message = JSON.parse(line);
    if (message.stats) {
      for (const link of ["channel", "pages"] as const) say(`bytes ${link} ${forwarded[link]}`);
    } else {
      plan = message as Plan;
      skipped = 0;
      pageLinksAtArm = pageLinks;
      say("armed");
    }
  }
}
Deno.exit(0);
