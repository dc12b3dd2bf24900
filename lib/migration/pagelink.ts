/**
 * The page link of a migration (PROTOCOL.md §11.1): one TCP connection from the source node to
 * the target, over which `criu dump --page-server` sends the job's memory pages straight to a page
 * receiver on the target (om's, lib/migration/pagereceiver.ts, or `criu page-server`) while the dump runs,
 * so the pages are not written, read and sent again after the dump. CRIU's page-server protocol
 * has no authentication of its own, so the connection is admitted by a one-time token: 32 random
 * bytes that the source sends to the target over the authenticated channel (`mig.pages`), and
 * then, as 64 lowercase hex characters, as the first bytes of the page connection. The target's
 * listener accepts connections until one starts with the token (others are closed unread), stops
 * listening, and hands that socket to the receiver.
 *
 * Deno cannot pass a socket to a child process, so both ends are small perl programs (perl-base
 * is in every Debian, as for the restore waiter of lib/migration/migration.ts) that make the connection,
 * put the socket on their descriptor 0 and exec the command they are given (criu, which uses it
 * through `--ps-socket 0`, or om's receiver).
 */
import { withTimeout } from "../base/time.ts";

/** Length of a page token in bytes (64 hex characters on the wire). */
export const PAGE_TOKEN_BYTES = 32;

/** The exit code of either end when it could not make the link (before criu ran). */
export const PAGE_LINK_FAILED = 124;

/** How long the listener waits for the source's connection before it gives up (exit 124). */
export const PAGE_LISTEN_SECONDS = 30;

/**
 * How long either end of a page link waits on a peer that takes nothing before the link fails
 * (TCP_USER_TIMEOUT, in ms, with keepalive on both ends): what one end sent stays unacknowledged,
 * or its keepalive probes unanswered (a peer dead or cut off mid-dump), or the other end's
 * receive window stays shut (a page server that stopped reading, e.g. stuck writing its images:
 * Linux 5.11 and later count that too). The dump is frozen time: a source then fails the dump
 * and the job runs on where it was; a target's page server fails.
 */
export const PAGE_LINK_SILENCE_MS = 10_000;

/** Keepalive on both ends: the first probe after this many seconds of silence, then every 2 s. */
const KEEPALIVE_IDLE_S = 5;

/** Perl: keepalive on socket `$k`, and TCP_USER_TIMEOUT at PAGE_LINK_SILENCE_MS. */
const SILENCE_OPTIONS = "setsockopt($k, SOL_SOCKET, SO_KEEPALIVE, 1); " +
  `setsockopt($k, IPPROTO_TCP, TCP_KEEPIDLE, ${KEEPALIVE_IDLE_S}); ` +
  "setsockopt($k, IPPROTO_TCP, TCP_KEEPINTVL, 2); " +
  `setsockopt($k, IPPROTO_TCP, TCP_USER_TIMEOUT, ${PAGE_LINK_SILENCE_MS}); `;

/** The perl import of SILENCE_OPTIONS' constants. */
const SILENCE_IMPORTS =
  "use Socket qw(SOL_SOCKET SO_KEEPALIVE IPPROTO_TCP TCP_KEEPIDLE TCP_KEEPINTVL " +
  "TCP_USER_TIMEOUT TCP_NODELAY); ";

/**
 * The target's end: `perl -e PAGE_LISTENER TOKEN SECONDS COMMAND...`. Listens on a free TCP port
 * of every address, prints the port and a newline on stdout (then points stdout at /dev/null),
 * accepts connections until one sends TOKEN within 2 s, stops listening, and execs COMMAND with
 * that socket as its stdin, with keepalive on (a probe after 5 s of silence, then every 2 s) and
 * TCP_USER_TIMEOUT at {@linkcode PAGE_LINK_SILENCE_MS}: a source gone mid-dump fails the link
 * (COMMAND's read) instead of leaving COMMAND waiting for good. Exits 124 when it cannot listen or
 * no connection brings the token within SECONDS.
 */
export const PAGE_LISTENER = "use IO::Socket::INET; " + SILENCE_IMPORTS +
  "my ($t, $s, @c) = @ARGV; " +
  "my $l = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => 0, Listen => 4, " +
  'ReuseAddr => 1) or exit 124; $| = 1; print $l->sockport, "\\n"; ' +
  "open(STDOUT, '>', '/dev/null'); $SIG{ALRM} = sub { exit 124 }; alarm $s; " +
  "for (;;) { my $k = $l->accept or next; my $g = ''; " +
  "while (length($g) < length($t)) { my $r = ''; vec($r, fileno($k), 1) = 1; " +
  "select($r, undef, undef, 2) > 0 or last; " +
  "sysread($k, $g, length($t) - length($g), length($g)) or last } " +
  "if ($g eq $t) { close $l; alarm 0; " + SILENCE_OPTIONS +
  "open(STDIN, '<&', $k) or exit 124; close $k; " +
  "exec { $c[0] } @c; exit 124 } close $k }";

