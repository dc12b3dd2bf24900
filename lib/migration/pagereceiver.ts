/**
 * om's page receiver (PROTOCOL.md §11.1.1): the target's end of a page link in place of
 * `criu page-server`, for a dump that has no parent images (every migration on a kernel without
 * dirty-memory tracking, and the first round of a pre-copy). It speaks the part of CRIU's
 * page-server protocol such a dump uses and writes the same images `criu page-server` writes:
 * `pagemap-<id>.img` (or `pagemap-shmem-<id>.img`) and `pages-<n>.img`, which `criu restore`
 * reads.
 *
 * Why not criu's own: the page server moves the pages from the socket to the file through a pipe
 * of the default size, 64 KiB at a time (its log: `Created xfer pipe size 65536`), two splices per
 * 64 KiB, and on a busy target that is what the dump waits for. This receiver splices through a
 * 1 MiB pipe. Measured with bench/pagepath.ts (256 MiB, loopback, 10 rounds): the dump through
 * the link took a median of 265 ms into this receiver against 332 ms into `criu page-server`, and
 * 262 ms for a plain dump into a local file (bench/README.md).
 *
 * It is perl (perl-base is on every Debian, as for the page link's two ends): Deno cannot splice.
 * Its end of the page link is a unix socket to the daemon's relay, which opens the link's sealed
 * records into it (lib/migration/pagerelay.ts); the launcher of lib/migration/pagelistener.ts
 * connects it, puts it on descriptor 0 and execs the receiver. Perl calls splice(2) through `syscall`, by
 * its number on this machine's architecture ({@linkcode spliceSyscall}); on an architecture om
 * does not know the number of, the target runs `criu page-server` as before.
 *
 * The protocol, as CRIU 3 and 4 speak it (criu/page-xfer.c): every command is 24 bytes, `u32 cmd`
 * (the command in its low 16 bits, flags in its high 16), `u32 nr_pages`, `u64 vaddr`,
 * `u64 dst_id` (the image: its type in the low 8 bits, 1 for a task's pagemap and 2 for a shared
 * memory's, older CRIUs' numbers too; its id above them), all little-endian.
 *
 * - `PS_IOV_OPEN2` (4): opens the images of `dst_id`; answered with one byte, 0: no parent
 *   images. `PS_IOV_OPEN` (3) is the same without the answer.
 * - `PS_IOV_ADD_F` (6): a pagemap entry for `nr_pages` pages at `vaddr` with the flags; when they
 *   hold `PE_PRESENT` (4), the pages' bytes follow the command. The older `PS_IOV_ADD` (1) is the
 *   same with `PE_PRESENT`. `PE_PARENT` (1) entries (holes in a parent image) are refused: there
 *   is no parent here.
 * - `PS_IOV_CLOSE` (0x1023) and `PS_IOV_FORCE_CLOSE` (0x1024): the end; answered with a 32-bit 0.
 *   The receiver then exits 0.
 *
 * Anything else (a parent query, a lazy-pages request, an unknown command, the link ending before
 * the close) writes an `Error:` line to the log and exits 1: the page server failed, as a failed
 * `criu page-server` does.
 *
 * Room taken before the freeze ({@linkcode reservePages}): writing 256 MiB of pages into a tmpfs
 * allocates its memory, and during the dump that is frozen time. A task's `reserve-<id>` file,
 * allocated before the dump, becomes its `pages-<n>.img` at the open and is cut to the pages
 * written at its close (PROTOCOL.md §11.1.1). bench/pagepath.ts (256 MiB, 8 rounds): the dump
 * into a reservation took a median of 213 ms against 343 ms without, and 299 ms locally. The
 * reserver then warms as much memory for the restore ({@linkcode reserverArgs}).
 *
 * The images: a pagemap image starts with CRIU's two magics, `u32 0x54564319` (a common image)
 * and `u32 0x56084025` (a pagemap), then protobuf messages each after its `u32` length: first the
 * head `{pages_id = 1: n}`, then one entry `{vaddr = 1, nr_pages = 2, flags = 4}` per
 * `PS_IOV_ADD_F`. `pages-<n>.img` holds the present pages' bytes in order, with no header. `n`
 * counts from 65537 (0x10001) over the images opened, as criu page-server numbers them (above the
 * numbers of a dump's own local page images).
 */

import { parseMeminfo } from "../info/measure.ts";
import { privateMemory } from "../base/procs.ts";

/** splice(2)'s system call number on the architectures Deno runs on. */
const SPLICE_SYSCALL: Record<string, number> = { x86_64: 275, aarch64: 76 };

