/**
 * The target's end of a page link (PROTOCOL.md §11.1): a TCP listener on a free port of every
 * address, which admits the first connection that brings the link's token, and the page server
 * (om's page receiver, lib/migration/pagereceiver.ts, or `criu page-server`) connected to the
 * daemon over a unix socket of its own; between the two, the relay (lib/migration/pagerelay.ts)
 * opens the source's sealed records into the page server's socket and seals its answers back.
 * The source's end, and what both share, is lib/migration/pagelink.ts.
 */
import { withTimeout } from "../base/time.ts";
import { derivePageKeys, isPageSecret } from "./pageseal.ts";
import { type PageRelay, type PageRelayError, relayPages } from "./pagerelay.ts";
import { acceptFrom, isPageToken, privateSocket, socketPath } from "./pagelink.ts";

/** How long the listener waits for the source's connection before it gives up. */
export const PAGE_LISTEN_SECONDS = 30;

/** How long a connection to the listener has to bring the token. */
const TOKEN_MS = 2_000;

/** Connections to the listener whose token is awaited at once; more are closed at once. */
const TOKENS_AT_ONCE = 16;

/**
 * The target's end: `perl -e PAGE_LAUNCHER SOCKET COMMAND...`. Connects to the daemon's unix
 * socket SOCKET and execs COMMAND with that connection as its descriptor 0 (`criu page-server
 * --ps-socket 0`, or om's page receiver); exits 124 when it cannot.
 */
export const PAGE_LAUNCHER = "use Socket qw(SOCK_STREAM); use IO::Socket::UNIX; " +
  "my ($s, @c) = @ARGV; my $k = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $s) " +
  "or exit 124; open(STDIN, '+<&', $k) or exit 124; close $k; exec { $c[0] } @c; exit 124";

/** The argv (after `perl`) of the target's end: connect to `socket`, exec `command`. */
export function launcherArgs(command: readonly string[], socket: string): string[] {
  if (!socket.startsWith("/")) {
    throw new RangeError(`Cannot use the socket "${socket}": not an absolute path`);
  }
  return ["-e", PAGE_LAUNCHER, socket, ...command];
}

/** How a target's page server ended, with its link. */
export interface PageServerEnd {
  /** Every page stored: the page server exited 0 and both directions of the link ended intact. */
  readonly success: boolean;
  /** The page server's exit code (128+N for signal N). */
  readonly code: number;
  /** Why the page link failed, when it failed on the way (the pages are then incomplete). */
  readonly link?: string;
}

/** The target's end of a page link, listening. */
export interface PageListener {
  /** The TCP port it listens on. */
  readonly port: number;
  /** The page server's end, and the link's. */
  readonly done: Promise<PageServerEnd>;
  /** Kills the page server and ends the link (a failed or abandoned migration). */
  stop(): Promise<PageServerEnd>;
}

/** Options of {@linkcode listenForPages}. */
export interface ListenForPagesOptions {
  readonly token: string;
  readonly secret: string;
  /**
   * The images directory: the page server's working directory, and where the unix socket's own
   * directory `page-link` is made (and removed once the page server is connected).
   */
  readonly dir: string;
  /** The page server's log: a link that fails adds an `Error: om page link: ...` line to it. */
  readonly logFile?: string;
  /** How long to wait for the source's connection ({@linkcode PAGE_LISTEN_SECONDS}). */
  readonly seconds?: number;
  /** How long the link may stay silent (pagerelay.ts); tests shorten it. */
  readonly silenceMs?: number;
  /** The TCP port to listen on (default: a free one; tests' faults fix it). */
  readonly port?: number;
}

/**
 * Starts the target's end with `command` (e.g. `criu page-server ... --ps-socket 0`), connected to
 * the daemon over a unix socket, and a TCP listener on a free port of every address; resolves once
 * it listens, with its port. The first connection that brings the token within
 * {@linkcode PAGE_LISTEN_SECONDS} is the page link: its records are opened into the command's
 * socket, and its answers sealed back. Throws when the command cannot be started.
 */
