/**
 * Which commands a node runs for `om exec` (PROTOCOL.md §13): its own `exec_allow` setting, a list
 * of patterns of command names, empty by default (the node runs nothing). Pure.
 *
 * The rule matches the command as it was asked, argv[0], never its basename: a bare name (`uptime`)
 * runs from the node's own fixed PATH (lib/exec/runner.ts) and is matched by the patterns without
 * a `/`; an absolute path (`/usr/local/bin/backup`) is matched by the patterns that are absolute
 * paths. Matching the basename would let `exec_allow = uptime` run `/tmp/x/uptime`, a program of
 * anyone's making that merely carries the name. In a pattern `*` stands for any run of characters
 * and `?` for one, neither crossing a `/`; the pattern `*` alone allows every command, bare names
 * and paths alike. An asked path must be absolute and plain (no `.` or `..` component, no `//`, no
 * trailing `/`), so that `/usr/bin/*` cannot be walked out of with `/usr/bin/../../tmp/x`; a
 * relative path (`./x`, `bin/x`) is never run.
 */
import { execPatternProblem } from "../cli/config.ts";

/** The pattern that allows every command. */
export const ALLOW_ALL = "*";

/**
 * Why `pattern` cannot be one of exec_allow's patterns, or undefined (the configuration checks
 * them as it reads them: lib/cli/config.ts).
 */
export const patternProblem = execPatternProblem;

/**
 * Why the command name `name` (argv[0]) is never run whatever the patterns, or undefined: it is
 * empty, holds a NUL, or is a path that is not absolute and plain.
 */
export function nameProblem(name: string): string | undefined {
  if (name === "") return "the command name is empty";
  if (name.includes("\0")) return "the command name holds a NUL byte";
  if (!name.includes("/")) return undefined;
  if (!name.startsWith("/")) return "a path must be absolute (a bare name runs from the PATH)";
  const parts = name.slice(1).split("/");
  if (parts.some((part) => part === "" || part === "." || part === "..")) {
    return "a path must be plain: no . or .. component, no // and no trailing /";
  }
  return undefined;
}

/** `pattern` as a regular expression: `*` any run and `?` one character, none of them a `/`. */
function patternRegExp(pattern: string): RegExp {
  const source = [...pattern].map((c) =>
    c === "*" ? "[^/]*" : c === "?" ? "[^/]" : c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
  ).join("");
  return new RegExp(`^${source}$`, "u");
}

/**
 * True when the patterns allow the command name `name` (argv[0]): `*` allows everything; a bare
 * name is matched by the patterns without a `/`, a path by those that are paths. A name with a
 * {@linkcode nameProblem} is never allowed.
 */
export function allows(patterns: readonly string[], name: string): boolean {
  if (nameProblem(name) !== undefined) return false;
  const path = name.includes("/");
  return patterns.some((pattern) =>
    pattern === ALLOW_ALL ||
    (pattern.includes("/") === path && patternProblem(pattern) === undefined &&
      patternRegExp(pattern).test(name))
  );
}

/**
 * Why this node refuses to run `name`, in words that hold for any node (the node is named by
 * whoever prints it), or undefined when it runs it.
 */
export function refusal(patterns: readonly string[], name: string): string | undefined {
  const problem = nameProblem(name);
  if (problem !== undefined) return `Cannot run ${JSON.stringify(name)}: ${problem}`;
  if (patterns.length === 0) {
    return `Cannot run ${JSON.stringify(name)}: om exec is off on this node (exec_allow is ` +
      `empty; set exec_allow in its om.conf, OM_EXEC_ALLOW or --exec-allow: names, paths, * for all)`;
  }
  if (!allows(patterns, name)) {
    return `Cannot run ${JSON.stringify(name)}: exec_allow on this node does not allow it ` +
      `(exec_allow = ${patterns.join(", ")})`;
  }
  return undefined;
}
