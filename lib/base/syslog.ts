/**
 * A syslog sink for the detached daemon: RFC 3164 lines to /dev/log (a unix datagram socket),
 * sent one after another (concurrent sends fail in Deno). Where there is no /dev/log (containers,
 * this build machine), lines go to a log file in the state tree instead, so nothing is lost.
 */

/** Syslog severities for om's levels. */
const SEVERITY: Record<string, number> = {
  debug: 7,
  info: 6,
  warning: 4,
  error: 3,
};
const FACILITY_DAEMON = 3;
const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");

/** Formats one RFC 3164 line (local time stamp, tag with pid). */
export function formatSyslog(
  level: string,
  message: string,
  tag: string,
  pid: number,
  at: Date,
): string {
  const priority = FACILITY_DAEMON * 8 + (SEVERITY[level] ?? 6);
  const two = (n: number) => String(n).padStart(2, "0");
  const stamp = `${MONTHS[at.getMonth()]} ${String(at.getDate()).padStart(2, " ")} ` +
    `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}`;
  return `<${priority}>${stamp} ${tag}[${pid}]: ${message}`;
}

/** Writes lines to syslog or, lacking it, to a file. */
export interface LineWriter {
  write(level: string, message: string): void;
  close(): void;
}

/** Opens the syslog writer on `socketPath`, or on `fallbackFile` when the socket is missing. */
export function openSyslog(
  socketPath: string,
  fallbackFile: string,
  tag: string,
): LineWriter {
  const encoder = new TextEncoder();
  let exists = false;
  try {
    exists = Deno.statSync(socketPath).isSocket ?? false;
  } catch {
    exists = false;
  }
  if (!exists) {
    Deno.mkdirSync(fallbackFile.slice(0, fallbackFile.lastIndexOf("/")) || "/", {
      recursive: true,
    });
    const file = Deno.openSync(fallbackFile, { append: true, create: true });
    return {
      write: (level, message) => {
        // The file has no priority field: the level goes before the message instead.
        const line = formatSyslog(level, `${level}: ${message}`, tag, Deno.pid, new Date())
          .replace(/^<\d+>/, "");
        file.writeSync(encoder.encode(line + "\n"));
      },
      close: () => file.close(),
    };
  }
  const local = `${Deno.makeTempDirSync({ prefix: "om-syslog-" })}/sock`;
  const conn = Deno.listenDatagram({ transport: "unixpacket", path: local });
  let queue = Promise.resolve();
  return {
    write: (level, message) => {
      const bytes = encoder.encode(formatSyslog(level, message, tag, Deno.pid, new Date()));
      queue = queue.then(() => conn.send(bytes, { transport: "unixpacket", path: socketPath }))
        .then(() => {}, () => {});
    },
    close: () => {
      conn.close();
      try {
        Deno.removeSync(local.slice(0, local.lastIndexOf("/")), { recursive: true });
      } catch { /* gone */ }
    },
  };
}