/** splice(2)'s number on `arch` (Deno.build.arch), or undefined when om does not know it. */
export function spliceSyscall(arch: string = Deno.build.arch): number | undefined {
  return SPLICE_SYSCALL[arch];
}

/**
 * `perl -e PAGE_RECEIVER SPLICE DIR LOG`, with its end of the page link on descriptor 0: receives
 * one dump's pages into the images directory DIR, errors to LOG (appended). SPLICE is splice(2)'s
 * system call number.
 */
export const PAGE_RECEIVER = "use strict; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC); " +
  "my ($nr, $dir, $log) = @ARGV; open(STDERR, '>>', $log) or exit 1; " +
  "my ($ids, $pages, $images, $pm, $pg, $open, $img, $kept, $wrote) = (65537, 0, 0); " +
  // The reservations no open took (reservePages) go at the end, and at a failure.
  "sub unreserve { opendir(my $d, $dir) or return; " +
  'unlink map { "$dir/$_" } grep { /^reserve-\\d+$/ } readdir $d } ' +
  'sub fail { print STDERR "Error: om page receiver: @_\\n"; ' +
  "truncate($img, $wrote) if $kept; unreserve(); exit 1 } " +
  "open(my $sk, '+<&=', 0) or fail(\"the page link: $!\"); binmode $sk; " +
  'pipe(my $pr, my $pw) or fail("pipe: $!"); ' +
  // F_SETPIPE_SZ (1031): a 1 MiB pipe; when refused (a user's pipe limit) the default 64 KiB.
  "fcntl($pw, 1031, 1048576); " +
  "sub take { my ($n) = @_; my $b = ''; while (length($b) < $n) { " +
  "my $r = sysread($sk, $b, $n - length($b), length($b)); " +
  'defined $r or fail("the page link: $!"); ' +
  '$r or fail("the page link ended before the dump closed it") } $b } ' +
  "sub varint { my ($v) = @_; my $b = ''; " +
  "while ($v >= 0x80) { $b .= chr(($v & 0x7f) | 0x80); $v >>= 7 } $b . chr($v) } " +
  "sub entry { print $pm pack('V', length $_[0]), $_[0] or fail(\"$dir: $!\") } " +
  'sub finish { return unless $pm; close($pm) or fail("$dir: $!"); ' +
  // A reserved image ends where its pages did.
  'truncate($pg, $wrote) or fail("$dir: $!") if $kept; ' +
  'close($pg) or fail("$dir: $!"); undef $pm; $kept = 0 } ' +
  "sub move { my ($in, $out, $n) = @_; for (;;) { " +
  "my $r = syscall(0 + $nr, 0 + $in, 0, 0 + $out, 0, 0 + $n, 1); " +
  'return $r if $r >= 0; fail("splice: $!") unless $!{EINTR} } } ' +
  "for (;;) { my ($cmd, $n, $vaddr, $id) = unpack('V V Q< Q<', take(24)); " +
  "my ($c, $flags) = ($cmd & 0xffff, $cmd >> 16); " +
  "if ($c == 3 || $c == 4) { my ($type, $of) = ($id & 0xff, $id >> 8); " +
  'my $name = (grep { $_ == $type } 1, 10, 11, 16, 17) ? "pagemap-$of.img" ' +
  ': (grep { $_ == $type } 2, 27, 28, 29, 32, 33, 34) ? "pagemap-shmem-$of.img" ' +
  ': fail("no image of type $type"); finish(); my $pid = $ids++; $images++; ' +
  'sysopen($pm, "$dir/$name", O_WRONLY | O_CREAT | O_TRUNC, 0600) or fail("$dir/$name: $!"); ' +
  "binmode $pm; print $pm pack('V V', 0x54564319, 0x56084025); entry(\"\\x08\" . varint($pid)); " +
  // A reservation for this task (reservePages) becomes its pages image.
  '$img = "$dir/pages-$pid.img"; $kept = $name !~ /shmem/ && -f "$dir/reserve-$of" ? 1 : 0; ' +
  "$wrote = 0; " +
  'rename("$dir/reserve-$of", $img) or fail("$dir/reserve-$of: $!") if $kept; ' +
  'sysopen($pg, $img, O_WRONLY | O_CREAT | ($kept ? 0 : O_TRUNC), 0600) or fail("$img: $!"); ' +
  "$open = $id; " +
  'if ($c == 4) { syswrite($sk, "\\0") == 1 or fail("the page link: $!") } } ' +
  "elsif ($c == 6 || $c == 1) { $flags = 4 if $c == 1; " +
  'defined $open && $id == $open or fail("pages for an image not opened"); ' +
  'fail("a hole in a parent image, and there is none") if $flags & 1; ' +
  'entry("\\x08" . varint($vaddr) . "\\x10" . varint($n) . "\\x20" . varint($flags)); ' +
  "next unless $flags & 4; $pages += $n; my $left = $n * 4096; " +
  "while ($left > 0) { my $got = move(0, fileno($pw), $left < 1048576 ? $left : 1048576); " +
  '$got or fail("the page link ended in the pages"); ' +
  "for (my $put = 0; $put < $got;) { my $w = move(fileno($pr), fileno($pg), $got - $put); " +
  '$w or fail("$dir: splice wrote nothing"); $put += $w } $left -= $got } $wrote += $n * 4096 } ' +
  "elsif ($c == 0x1023 || $c == 0x1024) { finish(); unreserve(); " +
  "syswrite($sk, pack('l', 0)) == 4 or fail(\"the page link: $!\"); " +
  'print STDERR "om page receiver: $pages pages in $images images\\n"; exit 0 } ' +
  'else { fail("page-server command $c is not one this receiver takes") } }';