/**
 * The source's end: `perl -e PAGE_CONNECTOR HOST PORT TOKEN GATE COMMAND...`. Connects to HOST:PORT
 * (10 s at most), turns keepalive on and sets TCP_USER_TIMEOUT at {@linkcode PAGE_LINK_SILENCE_MS}
 * as the listener does (a target cut off mid-dump fails criu's send, or its wait for the page
 * server's answer, within seconds: it does not keep the job frozen for TCP's own 15 minutes, or for
 * good) and sends TOKEN. Then, without a gate (GATE empty), it prints `linked` and a newline on
 * stdout and waits for one byte on stdin, the go, before it runs COMMAND. With a gate, it makes the
 * FIFO GATE, runs COMMAND at once with `OM_GATE=GATE` in its environment, and prints `linked` once
 * COMMAND holds the FIFO open for reading: COMMAND has started and waits there for the go
 * ({@linkcode DUMP_GATE}: `criu dump` then has started and checked the kernel, and has not frozen
 * the job yet). At the go the connector writes `go` and a newline into the FIFO; when stdin ends
 * without the go, `no` and a newline. COMMAND runs in a child, with the socket as its stdin and
 * stdout on /dev/null; the connector exits with its status (128+N for signal N), or 124 when it
 * cannot connect or send, or stdin ends without the go. When COMMAND ends before it opened the
 * gate, the connector exits with its status at once. The FIFO is removed at the end. If the
 * connector dies, the FIFO has no writer left and the reader sees its end: a gated COMMAND gives up
 * without the go.
 *
 * Before the go nothing of the job is frozen: the link, perl's start and (gated) criu's own start
 * and kernel checks, tens of milliseconds, are not frozen time.
 *
 * While COMMAND runs after the go, the parent sets TCP_NODELAY on its copy of the socket every
 * millisecond, which pushes out whatever the socket holds back: `criu dump` corks the page-server
 * socket (TCP_CORK) for the whole dump and sends its last message, the close, without uncorking
 * before it waits for the answer, so those last bytes waited for the kernel's 200 ms cork timer
 * (seen here: every page-server dump took 200 ms longer, whatever its size). The dump is frozen
 * time, so the tick is short, and COMMAND's end (SIGCHLD) cuts the wait short.
 */
export const PAGE_CONNECTOR = "use IO::Socket::INET; " + SILENCE_IMPORTS +
  "use POSIX qw(WNOHANG mkfifo); use Fcntl qw(O_WRONLY O_NONBLOCK); " +
  "my ($h, $p, $t, $g, @c) = @ARGV; my ($pid, $f); $SIG{PIPE} = 'IGNORE'; " +
  "my $k = IO::Socket::INET->new(PeerAddr => $h, PeerPort => $p, Proto => 'tcp', " +
  "Timeout => 10) or exit 124; " + SILENCE_OPTIONS +
  "syswrite($k, $t) == length($t) or exit 124; " +
  "sub status { unlink $g if $g ne ''; exit($? & 127 ? 128 + ($? & 127) : $? >> 8) } " +
  "sub run { $pid = fork() // exit 124; return if $pid; open(STDOUT, '>', '/dev/null'); " +
  "open(STDIN, '<&', $k) or exit 124; exec { $c[0] } @c; exit 124 } " +
  "if ($g ne '') { unlink $g; mkfifo($g, 0600) or exit 124; $ENV{OM_GATE} = $g; run(); " +
  "until (sysopen($f, $g, O_WRONLY | O_NONBLOCK)) { " +
  "status() if waitpid($pid, WNOHANG) > 0; select(undef, undef, undef, 0.001) } } " +
  '$| = 1; print "linked\\n"; ' + "open(STDOUT, '>', '/dev/null'); " +
  "my $go = sysread(STDIN, my $b, 1) == 1; " +
  'if ($f) { syswrite($f, $go ? "go\\n" : "no\\n"); close $f } ' +
  "elsif ($go) { run() } else { exit 124 } " +
  "$SIG{CHLD} = sub {}; until (waitpid($pid, WNOHANG) > 0) { " +
  "setsockopt($k, IPPROTO_TCP, TCP_NODELAY, 1) if $go; select(undef, undef, undef, 0.001) } " +
  "unless ($go) { unlink $g if $g ne ''; exit 124 } status()";

/**
 * The gate of a gated `criu dump` ({@linkcode PAGE_CONNECTOR}), given to criu as
 * `--action-script`: a shell script criu runs at each step of the dump with the step in
 * `CRTOOLS_SCRIPT_ACTION`. At `pre-dump` (criu has started and checked the kernel, and has not
 * seized the job) it reads one line from the FIFO `$OM_GATE` and lets criu go on only if it is
 * `go`; anything else (`no`, the end of the FIFO) fails the script, and criu gives up without
 * freezing the job. Every other step passes at once.
 */
export const DUMP_GATE = "#!/bin/sh\n" +
  "# om's dump gate (lib/migration/pagelink.ts): criu waits here, started, until the page link says go.\n" +
  '[ "$CRTOOLS_SCRIPT_ACTION" = pre-dump ] || exit 0\n' +
  'read -r go < "$OM_GATE" && [ "$go" = go ]\n';

