/**
 * What `om doctor` looks at, handed in by the command: the node's settings (its state tree, its
 * /proc, its ports and key), the environment, who runs it and the interfaces. The checks read
 * files below `settings.proc` (a test points it at a fake /proc) and run what they check (criu).
 */
import type { Settings } from "../cli/config.ts";
import type { NetInterface } from "../discovery/interfaces.ts";

/** The inputs of every check. */
export interface DoctorInputs {
  readonly settings: Settings;
  /** `om doctor`'s own environment; the daemon's, read from /proc, comes first where it counts. */
  readonly env: (name: string) => string | undefined;
  /** The effective uid `om doctor` runs as: criu check and other processes' descriptors need root. */
  readonly uid: number;
  /** This node's IPv4 interfaces (lib/discovery/interfaces.ts listInterfaces). */
  readonly interfaces: readonly NetInterface[];
  /** Milliseconds, for the CRIU runs' timing. */
  readonly now: () => number;
}

/** An environment to read variables from, and whose it is ("the daemon's", "this shell's"). */
export interface Environment {
  readonly get: (name: string) => string | undefined;
  readonly whose: string;
}

/** Parses `/proc/PID/environ` (NUL-separated NAME=VALUE). */
export function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}