/** fallocate(2)'s and mmap(2)'s system call numbers on the architectures Deno runs on. */
const RESERVER_SYSCALLS: Record<string, { fallocate: number; mmap: number }> = {
  x86_64: { fallocate: 285, mmap: 9 },
  aarch64: { fallocate: 47, mmap: 222 },
};

/** After this long (ms) the reserver starts no more warm-up: it is time before the freeze. */
export const WARM_LIMIT_MS = 2000;

/**
 * `perl -e PAGE_RESERVER FALLOCATE MMAP DIR WARM MS ID=BYTES...`: makes `DIR/reserve-ID` (mode
 * 0600) and allocates BYTES to it with fallocate(2), whose system call number is FALLOCATE. A file
 * system that cannot allocate ahead (EOPNOTSUPP) gets no reservation; any other failure (no room)
 * removes what it made, writes the file and the reason to stderr and exits 1. Then it maps up to
 * WARM bytes of memory of its own with mmap(2) (number MMAP), `MAP_POPULATE`, 64 MiB at a time,
 * starting no chunk after MS milliseconds and none after a failed one, prints `warmed N` (the bytes
 * mapped) and a newline, and gives that memory back as it exits (WARM 0: none).
 */
export const PAGE_RESERVER = "use strict; use Fcntl qw(O_WRONLY O_CREAT O_TRUNC); use POSIX (); " +
  "my ($nr, $mm, $dir, $warm, $ms, @want) = @ARGV; my @made; " +
  'sub fail { print STDERR "@_\\n"; unlink @made; exit 1 } ' +
  'for (@want) { my ($id, $bytes) = /^(\\d+)=(\\d+)$/ or fail("bad reservation $_"); ' +
  'my $file = "$dir/reserve-$id"; ' +
  'sysopen(my $f, $file, O_WRONLY | O_CREAT | O_TRUNC, 0600) or fail("$file: $!"); ' +
  "push @made, $file; next if syscall(0 + $nr, fileno($f), 0, 0, 0 + $bytes) == 0; " +
  'fail("$file: $!") unless $!{EOPNOTSUPP}; unlink pop @made } ' +
  // POSIX::times: the elapsed time in clock ticks. mmap: PROT_READ | PROT_WRITE (3),
  // MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE (0x8022), the kernel faulting every page in.
  "my ($hz, $t0, $done) = (POSIX::sysconf(POSIX::_SC_CLK_TCK()), (POSIX::times())[0], 0); " +
  "while ($warm > 0 && ((POSIX::times())[0] - $t0) * 1000 < $ms * $hz) { " +
  "my $n = $warm < 67108864 ? $warm : 67108864; " +
  "last if syscall(0 + $mm, 0, 0 + $n, 3, 0x8022, -1, 0) == -1; $warm -= $n; $done += $n } " +
  'print "warmed $done\\n"; exit 0';

/** Options of a page receiver. */
export interface ReceiverArgsOptions {
  /** Where the images go. */
  imagesDir: string;
  /** Its log (errors, and a last line with what it received). */
  logFile: string;
}

/**
 * The command of a page receiver on this machine, for lib/migration/pagelistener.ts's listener, or
 * undefined when splice(2)'s number is not known here (then run `criu page-server`).
 */
export function receiverArgs(
  options: ReceiverArgsOptions,
  arch: string = Deno.build.arch,
): string[] | undefined {
  const nr = spliceSyscall(arch);
  if (nr === undefined) return undefined;
  return ["perl", "-e", PAGE_RECEIVER, String(nr), options.imagesDir, options.logFile];
}