/** A fresh page token, as the 64 hex characters sent on the page connection. */
export function newPageToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(PAGE_TOKEN_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `text` is a page token (64 lowercase hex characters). */
export function isPageToken(text: unknown): text is string {
  return typeof text === "string" && /^[0-9a-f]{64}$/.test(text);
}

/** Where a page link goes: the target's listener, and the token that admits it. */
export interface PageLinkTarget {
  readonly hostname: string;
  readonly port: number;
  readonly token: string;
}

/**
 * The argv (after `perl`) of the source's end: connect, send the token, run `command` (at once
 * and gated by the FIFO `gate` when given, else at the go).
 */
export function connectorArgs(
  command: readonly string[],
  to: PageLinkTarget,
  gate?: string,
): string[] {
  if (!isPageToken(to.token)) {
    throw new TypeError("Cannot use the page token: not 64 hex characters");
  }
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
    throw new RangeError(`Cannot connect to port "${to.port}": not a TCP port`);
  }
  if (gate !== undefined && !gate.startsWith("/")) {
    throw new RangeError(`Cannot use the gate "${gate}": not an absolute path`);
  }
  return ["-e", PAGE_CONNECTOR, to.hostname, String(to.port), to.token, gate ?? "", ...command];
}

/** The argv (after `perl`) of the target's end: listen, admit the token, exec `command`. */
export function listenerArgs(
  command: readonly string[],
  options: { token: string; seconds?: number },
): string[] {
  if (!isPageToken(options.token)) {
    throw new TypeError("Cannot use the page token: not 64 hex characters");
  }
  const seconds = options.seconds ?? PAGE_LISTEN_SECONDS;
  return ["-e", PAGE_LISTENER, options.token, String(seconds), ...command];
}

/** The source's end, linked: `go` runs its command now and resolves with its status. */
export interface PageLink {
  go(): Promise<Deno.CommandStatus>;
  /** Ends it without running the command (it exits 124; the target sees the link end). */
  cancel(): Promise<Deno.CommandStatus>;
}

/**
 * The page link was not made: `exitCode` is the connector's, {@linkcode PAGE_LINK_FAILED} when it
 * could not connect or gave up, another when its gated command ended first (criu dump failed to
 * start: its log says why).
 */
export class PageLinkError extends Error {
  override name = "PageLinkError";
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/**
 * Starts the source's end and resolves once it has made the page link and sent the token, and,
 * with a `gate`, once the command waits at it ({@linkcode PAGE_CONNECTOR}); the command (e.g.
 * `criu dump ... --page-server --ps-socket 0`) runs, or goes on, at `go`. Throws a
 * {@linkcode PageLinkError} when the connector exits first or is not linked within 15 s (then it
 * is killed).
 */
export async function linkPages(
  command: readonly string[],
  to: PageLinkTarget,
  options: { gate?: string } = {},
): Promise<PageLink> {
  const child = new Deno.Command("perl", {
    args: connectorArgs(command, to, options.gate),
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stdin = child.stdin.getWriter();
  try {
    await firstLine(child, 15_000);
  } catch (error) {
    await stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* it ended */ }
    const status = await child.status;
    throw new PageLinkError(
      `Cannot make the page link to ${to.hostname}:${to.port}: ${
        (error as Error).message
      } (exit code ${status.code})`,
      status.signal ? PAGE_LINK_FAILED : status.code,
    );
  }
  return {
    async go() {
      await stdin.write(new Uint8Array([0x67])).catch(() => {});
      await stdin.close().catch(() => {});
      return await child.status;
    },
    async cancel() {
      await stdin.close().catch(() => {});
      return await child.status;
    },
  };
}

/** The first line a child prints on stdout; then its stdout is let go. */
async function firstLine(child: Deno.ChildProcess, timeoutMs: number): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  const reading = async () => {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("it ended first");
      text += new TextDecoder().decode(value);
    }
  };
  try {
    await withTimeout(reading(), timeoutMs, `nothing within ${timeoutMs} ms`);
  } finally {
    // A read still pending (the timeout won) is ended with the stream below.
    await reader.cancel().catch(() => {});
  }
  return text.slice(0, text.indexOf("\n"));
}

/** The target's listener, running: its port, and the process (which becomes `command`). */
export interface PageListener {
  readonly port: number;
  readonly child: Deno.ChildProcess;
}

/**
 * Starts the target's end with `command` (e.g. `criu page-server ... --ps-socket 0`) and resolves
 * once it listens, with its port. Throws when it exits first or prints no port within 10 s.
 */
export async function listenForPages(
  command: readonly string[],
  options: { token: string; cwd?: string; seconds?: number },
): Promise<PageListener> {
  const child = new Deno.Command("perl", {
    args: listenerArgs(command, options),
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let text: string;
  try {
    text = await firstLine(child, 10_000);
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    throw new Error(`Cannot listen for the pages: ${(error as Error).message}`);
  }
  const port = Number(text.trim());
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    const status = await child.status;
    throw new Error(`Cannot listen for the pages: the listener exited with code ${status.code}`);
  }
  return { port, child };
}
