/**
 * The page link of a migration (PROTOCOL.md §11.1): one TCP connection from the source node to
 * the target, over which `criu dump --page-server` sends the job's memory pages to a page receiver
 * on the target (om's, lib/migration/pagereceiver.ts, or `criu page-server`) while the dump runs,
 * so the pages are not written, read and sent again after the dump. Nothing of CRIU's page-server
 * protocol crosses the network as it is: criu and the page receiver each talk to a relay of the
 * daemon over a unix socket, and the relays seal what crosses (lib/migration/pagerelay.ts, with
 * keys derived from a secret that came inside the sealed channel, lib/migration/pageseal.ts).
 *
 * The connection is admitted by a one-time token: 32 random bytes that the source sends to the
 * target over the sealed channel (`mig.pages`), and then, as 64 lowercase hex characters, as the
 * first bytes of the page connection. The target's listener (lib/migration/pagelistener.ts)
 * accepts connections until one starts with the token (others are closed unread), and stops
 * listening. This file is the source's end, and what both ends share.
 *
 * Deno cannot hand a socket to a child process, so the daemon listens on a unix socket in a
 * directory of its own (mode 0700) and a small perl program (perl-base is in every Debian, as for
 * the restore waiter of lib/migration/migration.ts) connects to it, puts that connection on its
 * descriptor 0 and runs the command it is given: criu, which uses it through `--ps-socket 0`, or
 * the page receiver.
 */
import { TimeoutError, withTimeout } from "../base/time.ts";
import { derivePageKeys, isPageSecret } from "./pageseal.ts";
import { PAGE_LINK_SILENCE_MS, type PageRelay, PageRelayError, relayPages } from "./pagerelay.ts";

/** Length of a page token in bytes (64 hex characters on the wire). */
export const PAGE_TOKEN_BYTES = 32;

/** The exit code of the source's end when it could not make the link (before criu ran). */
export const PAGE_LINK_FAILED = 124;

/** The longest path a unix socket's address holds (sun_path, less its final zero byte). */
const SOCKET_PATH_MAX = 107;

/**
 * The source's end: `perl -e PAGE_CONNECTOR SOCKET GATE COMMAND...`. Connects to the daemon's
 * unix socket SOCKET and lets criu queue up to 4 MiB in it (SO_SNDBUFFORCE, as root; the
 * default otherwise), so that criu goes on while the daemon seals. Then, without a gate (GATE
 * empty), it prints `linked` and a newline on stdout and waits for one byte on stdin, the go,
 * before it runs COMMAND. With a gate, it makes the FIFO GATE, runs COMMAND at once with
 * `OM_GATE=GATE` in its environment, and prints `linked` once COMMAND holds the FIFO open for
 * reading: COMMAND has started and waits there for the go ({@linkcode DUMP_GATE}: `criu dump` then
 * has started and checked the kernel, and has not frozen the job yet). At the go the connector
 * writes `go` and a newline into the FIFO; when stdin ends without the go, `no` and a newline.
 * COMMAND runs in a child, with the socket as its stdin (the connector keeps no copy of it, so the
 * daemon sees the socket's end when COMMAND ends) and stdout on /dev/null; the connector exits with
 * its status (128+N for signal N), or 124 when it cannot connect, or stdin ends without the go.
 * When COMMAND ends before it opened the gate, the connector exits with its status at once. The
 * FIFO is removed at the end. If the connector dies, the FIFO has no writer left and the reader
 * sees its end: a gated COMMAND gives up without the go.
 *
 * Before the go nothing of the job is frozen: the link, perl's start and (gated) criu's own start
 * and kernel checks, tens of milliseconds, are not frozen time.
 */
