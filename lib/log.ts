/**
 * Logging set-up for om's long-running commands, on LogTape (the npm stand-in for @std/log).
 * lib/ modules receive a Logger; only commands call `setupLogging`. Debug output can be toggled
 * at run time (omdiscd's SIGUSR1).
 */
import {
  configure,
  getLogger,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import type { LineWriter } from "./syslog.ts";

export type { Logger };

/** Renders a record's message with its values filled in. */
export function renderMessage(record: LogRecord): string {
  return record.message.map((part) => (typeof part === "string" ? part : String(part))).join("");
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

function sinkOf(target: LogTarget): Sink {
  if (target.kind === "lines") {
    return (record) => target.writer.write(record.level, renderMessage(record));
  }
  return (record) => {
    const at = new Date(record.timestamp).toISOString().slice(11, 23);
    const line = `${at} ${target.tag}: ${record.level}: ${renderMessage(record)}\n`;
    try {
      Deno.stderr.writeSync(encoder.encode(line));
    } catch { /* stderr closed: nothing to do */ }
  };
}

/** Configures LogTape for category ["om", ...category] and returns its logger. */
export async function setupLogging(
  category: string,
  target: LogTarget,
  debug: boolean,
): Promise<Logging> {
  const sink = sinkOf(target);
  const apply = (on: boolean) =>
    configure({
      reset: true,
      sinks: { main: sink },
      loggers: [
        { category: ["om"], sinks: ["main"], lowestLevel: on ? "debug" : "info" },
        { category: ["logtape", "meta"], sinks: ["main"], lowestLevel: "warning" },
      ],
    });
  await apply(debug);
  const logging: Logging = {
    logger: getLogger(["om", category]),
    debug,
    async setDebug(on) {
      logging.debug = on;
      await apply(on);
    },
    async close() {
      await reset();
      if (target.kind === "lines") target.writer.close();
    },
  };
  return logging;
}
