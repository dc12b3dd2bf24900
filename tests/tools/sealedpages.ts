/**
 * Page-server streams for tests, on the sealed page link (PROTOCOL.md §11.1): what `criu dump
 * --page-server` sends, recorded from a real dump ({@linkcode PAGE_RECORDER}) or made by hand
 * ({@linkcode command}), sealed as a source's relay seals it ({@linkcode sealedStream}) and sent
 * to a target's listener ({@linkcode sendSealed}), or fed to a receiving command behind one
 * ({@linkcode feed}).
 */
import { newPageToken } from "../../lib/migration/pagelink.ts";
import { listenForPages, type PageServerEnd } from "../../lib/migration/pagelistener.ts";
import {
  derivePageKeys,
  newPageSecret,
  RECORD_DATA_MAX,
  RECORD_HEADER_SIZE,
  RecordKind,
  recordLength,
  RecordOpener,
  RecordSealer,
} from "../../lib/migration/pageseal.ts";

/** One 24-byte page-server command. */
export function command(cmd: number, flags: number, pages: number, vaddr: bigint, dst: bigint) {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, (flags << 16 | cmd) >>> 0, true);
  view.setUint32(4, pages, true);
  view.setBigUint64(8, vaddr, true);
  view.setBigUint64(16, dst, true);
  return bytes;
}

/** A task's pagemap image id on the wire: the id above 8 bits of type 1. */
export const task = (id: number) => BigInt(id) << 8n | 1n;
/** Page-server commands, and a pagemap entry's flags (criu/page-xfer.c, criu/include/pagemap.h). */
export const OPEN2 = 4, ADD = 1, ADD_F = 6, CLOSE = 0x1023, PRESENT = 4, LAZY = 2, PARENT = 1;

/** The bytes of `parts`, one after the other. */
export const concat = (...parts: Uint8Array[]) => {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
};

/**
 * `perl -e PAGE_RECORDER FILE`, on a page link (its socket on descriptor 0): answers a dump as a
 * page server with no parent images does (one zero byte to each open, a 32-bit 0 to the close)
 * and writes everything the dump sent to FILE, pages included; exits 0 after the close.
 */
export const PAGE_RECORDER = 'open(my $out, ">", $ARGV[0]) or die "$ARGV[0]: $!\\n"; ' +
  'open(my $sk, "+<&=0") or die "the page link: $!\\n"; binmode $sk; binmode $out; ' +
  "sub take { my ($n) = @_; my $b = ''; while (length($b) < $n) { " +
  "sysread($sk, $b, $n - length($b), length($b)) or die qq(page link ended\\n); } " +
  "print $out $b; $b } " +
  "for (;;) { my ($cmd, $pages) = unpack('V V', take(24)); my ($c, $f) = ($cmd & 0xffff, $cmd >> 16); " +
  'if ($c == 4) { syswrite($sk, "\\0") } ' +
  "elsif ($c == 6 && $f & 4) { my $left = $pages * 4096; while ($left > 0) { " +
  "my $n = $left > 1048576 ? 1048576 : $left; take($n); $left -= $n } } " +
  "elsif ($c == 0x1023 || $c == 0x1024) { close $out or die; syswrite($sk, pack('l', 0)); last } " +
  'elsif ($c != 6) { die "unknown page-server command $c\\n" } }';

/** A page link's token and secret, fresh. */
export const newLink = () => ({ token: newPageToken(), secret: newPageSecret() });

/**
 * What a source's relay sends on a page link for `stream`: the token, then `stream` in sealed
 * records of at most `chunk` bytes, then the end record (without it: `end: false`).
 */
export async function sealedStream(
  link: { token: string; secret: string },
  stream: Uint8Array,
  options: { chunk?: number; end?: boolean } = {},
): Promise<Uint8Array> {
  const keys = await derivePageKeys(link.secret, link.token);
  const sealer = new RecordSealer(keys.sourceToTarget);
  const chunk = options.chunk ?? RECORD_DATA_MAX;
  const parts: Uint8Array[] = [new TextEncoder().encode(link.token)];
  for (let at = 0; at < stream.length; at += chunk) {
    parts.push(sealer.seal(RecordKind.data, stream.subarray(at, at + chunk)));
  }
  if (options.end !== false) parts.push(sealer.seal(RecordKind.end));
  return concat(...parts);
}

/**
 * The data of a target's sealed records in `bytes` (what it sent back to the source), opened, up
 * to its end record or to where the bytes stop, and whether the end record came; throws when a
 * record does not open.
 */
export async function openAnswers(
  link: { token: string; secret: string },
  bytes: Uint8Array,
): Promise<{ answers: number[]; ended: boolean }> {
  const keys = await derivePageKeys(link.secret, link.token);
  const opener = new RecordOpener(keys.targetToSource);
  bytes = bytes.slice(); // records open in place
  const answers: number[] = [];
  let at = 0;
  while (!opener.ended && at + RECORD_HEADER_SIZE <= bytes.length) {
    const lengthField = bytes.subarray(at, at + RECORD_HEADER_SIZE);
    const length = recordLength(lengthField, opener.counter);
    if (at + RECORD_HEADER_SIZE + length > bytes.length) break;
    const box = bytes.subarray(at + RECORD_HEADER_SIZE, at + RECORD_HEADER_SIZE + length);
    answers.push(...opener.open(lengthField, box).data);
    at += RECORD_HEADER_SIZE + length;
  }
  return { answers, ended: opener.ended };
}

/**
 * Connects to a page link listener at `port`, sends `bytes` as they are (a sealed stream, or a
 * stranger's or a man in the middle's bytes), and reads until the other end closes the link;
 * every byte it sent back.
 */
export async function sendOnLink(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const link = await Deno.connect({ hostname: "127.0.0.1", port });
  const back: Uint8Array[] = [];
  try {
    // Read while writing: the target's heartbeats and answers come meanwhile.
    const reading = (async () => {
      const buffer = new Uint8Array(65536);
      for (;;) {
        const n = await link.read(buffer).catch(() => null);
        if (n === null) break;
        back.push(buffer.slice(0, n));
      }
    })();
    let data = bytes;
    while (data.length > 0) data = data.subarray(await link.write(data));
    await link.closeWrite().catch(() => {});
    await reading;
  } finally {
    try {
      link.close();
    } catch { /* closed */ }
  }
  return concat(...back);
}

/**
 * Sends `stream` sealed on the page link at `port` (a clean link: every record and the end) and
 * returns the target's answers, opened.
 */
export async function sendSealed(
  port: number,
  link: { token: string; secret: string },
  stream: Uint8Array,
): Promise<number[]> {
  const back = await sendOnLink(port, await sealedStream(link, stream));
  return (await openAnswers(link, back)).answers;
}

/**
 * Runs `command` behind a page link listener in `cwd`, sends it `stream` sealed, reads its
 * answers until it closes the link; its exit code, its answers' bytes and how it ended.
 */
export async function feed(
  command: readonly string[],
  stream: Uint8Array,
  cwd: string,
): Promise<{ code: number; answers: number[]; end: PageServerEnd }> {
  const link = newLink();
  const listener = await listenForPages(command, { ...link, dir: cwd });
  const answers = await sendSealed(listener.port, link, stream);
  const end = await listener.done;
  return { code: end.code, answers, end };
}
