/**
 * How `om exec` shows what the nodes did, as text for its stdout and stderr (the command prints
 * it): each node's lines marked with the node (`node 3: ...`), stdout's on stdout and stderr's on
 * stderr, then, on stderr, how it ended when that was not exit 0; or, with `-b`, each group of
 * identical nodes under one header (lib/exec/gather.ts). Output is shown as text: invalid UTF-8
 * becomes U+FFFD and control characters other than tab are written `\xNN`, so that a command
 * printing binary data, or escape sequences, cannot garble the terminal or forge another node's
 * line. Output cut at the limit says so where it was cut. Pure.
 */
import type { ExecGroup } from "./gather.ts";
import { formatNodeList } from "./gather.ts";
import type { ExecOutcome, ExecResult } from "./wire.ts";
import { OUTPUT_LIMIT } from "./wire.ts";

/** Text for standard output and standard error. */
export interface Rendered {
  readonly out: string;
  readonly err: string;
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

/** One line of output as it is shown: control characters (tab aside) as `\xNN`. */
export function showLine(line: string): string {
  return line.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** The lines of `bytes`, shown; a last line without a newline is a line too. */
export function outputLines(bytes: Uint8Array): string[] {
  if (bytes.length === 0) return [];
  const text = new TextDecoder().decode(bytes);
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map(showLine);
}

/** A size as people read it: 1 MiB, 3.5 KiB, 12 bytes. */
function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${+(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} byte${bytes === 1 ? "" : "s"}`;
}

/** The marker of output cut at the limit. */
export function cutMarker(stream: "stdout" | "stderr", dropped: number): string {
  return `[om exec: output cut at ${size(OUTPUT_LIMIT)} per node: ${dropped} more bytes of ` +
    `${stream} dropped]`;
}

/** How a node's command ended, in words; undefined for exit 0. */
export function describeOutcome(outcome: ExecOutcome): string | undefined {
  switch (outcome.kind) {
    case "exited":
      return outcome.code === 0 ? undefined : `exit status ${outcome.code}`;
    case "signal":
      return `killed by ${outcome.signal} (status ${outcome.code})`;
    case "timeout":
      return `timed out after ${+(outcome.afterMs / 1000).toFixed(3)} s: killed (status 124)`;
    case "unstartable":
      return `${outcome.reason} (status ${outcome.code})`;
    case "refused":
      return `refused: ${outcome.reason}`;
    case "down":
      return `down: ${outcome.reason}`;
    case "unreachable":
      return `unreachable: ${outcome.reason}`;
  }
}

/** One node's result, each line marked `node N: `. */
export function renderResult(result: ExecResult): Rendered {
  const mark = `node ${result.node}: `;
  const lines = (bytes: Uint8Array, stream: "stdout" | "stderr") => {
    const shown = outputLines(bytes);
    if (result.dropped[stream] > 0) shown.push(cutMarker(stream, result.dropped[stream]));
    return shown.map((line) => `${mark}${line}\n`).join("");
  };
  const ended = describeOutcome(result.outcome);
  return {
    out: lines(result.stdout, "stdout"),
    err: lines(result.stderr, "stderr") +
      (ended === undefined ? "" : `${mark}${showLine(ended)}\n`),
  };
}

/** The rule around a group's header, as clush -b draws it. */
export const RULE = "-".repeat(15);

/**
 * The groups of `-b`: a header per group on stdout (`node 1-3 (3)`, and how they ended when that
 * was not exit 0), its stdout lines below it; its stderr lines on stderr, marked with its nodes.
 */
export function renderGroups(groups: readonly ExecGroup[]): Rendered {
  let out = "";
  let err = "";
  for (const { nodes, result } of groups) {
    const list = formatNodeList(nodes);
    const ended = describeOutcome(result.outcome);
    out += `${RULE}\nnode ${list} (${nodes.length})${
      ended === undefined ? "" : `: ${showLine(ended)}`
    }\n${RULE}\n`;
    for (const line of outputLines(result.stdout)) out += `${line}\n`;
    if (result.dropped.stdout > 0) out += `${cutMarker("stdout", result.dropped.stdout)}\n`;
    const errLines = outputLines(result.stderr);
    if (result.dropped.stderr > 0) errLines.push(cutMarker("stderr", result.dropped.stderr));
    for (const line of errLines) err += `node ${list}: ${line}\n`;
  }
  return { out, err };
}
