/**
 * The CRIU a lab's nodes move jobs with, provided exactly as scripts/test provides it to the tests,
 * by the same code: scripts/install-criu, which prints the path of a CRIU 4 that passes
 * `criu check` (the system's when it does, else Debian 13's packages unpacked once under
 * .deno/criu, the system's package sources untouched). An OM_CRIU given to `om lab up` is used as
 * given, unchecked, so that a test can hand the lab a particular CRIU (one whose restore fails).
 *
 * The script stays a shell script (apt and dpkg are driven best from sh, and scripts/test needs
 * CRIU before any test runs); a lab is a development tool of a clone of om, which has it. A
 * compiled om carries no scripts/: it takes a criu from PATH when om's own preflight
 * (lib/criu/preflight.ts) passes it, and otherwise says how to get one.
 */
import { findCriu, preflight } from "../criu/preflight.ts";
import type { LabLog } from "./record.ts";

/** scripts/install-criu of the clone this file is part of; a compiled om has no such file. */
export const INSTALL_SCRIPT = decodeURIComponent(
  new URL("../../scripts/install-criu", import.meta.url).pathname,
);

/** Where a lab's CRIU came from. */
export type CriuSource = "given" | "script" | "path";

/** The CRIU of a lab: its path (OM_CRIU of every node) and where it came from. */
export interface LabCriu {
  readonly binary: string;
  readonly source: CriuSource;
}

/** Options of {@linkcode provideCriu}. */
export interface ProvideCriuOptions {
  /** The environment of `om lab up` (OM_CRIU, PATH). */
  readonly env: (name: string) => string | undefined;
  /** Milliseconds, monotonic: the clock of the preflight's CRIU runs. */
  readonly now: () => number;
  /** The script's progress lines ("fetching CRIU from ..."), without its "install-criu: ". */
  readonly log?: LabLog;
  /** The install script; default {@linkcode INSTALL_SCRIPT}. */
  readonly script?: string;
}

const PREFIX = "install-criu: ";

/**
 * Provides the lab's CRIU: `$OM_CRIU` as given; else what scripts/install-criu prints (run with
 * `sh`, the caller's PATH, and OM_CRIU emptied so that the script looks for itself); else, without
 * the script, a criu on PATH that passes om's preflight. Throws an Error "Cannot provide CRIU for
 * the lab's nodes: WHY" naming what failed and what to do.
 */
export async function provideCriu(options: ProvideCriuOptions): Promise<LabCriu> {
  const given = options.env("OM_CRIU");
  if (given) return { binary: given, source: "given" };
  const script = options.script ?? INSTALL_SCRIPT;
  if (await isFile(script)) return { binary: await runScript(script, options), source: "script" };
  const found = findCriu(options.env);
  const cannot = (why: string) => new Error(`Cannot provide CRIU for the lab's nodes: ${why}`);
  if (!found) {
    throw cannot(
      `no criu on PATH, and this om has no ${script} to install one: install CRIU 4 or later ` +
        `(README, Deploying), set OM_CRIU, or run om lab up from a clone of om`,
    );
  }
  try {
    await preflight({ binary: found, now: options.now });
  } catch (error) {
    throw cannot(`${(error as Error).message}; install CRIU 4 or later, or set OM_CRIU`);
  }
  return { binary: found, source: "path" };
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Runs the script; its stderr lines go to the log as they come, its last stdout line is the path. */
async function runScript(script: string, options: ProvideCriuOptions): Promise<string> {
  const path = options.env("PATH");
  const child = new Deno.Command("sh", {
    args: [script],
    env: { OM_CRIU: "", ...(path !== undefined ? { PATH: path } : {}) },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const said: string[] = [];
  const relay = (async () => {
    let rest = "";
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      for (const line of lines) say(line);
    }
    if (rest) say(rest);
  })();
  function say(line: string): void {
    const text = line.startsWith(PREFIX) ? line.slice(PREFIX.length) : line;
    said.push(text);
    options.log?.(text);
  }
  const [stdout, status] = await Promise.all([
    new Response(child.stdout).text(),
    child.status,
    relay,
  ]);
  const binary = stdout.split("\n").filter((l) => l.trim()).at(-1)?.trim();
  if (!status.success || !binary) {
    const why = said.at(-1) ?? `it exited with ${status.code} and said nothing`;
    throw new Error(`Cannot provide CRIU for the lab's nodes: ${script}: ${why}`);
  }
  return binary;
}
