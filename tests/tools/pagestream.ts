/**
 * Page-server streams for tests: what `criu dump --page-server` sends on a page link, recorded
 * from a real dump ({@linkcode PAGE_RECORDER}) or made by hand, fed to a receiving command behind
 * the page link's listener ({@linkcode feed}).
 */
import { listenForPages, newPageToken } from "../../lib/migration/pagelink.ts";

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
 * `perl -e PAGE_RECORDER FILE`, on a page link: answers a dump as a page server with no parent
 * images does (one zero byte to each open, a 32-bit 0 to the close) and writes everything the
 * dump sent to FILE, pages included; exits 0 after the close.
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

/**
 * Connects to a page link listener at `port`, sends `token` and `stream`, and reads the answers
 * until the other end closes the link; their bytes.
 */
export async function sendOnLink(port: number, token: string, stream: Uint8Array) {
  const link = await Deno.connect({ hostname: "127.0.0.1", port });
  const answers: number[] = [];
  try {
    await link.write(new TextEncoder().encode(token));
    let data = stream;
    while (data.length > 0) data = data.subarray(await link.write(data));
    await link.closeWrite();
    const buffer = new Uint8Array(64);
    for (;;) {
      const n = await link.read(buffer).catch(() => null);
      if (n === null) break;
      answers.push(...buffer.subarray(0, n));
    }
  } finally {
    link.close();
  }
  return answers;
}

/**
 * Runs `command` behind a page link listener in `cwd`, sends it the token and `stream`, reads its
 * answers until it closes the link; its exit code and its answers' bytes.
 */
export async function feed(
  command: readonly string[],
  stream: Uint8Array,
  cwd: string,
): Promise<{ code: number; answers: number[] }> {
  const token = newPageToken();
  const listener = await listenForPages(command, { token, cwd });
  const answers = await sendOnLink(listener.port, token, stream);
  return { code: (await listener.child.status).code, answers };
}
