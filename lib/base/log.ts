/**
 * Logging for om's long-running commands: four levels, messages with `{name}` placeholders filled
 * from a properties object, one sink (stderr or syslog lines), and full debug output that can be
 * toggled at run time (omdiscd's SIGUSR1). lib/ modules receive a Logger; only commands set one up.
 *
 * Why not LogTape (the npm stand-in for @std/log, used at first): importing it costs 13 ms per
 * process start (28 ms against Deno's 15 ms empty start, measured), which nearly doubles a
 * daemon's start, and a cluster's convergence when many nodes start together on few cores is
 * bound by exactly that (bench/discover.ts). om uses only this much of it.
 */
import type { LineWriter } from "./syslog.ts";

/** The levels, lowest first. */
export type Level = "debug" | "info" | "warning" | "error";

/** What lib/ logs through. */
export interface Logger {
  debug(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
  error(message: string, properties?: Record<string, unknown>): void;
}

/**
 * A value as a log line shows it: control characters escaped (`\n`, `\r`, `\xNN`; a tab kept),
 * so that a value from elsewhere (a peer's user name, a command's argv, an error's text) can
 * neither end the line and forge the next one nor send the terminal escape sequences.
 */
export function logValue(value: unknown): string {
  return String(value).replace(
    // deno-lint-ignore no-control-regex -- control characters are what it escapes
    /[\x00-\x08\x0a-\x1f\x7f]/g,
    (c) =>
      c === "\n"
        ? "\\n"
        : c === "\r"
        ? "\\r"
        : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * Fills `{name}` placeholders from `properties` (each value through {@linkcode logValue});
 * unknown names are left as they are.
 */
export function renderMessage(message: string, properties: Record<string, unknown> = {}): string {
  return message.replace(
    /\{(\w+)\}/g,
    (whole, name: string) => name in properties ? logValue(properties[name]) : whole,
  );
}

/** A logger that writes nothing (tests, and code that must not log). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** A logger that hands each rendered line to `sink`, dropping debug lines unless `debug()`. */
export function createLogger(
  sink: (level: Level, text: string) => void,
  debug: () => boolean,
): Logger {
  const at = (level: Level) => (message: string, properties?: Record<string, unknown>) => {
    if (level === "debug" && !debug()) return;
    sink(level, renderMessage(message, properties));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warning"), error: at("error") };
}

/** Where log lines go. */
export type LogTarget = { kind: "stderr"; tag: string } | { kind: "lines"; writer: LineWriter };

/** Handle on the logging set-up. */
export interface Logging {
  readonly logger: Logger;
  debug: boolean;
  setDebug(on: boolean): Promise<void>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** Sets up a command's logger: stderr lines (`HH:MM:SS.mmm tag: level: message`) or syslog. */
export function setupLogging(target: LogTarget, debug: boolean): Logging {
  const sink = target.kind === "lines"
    ? (level: Level, text: string) => target.writer.write(level, text)
    : (level: Level, text: string) => {
      const at = new Date().toISOString().slice(11, 23);
      try {
        Deno.stderr.writeSync(encoder.encode(`${at} ${target.tag}: ${level}: ${text}\n`));
      } catch { /* stderr closed: nothing to do */ }
    };
  const logging: Logging = {
    logger: createLogger(sink, () => logging.debug),
    debug,
    setDebug(on) {
      logging.debug = on;
      return Promise.resolve();
    },
    close() {
      if (target.kind === "lines") target.writer.close();
      return Promise.resolve();
    },
  };
  return logging;
}
