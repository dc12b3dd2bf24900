/**
 * The seal's own throughput (a diagnostic beside bench/migrate.ts, not part of `deno task bench`):
 * how many MB/s one core seals and opens again (lib/channel/seal.ts, AES-256-GCM through
 * WebCrypto, as every frame after a keyed handshake is), for 4 MiB frames (a migration's
 * `mig.file` chunk, lib/migration/files.ts) and 64 KiB frames, beside a plain copy of the same
 * bytes (the floor: the least any handling of a frame costs) and sealing alone (one side's share
 * of the work); for comparison, what node:crypto offers besides WebCrypto (AES-256-GCM and
 * ChaCha20-Poly1305), and the page link's ChaCha20-Poly1305 in place (lib/migration/chacha.ts),
 * OpenSSL's through FFI and node:crypto's. Each figure is the median of `--rounds` rounds, the ways interleaved in a
 * rotating order; each round moves `--mb` MiB through each way.
 *
 *   deno run -A bench/seal.ts [--rounds 7] [--mb 256]
 */
import {
  type CipherGCM,
  createCipheriv,
  createDecipheriv,
  type DecipherGCM,
  getCiphers,
} from "node:crypto";
import { parseArgs } from "node:util";
import { deriveSeal, sealIv } from "../lib/channel/seal.ts";
import { importKey } from "../lib/base/key.ts";
import { nodeChaCha, openSslChaCha } from "../lib/migration/chacha.ts";
import { benchMain, machine, median, ratio, renderTable, saveResults } from "./report.ts";

interface SealBenchOptions {
  rounds: number;
  mb: number;
}

/** Parses `--rounds N --mb N`. */
export function parseSealArgs(args: readonly string[]): SealBenchOptions {
  const { values } = parseArgs({
    args: [...args],
    options: { rounds: { type: "string" }, mb: { type: "string" } },
  });
  const whole = (text: string | undefined, fallback: number, what: string) => {
    if (text === undefined) return fallback;
    if (!/^[1-9]\d*$/.test(text)) {
      throw new TypeError(`Cannot use --${what} "${text}": not a count`);
    }
    return Number(text);
  };
  return { rounds: whole(values.rounds, 7, "rounds"), mb: whole(values.mb, 256, "mb") };
}

/** Seals and opens one frame, or copies it: one way of handling a frame. */
type Way = (frame: Uint8Array) => Promise<void> | void;

const HEADER = new Uint8Array([0, 0, 0, 0, 0x07]);

/** The ways, each made for one run (their counters start at 0). */
async function makeWays(): Promise<Map<string, Way>> {
  const key = await importKey(crypto.getRandomValues(new Uint8Array(32)));
  const params = {
    version: 2,
    nonces: {
      client: crypto.getRandomValues(new Uint8Array(32)),
      server: crypto.getRandomValues(new Uint8Array(32)),
    },
    clientNode: 1,
    serverNode: 2,
  };
  const client = await deriveSeal(key, "client", params);
  const server = await deriveSeal(key, "server", params);
  const ways = new Map<string, Way>();
  let copy: Uint8Array | undefined;
  ways.set("copy (floor)", (frame) => {
    if (copy?.length !== frame.length) copy = new Uint8Array(frame.length);
    copy.set(frame);
  });
  ways.set("seal+open, WebCrypto AES-256-GCM", async (frame) => {
    await server.open(await client.seal(frame, HEADER), HEADER);
  });
  // One side's share: a node seals what it sends and opens what it receives.
  const sealer = await deriveSeal(key, "client", params);
  ways.set("seal only, WebCrypto AES-256-GCM", async (frame) => {
    await sealer.seal(frame, HEADER);
  });
  const raw = crypto.getRandomValues(new Uint8Array(32));
  for (
    const [name, cipher] of [["AES-256-GCM", "aes-256-gcm"], [
      "ChaCha20-Poly1305",
      "chacha20-poly1305",
    ]]
  ) {
    if (!getCiphers().includes(cipher)) continue;
    let counter = 0;
    ways.set(`seal+open, node:crypto ${name}`, (frame) => {
      const iv = sealIv(counter++);
      // Both are AEAD ciphers with the GCM interface (AAD, tag).
      const gcm = cipher as "aes-256-gcm";
      const sealer: CipherGCM = createCipheriv(gcm, raw, iv, { authTagLength: 16 });
      sealer.setAAD(HEADER);
      const sealed = [sealer.update(frame), sealer.final()];
      const tag = sealer.getAuthTag();
      const opener: DecipherGCM = createDecipheriv(gcm, raw, iv, { authTagLength: 16 });
      opener.setAAD(HEADER);
      opener.setAuthTag(tag);
      for (const part of sealed) opener.update(part);
      opener.final();
    });
  }
  // The page link's records (lib/migration/chacha.ts): sealed and opened in place, by OpenSSL
  // through FFI and by node:crypto, as pageseal.ts does with whichever this node has.
  const nonce = new Uint8Array(12);
  const tag = new Uint8Array(16);
  for (const impl of [openSslChaCha(), nodeChaCha]) {
    if (!impl) continue;
    ways.set(`seal+open in place, page link ChaCha20-Poly1305 (${impl.name})`, (frame) => {
      impl.seal(raw, nonce, HEADER, frame, tag);
      if (!impl.open(raw, nonce, HEADER, frame, tag)) throw new Error("a record did not open");
    });
  }
  return ways;
}

/** MB/s of `way` over `total` bytes in frames of `size`. */
async function measure(way: Way, size: number, total: number): Promise<number> {
  const frame = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
  const whole = new Uint8Array(size);
  for (let at = 0; at < size; at += frame.length) whole.set(frame.subarray(0, size - at), at);
  const count = Math.max(1, Math.round(total / size));
  await way(whole); // warm
  const started = performance.now();
  for (let i = 0; i < count; i++) await way(whole);
  const seconds = (performance.now() - started) / 1000;
  return (count * size) / 1e6 / seconds;
}

const SIZES = [["4 MiB", 4 << 20], ["64 KiB", 64 << 10]] as const;

async function runSealBench(options: SealBenchOptions): Promise<void> {
  const ways = await makeWays();
  const names = [...ways.keys()];
  console.log(
    `seal: ${options.mb} MiB per way and frame size, ${options.rounds} rounds, interleaved`,
  );
  const figures = new Map<string, number[]>();
  for (let round = 0; round < options.rounds; round++) {
    for (const [label, size] of SIZES) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      for (const name of order) {
        const mbs = await measure(ways.get(name)!, size, options.mb << 20);
        const key = `${label}|${name}`;
        figures.set(key, [...(figures.get(key) ?? []), mbs]);
      }
    }
  }
  const summary = SIZES.flatMap(([label]) => {
    const floor = median(figures.get(`${label}|copy (floor)`)!);
    return names.map((name) => {
      const mbs = median(figures.get(`${label}|${name}`)!);
      return { frame: label, way: name, mbPerSecond: mbs, ofFloor: mbs / floor };
    });
  });
  console.log("");
  console.log(renderTable(
    ["frame", "way", "MB/s (median)", "x copy"],
    summary.map((s) => [s.frame, s.way, s.mbPerSecond.toFixed(0), ratio(s.ofFloor)]),
  ));
  const path = await saveResults("seal", {
    machine: machine(),
    options,
    summary,
    rounds: Object.fromEntries(figures),
  });
  console.log(`results: ${path}`);
}

if (import.meta.main) {
  await benchMain("seal", () => parseSealArgs(Deno.args), runSealBench);
}