/** Options of {@linkcode reserverArgs}. */
export interface ReserverOptions {
  /** Where the images go. */
  imagesDir: string;
  /** Bytes by task id (the task's PID in the job's namespace, which names its images). */
  bytes: Record<string, number>;
  /**
   * The node's available memory (`MemAvailable`) before the reservation, in bytes: the warm-up is
   * made when it has three times the pages (the reservation, the warm-up, and as much to spare).
   */
  memAvailable: number;
}

/**
 * The reserver's command for a dump (PROTOCOL.md §11.1.1), or undefined when there is nothing to
 * reserve, or fallocate(2)'s and mmap(2)'s numbers are not known here. Besides the room for the
 * pages, it warms as much memory as the pages need for the restore that follows (the restored
 * job's own memory), when that is at most a third of the node's available memory, for up to
 * WARM_LIMIT_MS: a virtual machine's host backs memory the guest has not touched, or gave back
 * (free page reporting), only when it is touched again, and a restore into such memory took 2-3
 * times as long (bench/README.md); memory just given back by the warm-up is what the kernel hands
 * out next. Touching cold memory took 0.2-0.5 s per 256 MiB here, and 14 s for 2 GiB once: hence
 * the limit.
 */
export function reserverArgs(
  options: ReserverOptions,
  arch: string = Deno.build.arch,
): string[] | undefined {
  const nr = RESERVER_SYSCALLS[arch];
  const entries = Object.entries(options.bytes).filter(([, n]) => n > 0);
  if (nr === undefined || entries.length === 0) return undefined;
  const total = reservedBytes(options.bytes);
  const warm = total * 3 <= options.memAvailable ? total : 0;
  return [
    "perl",
    "-e",
    PAGE_RESERVER,
    String(nr.fallocate),
    String(nr.mmap),
    options.imagesDir,
    String(warm),
    String(WARM_LIMIT_MS),
    ...entries.map(([id, n]) => `${id}=${n}`),
  ];
}

/**
 * Reserves room in `imagesDir` for the pages of the tasks in `bytes`, before the dump:
 * `reserve-<id>` files that om's receiver takes as those tasks' pages images, so that the room is
 * taken now instead of while the job is frozen, and warms memory for the restore
 * ({@linkcode reserverArgs}); returns the bytes warmed. Throws when the room is not there.
 */
export async function reservePages(
  imagesDir: string,
  bytes: Record<string, number>,
): Promise<{ warmed: number }> {
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const memAvailable = parseMeminfo(meminfo).MemAvailable ?? 0;
  const args = reserverArgs({ imagesDir, bytes, memAvailable });
  if (!args) return { warmed: 0 };
  const { code, signal, stdout, stderr } = await new Deno.Command(args[0], {
    args: args.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (signal) {
    throw new Error(`no room for the pages: the reserver was killed by ${signal} (out of memory?)`);
  }
  if (code !== 0) throw new Error(`no room for the pages: ${text.decode(stderr).trim()}`);
  return { warmed: Number(/^warmed (\d+)$/m.exec(text.decode(stdout))?.[1] ?? 0) };
}

/** Most tasks a `mig.pages` reserves room for (§11.1.1); the largest, when a job has more. */
export const RESERVE_MAX_TASKS = 1024;

/** The least a task must hold for the source to reserve room for it. */
export const RESERVE_MIN_BYTES = 1 << 20;

/**
 * Whether `value` is a `mig.pages` reservation, as a target takes it: bytes (a whole number from
 * 1) by task id (a whole number from 1, at most 10 digits), at most RESERVE_MAX_TASKS tasks.
 */
export function isReservation(value: unknown): value is Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return entries.length <= RESERVE_MAX_TASKS &&
    entries.every(([id, bytes]) =>
      /^[1-9]\d{0,9}$/.test(id) && Number.isSafeInteger(bytes) && bytes > 0
    );
}

/**
 * What a `mig.pages` reserves for the dump of `pid`'s tree (§11.1.1): the private memory of its
 * tasks of RESERVE_MIN_BYTES and more (lib/base/procs.ts privateMemory), the RESERVE_MAX_TASKS
 * largest; undefined for none.
 */
export async function pageReservation(
  pid: number,
  procDir = "/proc",
): Promise<Record<string, number> | undefined> {
  const sizes = Object.entries(await privateMemory(pid, procDir).catch(() => ({})))
    .filter(([, bytes]) => bytes >= RESERVE_MIN_BYTES)
    .sort(([, a], [, b]) => b - a)
    .slice(0, RESERVE_MAX_TASKS);
  return sizes.length > 0 ? Object.fromEntries(sizes) : undefined;
}

/** The bytes of a `mig.pages` reservation, all tasks together. */
export function reservedBytes(reserve: Record<string, number> | undefined): number {
  return Object.values(reserve ?? {}).reduce((sum, bytes) => sum + bytes, 0);
}