export const PAGE_CONNECTOR = "use Socket qw(SOCK_STREAM SOL_SOCKET); use IO::Socket::UNIX; " +
  "use POSIX qw(WNOHANG mkfifo); use Fcntl qw(O_WRONLY O_NONBLOCK); " +
  "my ($s, $g, @c) = @ARGV; my ($pid, $f); $SIG{PIPE} = 'IGNORE'; " +
  "my $k = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $s) or exit 124; " +
  // SO_SNDBUFFORCE (32 on every Linux architecture).
  "setsockopt($k, SOL_SOCKET, 32, 4194304); " +
  "sub status { unlink $g if $g ne ''; exit($? & 127 ? 128 + ($? & 127) : $? >> 8) } " +
  "sub run { $pid = fork() // exit 124; if ($pid) { close $k; return } " +
  "open(STDOUT, '>', '/dev/null'); open(STDIN, '+<&', $k) or exit 124; close $k; " +
  "exec { $c[0] } @c; exit 124 } " +
  "if ($g ne '') { unlink $g; mkfifo($g, 0600) or exit 124; $ENV{OM_GATE} = $g; run(); " +
  "until (sysopen($f, $g, O_WRONLY | O_NONBLOCK)) { " +
  "status() if waitpid($pid, WNOHANG) > 0; select(undef, undef, undef, 0.001) } } " +
  '$| = 1; print "linked\\n"; ' + "open(STDOUT, '>', '/dev/null'); " +
  "my $go = sysread(STDIN, my $b, 1) == 1; " +
  'if ($f) { syswrite($f, $go ? "go\\n" : "no\\n"); close $f } ' +
  "elsif ($go) { run() } else { exit 124 } " +
  "waitpid($pid, 0); unless ($go) { unlink $g if $g ne ''; exit 124 } status()";

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

/** Where a page link goes: the target's listener, the token that admits it, its secret. */
export interface PageLinkTarget {
  readonly hostname: string;
  readonly port: number;
  readonly token: string;
  /** The link's secret (pageseal.ts), as `mig.pages` carried it. */
  readonly secret: string;
}

/** The path of the unix socket of a page link end whose own directory is `dir`. */
export function socketPath(dir: string): string {
  return `${dir}/sock`;
}

/**
 * The argv (after `perl`) of the source's end: connect to the daemon's unix socket `socket`, run
 * `command` (at once and gated by the FIFO `gate` when given, else at the go).
 */
export function connectorArgs(command: readonly string[], socket: string, gate?: string): string[] {
  if (!socket.startsWith("/")) {
    throw new RangeError(`Cannot use the socket "${socket}": not an absolute path`);
  }
  if (gate !== undefined && !gate.startsWith("/")) {
    throw new RangeError(`Cannot use the gate "${gate}": not an absolute path`);
  }
  return ["-e", PAGE_CONNECTOR, socket, gate ?? "", ...command];
}

/** The source's end, linked: `go` runs its command now and resolves with its status. */
export interface PageLink {
  /**
   * Runs the command (criu lets the job freeze) and resolves with its status once it has ended
   * and the link with it; throws a {@linkcode PageLinkError} when the link failed (a record that
   * did not open, a link cut short, a silent target), whatever the command's status.
   */
  go(): Promise<Deno.CommandStatus>;
  /**
   * Ends it without running the command (it exits 124); the link is cut at once, so the target's
   * page server fails.
   */
  cancel(): Promise<Deno.CommandStatus>;
}

/**
 * The page link was not made, or failed: `exitCode` is the connector's, {@linkcode
 * PAGE_LINK_FAILED} when it could not connect or gave up, or the link failed; another when its
 * gated command ended first (criu dump failed to start: its log says why).
 */