export async function listenForPages(
  command: readonly string[],
  options: ListenForPagesOptions,
): Promise<PageListener> {
  if (!isPageToken(options.token)) {
    throw new TypeError("Cannot use the page token: not 64 hex characters");
  }
  if (!isPageSecret(options.secret)) {
    throw new TypeError("Cannot use the page link's secret: not 64 hex characters");
  }
  const seconds = options.seconds ?? PAGE_LISTEN_SECONDS;
  const keys = await derivePageKeys(options.secret, options.token);
  const socketDir = `${options.dir}/page-link`;
  let local: Awaited<ReturnType<typeof privateSocket>>;
  try {
    local = await privateSocket(socketDir);
  } catch (error) {
    throw new Error(`Cannot listen for the pages: ${(error as Error).message}`);
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("perl", {
      args: launcherArgs(command, socketPath(socketDir)),
      cwd: options.dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    local.close();
    throw new Error(`Cannot listen for the pages: perl: ${(error as Error).message}`);
  }
  let plain: Deno.Conn;
  let listener: Deno.TcpListener;
  try {
    plain = await acceptFrom(local, child, 10_000);
    try {
      listener = Deno.listen({ hostname: "0.0.0.0", port: options.port ?? 0 });
    } catch (error) {
      plain.close();
      throw error;
    }
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    const status = await child.status;
    throw new Error(
      `Cannot listen for the pages: ${(error as Error).message} (exit code ${status.code})`,
    );
  }
  const admission = admit(listener, options.token, seconds * 1000);
  const closePlain = () => {
    try {
      plain.close();
    } catch { /* closed */ }
  };
  let relay: PageRelay | undefined;
  let stopped = false;
  const note = async (line: string) => {
    if (options.logFile) {
      await Deno.writeTextFile(options.logFile, `Error: om page link: ${line}\n`, { append: true })
        .catch(() => {});
    }
  };
  const linked = (async (): Promise<PageRelayError | string | undefined> => {
    const conn = await admission.conn;
    if (!conn) {
      closePlain();
      if (stopped) return "it was stopped";
      const why = `no page link came within ${seconds} s`;
      await note(why);
      return why;
    }
    if (stopped) {
      conn.close();
      return "it was stopped";
    }
    conn.setNoDelay(true);
    relay = relayPages(plain, conn, {
      send: keys.targetToSource,
      receive: keys.sourceToTarget,
      peer: "the source",
      local: "the page server",
      silenceMs: options.silenceMs,
    });
    try {
      await relay.done;
      return undefined;
    } catch (error) {
      const failure = error as PageRelayError;
      await note(failure.message);
      return failure;
    }
  })();
  const done = Promise.all([child.status, linked]).then(([status, link]): PageServerEnd => {
    // A link that failed on its way explains the page server's failure (its socket closed);
    // a page server that failed by itself broke the link (its socket went).
    const linkFailure = typeof link === "string"
      ? link
      : link && (link.side === "peer" || status.success)
      ? link.message
      : undefined;
    return {
      success: status.success && link === undefined,
      code: status.code,
      ...(linkFailure !== undefined ? { link: linkFailure } : {}),
    };
  });
  return {
    port: listener.addr.port,
    done,
    async stop() {
      stopped = true;
      admission.stop();
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      if (relay) relay.abort("the page server was stopped");
      else closePlain();
      return await done;
    },
  };
}

/**
 * The first connection to `listener` that sends `token` as its first bytes within TOKEN_MS, once
 * one has (the listener is then closed, and so are the others), or undefined after `ms` or at
 * `stop()`. Up to TOKENS_AT_ONCE connections are heard at once; more are closed unread.
 */
function admit(
  listener: Deno.TcpListener,
  token: string,
  ms: number,
): { conn: Promise<Deno.TcpConn | undefined>; stop(): void } {
  const expected = new TextEncoder().encode(token);
  let finish!: (conn: Deno.TcpConn | undefined) => void;
  const conn = new Promise<Deno.TcpConn | undefined>((resolve) => {
    let settled = false;
    const timer = setTimeout(() => finish(undefined), ms);
    finish = (admitted) => {
      if (settled) {
        admitted?.close();
        return;
      }
      settled = true;
      clearTimeout(timer);
      try {
        listener.close();
      } catch { /* closed */ }
      resolve(admitted);
    };
    let hearing = 0;
    void (async () => {
      try {
        for await (const incoming of listener) {
          if (settled || hearing >= TOKENS_AT_ONCE) {
            incoming.close();
            continue;
          }
          hearing++;
          void firstBytes(incoming, expected.length, TOKEN_MS).then((got) => {
            hearing--;
            if (got && sameBytes(got, expected)) finish(incoming);
            else incoming.close();
          });
        }
      } catch { /* closed */ }
      finish(undefined);
    })();
  });
  return { conn, stop: () => finish(undefined) };
}

/** The first `n` bytes of `conn` within `ms`, or undefined (it ended, broke or was slow). */
async function firstBytes(conn: Deno.Conn, n: number, ms: number): Promise<Uint8Array | undefined> {
  const bytes = new Uint8Array(n);
  const reading = async () => {
    for (let filled = 0; filled < n;) {
      const got = await conn.read(bytes.subarray(filled));
      if (got === null) return undefined;
      filled += got;
    }
    return bytes;
  };
  return await withTimeout(reading(), ms, "no token").catch(() => undefined);
}

/** Whether `a` and `b` hold the same bytes, in a time that does not tell where they differ. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let differ = 0;
  for (let i = 0; i < a.length; i++) differ |= a[i] ^ b[i];
  return differ === 0;
}