export class PageLinkError extends Error {
  override name = "PageLinkError";
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/**
 * A unix socket of the daemon's own, in `dir` (made mode 0700 for it, removed once connected):
 * where criu's or the page server's end of a page link connects (lib/migration/pagelistener.ts).
 */
export async function privateSocket(
  dir: string,
): Promise<{ listener: Deno.Listener; close(): void }> {
  const path = socketPath(dir);
  if (new TextEncoder().encode(path).length > SOCKET_PATH_MAX) {
    throw new RangeError(
      `Cannot listen on the page link's socket "${path}": longer than the ${SOCKET_PATH_MAX} ` +
        "bytes a socket's address holds",
    );
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const listener = Deno.listen({ transport: "unix", path });
  return {
    listener,
    close() {
      try {
        listener.close();
      } catch { /* closed */ }
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone */ }
    },
  };
}

/**
 * The one connection to `local`, from `child` (which connects first thing); throws when `child`
 * ends first or nothing connects within `ms`.
 */
export async function acceptFrom(
  local: { listener: Deno.Listener; close(): void },
  child: Deno.ChildProcess,
  ms: number,
): Promise<Deno.Conn> {
  const ended = child.status.then(() => {
    throw new Error("it ended first");
  });
  try {
    return await withTimeout(
      Promise.race([local.listener.accept(), ended]),
      ms,
      `nothing connected within ${ms} ms`,
    );
  } finally {
    local.close();
  }
}

/** Options of {@linkcode linkPages}. */
export interface LinkPagesOptions {
  /**
   * A directory for the unix socket between the daemon and criu, made for it (mode 0700) and
   * removed once criu's end is connected. Its socket's path must fit in 107 bytes.
   */
  readonly socketDir: string;
  /** A FIFO path: the command runs at once and waits at this gate ({@linkcode PAGE_CONNECTOR}). */
  readonly gate?: string;
  /** How long the link may stay silent (pagerelay.ts); tests shorten it. */
  readonly silenceMs?: number;
}

/**
 * Starts the source's end and resolves once it has made the page link (connected to the target,
 * sent the token, relayed criu's socket) and, with a `gate`, once the command waits at it
 * ({@linkcode PAGE_CONNECTOR}); the command (e.g. `criu dump ... --page-server --ps-socket 0`)
 * runs, or goes on, at `go`. Throws a {@linkcode PageLinkError} when the target cannot be reached
 * within 10 s, when the connector exits first, or is not linked within 15 s (then it is killed).
 */
export async function linkPages(
  command: readonly string[],
  to: PageLinkTarget,
  options: LinkPagesOptions,
): Promise<PageLink> {
  if (!isPageToken(to.token)) {
    throw new TypeError("Cannot use the page token: not 64 hex characters");
  }
  if (!isPageSecret(to.secret)) {
    throw new TypeError("Cannot use the page link's secret: not 64 hex characters");
  }
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 65535) {
    throw new RangeError(`Cannot connect to port "${to.port}": not a TCP port`);
  }
  const args = connectorArgs(command, socketPath(options.socketDir), options.gate);
  const where = `${to.hostname}:${to.port}`;
  const silenceMs = options.silenceMs ?? PAGE_LINK_SILENCE_MS;
  const keys = await derivePageKeys(to.secret, to.token);
  const failed = (why: string, code = PAGE_LINK_FAILED) =>
    new PageLinkError(`Cannot make the page link to ${where}: ${why}`, code);

  let tcp: Deno.TcpConn;
  const connecting = Deno.connect({ hostname: to.hostname, port: to.port });
  try {
    tcp = await withTimeout(connecting, 10_000, "no connection within 10000 ms");
  } catch (error) {
    connecting.then((late) => late.close(), () => {});
    throw failed((error as Error).message);
  }
  let local: Awaited<ReturnType<typeof privateSocket>>;
  try {
    tcp.setNoDelay(true);
    const token = new TextEncoder().encode(to.token);
    for (let sent = 0; sent < token.length;) {
      sent += await withTimeout(tcp.write(token.subarray(sent)), 10_000, "the token stayed unsent");
    }
    local = await privateSocket(options.socketDir);
  } catch (error) {
    tcp.close();
    throw failed((error as Error).message);
  }

  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("perl", {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch (error) {
    local.close();
    tcp.close();
    throw failed(`perl: ${(error as Error).message}`);
  }
  const stdin = child.stdin.getWriter();
  let relay: PageRelay | undefined;
  try {
    const plain = await acceptFrom(local, child, 15_000);
    relay = relayPages(plain, tcp, {
      send: keys.sourceToTarget,
      receive: keys.targetToSource,
      peer: where,
      local: "criu dump",
      silenceMs,
    });
    await firstLine(child, 15_000);
  } catch (error) {
    await stdin.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* it ended */ }
    const status = await child.status;
    if (relay) relay.abort("the page link was not made");
    else tcp.close();
    throw failed(
      `${(error as Error).message} (exit code ${status.code})`,
      status.signal ? PAGE_LINK_FAILED : status.code,
    );
  }
  const linked = relay;
  return {
    async go() {
      if (linked.failure) {
        await stdin.close().catch(() => {});
        await child.status;
        throw new PageLinkError(
          `Cannot send the pages to ${where}: ${linked.failure.message}`,
          PAGE_LINK_FAILED,
        );
      }
      await stdin.write(new Uint8Array([0x67])).catch(() => {});
      await stdin.close().catch(() => {});
      const status = await child.status;
      try {
        await withTimeout(
          linked.done,
          silenceMs,
          `the page link did not end within ${silenceMs} ms of criu's end`,
        );
      } catch (error) {
        linked.abort((error as Error).message);
        // criu's own failure (its socket closed, it exited) is criu's to tell, with its log.
        if (!status.success && error instanceof PageRelayError && error.side === "local") {
          return status;
        }
        const why = error instanceof TimeoutError || error instanceof PageRelayError
          ? error.message
          : String(error);
        throw new PageLinkError(`Cannot send the pages to ${where}: ${why}`, PAGE_LINK_FAILED);
      }
      return status;
    },
    async cancel() {
      linked.abort("the page link was cancelled");
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
