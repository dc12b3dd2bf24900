/**
 * The command-line layer: declarations, one parser, help text.
 *
 * Why not a package: the original tools' spellings (`setpe -off`, `mosctl -stay`, `mosrun -3`,
 * `-ieth0`) fit no getopt-style library, and start-up time is part of the product (people loop
 * `om mosctl` over nodes). A declaration is plain data, so help and the shell completions are
 * generated from the very object the parser reads.
 */

/** What completes an option's value or an argument in the shells. */
export type Completion = "file" | "interface" | "host" | "none" | readonly string[];

/** One option. `flags` are the literal spellings: `-i`, `--interface`, `-off`. */
export interface OptionSpec {
  /** Key in the parsed result. */
  readonly name: string;
  readonly flags: readonly string[];
  /** Placeholder of the value; options without it are booleans. */
  readonly value?: string;
  /** The value must be an integer (in this range, inclusive). */
  readonly integer?: readonly [number, number];
  readonly help: string;
  readonly complete?: Completion;
  /** May be given more than once; the result is an array. */
  readonly repeat?: boolean;
}

/** One positional argument (for help and completion; the parser collects them all). */
export interface ArgSpec {
  readonly name: string;
  readonly help: string;
  readonly complete?: Completion;
}

/** One example in the help text. */
export interface Example {
  readonly command: string;
  readonly says: string;
}

/** A command's whole declaration. */
export interface CommandSpec {
  readonly name: string;
  /** Other names om answers to through a link (omdiscd for discover). */
  readonly links?: readonly string[];
  readonly summary: string;
  readonly usage: readonly string[];
  readonly description?: string;
  readonly options: readonly OptionSpec[];
  readonly args?: readonly ArgSpec[];
  readonly examples: readonly Example[];
  /** Words that may come first (lab: up, exec, status, down). */
  readonly verbs?: readonly ArgSpec[];
  /** Spellings that ask for help; default `-h`, `--help`. */
  readonly helpFlags?: readonly string[];
  /**
   * The command reads its arguments itself (mosrun's `-3` and `-j2-4,7` fit no declaration):
   * parse hands every word over as an argument and only notices a help flag before the first
   * word that does not start with `-`. The options are still declared, for help and completions.
   */
  readonly rawArgs?: boolean;
  /**
   * Options end at the first positional argument (a command line to run follows: `om exec uname
   * -a` passes `-a` to uname), as parse's `stopAtFirstArg`.
   */
  readonly stopAtFirstArg?: boolean;
}

/** Parsed command line: option values by name, and the positional arguments. */
export interface Parsed {
  readonly options: Record<string, string | number | boolean | (string | number)[] | undefined>;
  readonly args: string[];
  /** True when a help flag was given: the caller prints help and stops. */
  readonly help: boolean;
}

/** A mistake on the command line; the command exits 2 and points at --help. */
export class UsageError extends Error {
  override name = "UsageError";
}

function helpFlagsOf(spec: CommandSpec): readonly string[] {
  return spec.helpFlags ?? ["-h", "--help"];
}

function toValue(option: OptionSpec, flag: string, raw: string): string | number {
  if (!option.integer) return raw;
  const [min, max] = option.integer;
  if (!/^-?\d+$/.test(raw)) {
    throw new UsageError(`Cannot use "${raw}" for ${flag}: not a whole number`);
  }
  const n = Number(raw);
  if (n < min || n > max) {
    throw new UsageError(`Cannot use "${raw}" for ${flag}: not between ${min} and ${max}`);
  }
  return n;
}

/**
 * Parses `argv` against a declaration. Accepts `--name value`, `--name=value`, `-x value`, `-xvalue`
 * (for a two-character flag that takes a value) and the literal spellings declared; everything
 * after `--` is positional. Positional arguments may be mixed with options unless
 * `stopAtFirstArg` is set (for commands that take a command line to run).
 */
export function parse(
  spec: CommandSpec,
  argv: readonly string[],
  options: { stopAtFirstArg?: boolean } = {},
): Parsed {
  if (spec.rawArgs) {
    const end = argv.findIndex((word) => word === "--" || !word.startsWith("-"));
    const before = end === -1 ? argv : argv.slice(0, end);
    return {
      options: {},
      args: [...argv],
      help: before.some((word) => helpFlagsOf(spec).includes(word)),
    };
  }
  const byFlag = new Map<string, OptionSpec>();
  for (const option of spec.options) for (const flag of option.flags) byFlag.set(flag, option);
  const values: Parsed["options"] = {};
  const args: string[] = [];
  let help = false;

  const store = (option: OptionSpec, flag: string, raw: string | undefined) => {
    if (option.value === undefined) {
      if (raw !== undefined) throw new UsageError(`Cannot give a value to ${flag}: it takes none`);
      values[option.name] = true;
      return;
    }
    if (raw === undefined) throw new UsageError(`Cannot use ${flag}: it needs ${option.value}`);
    const value = toValue(option, flag, raw);
    if (option.repeat) {
      const list = (values[option.name] as (string | number)[] | undefined) ?? [];
      list.push(value);
      values[option.name] = list;
    } else {
      values[option.name] = value;
    }
  };

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === "--") {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (helpFlagsOf(spec).includes(token)) {
      help = true;
      continue;
    }
    const exact = byFlag.get(token);
    if (exact) {
      const raw = exact.value === undefined ? undefined : argv[++i];
      store(exact, token, raw);
      continue;
    }
    if (token.startsWith("--") && token.includes("=")) {
      const flag = token.slice(0, token.indexOf("="));
      const option = byFlag.get(flag);
      if (!option) throw new UsageError(`Cannot use ${flag}: unknown option`);
      store(option, flag, token.slice(flag.length + 1));
      continue;
    }
    if (/^-[A-Za-z]./.test(token)) {
      const option = byFlag.get(token.slice(0, 2));
      if (option && option.value !== undefined) {
        store(option, token.slice(0, 2), token.slice(2));
        continue;
      }
    }
    if (token.startsWith("-") && token !== "-" && !/^-\d/.test(token)) {
      throw new UsageError(`Cannot use ${token}: unknown option`);
    }
    args.push(token);
    if (options.stopAtFirstArg ?? spec.stopAtFirstArg) {
      args.push(...argv.slice(i + 1));
      break;
    }
  }
  return { options: values, args, help };
}

function table(rows: readonly (readonly [string, string])[], indent = "  "): string[] {
  const width = Math.min(30, Math.max(0, ...rows.map(([left]) => left.length)));
  return rows.map(([left, right]) =>
    left.length > width
      ? `${indent}${left}\n${indent}${" ".repeat(width + 2)}${right}`
      : `${indent}${left.padEnd(width)}  ${right}`
  );
}

/** Renders `om <command> --help` from the declaration. */
export function renderHelp(spec: CommandSpec): string {
  const lines: string[] = [];
  lines.push(`om ${spec.name}: ${spec.summary}`, "");
  lines.push("Usage:");
  for (const usage of spec.usage) lines.push(`  ${usage}`);
  if (spec.description) lines.push("", ...spec.description.trimEnd().split("\n"));
  if (spec.verbs?.length) {
    lines.push("", "Commands:");
    lines.push(...table(spec.verbs.map((v) => [v.name, v.help])));
  }
  if (spec.args?.length) {
    lines.push("", "Arguments:");
    lines.push(...table(spec.args.map((a) => [a.name, a.help])));
  }
  const optionRows: [string, string][] = spec.options.map((o) => [
    o.flags.join(", ") + (o.value ? ` ${o.value}` : ""),
    o.help,
  ]);
  optionRows.push([helpFlagsOf(spec).join(", "), "show this help"]);
  lines.push("", "Options:", ...table(optionRows));
  if (spec.links?.length) {
    lines.push("", `Also runs as: ${spec.links.join(", ")} (through a link of that name).`);
  }
  if (spec.examples.length) {
    lines.push("", "Examples:");
    for (const example of spec.examples) {
      lines.push(`  $ ${example.command}`, `      ${example.says}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** Rebuilds a command line from parsed options (long spellings), e.g. to re-run oneself detached. */
export function unparse(spec: CommandSpec, parsed: Parsed, omit: readonly string[] = []): string[] {
  const argv: string[] = [];
  for (const option of spec.options) {
    const value = parsed.options[option.name];
    if (value === undefined || value === false || omit.includes(option.name)) continue;
    const flag = option.flags[option.flags.length - 1];
    if (option.value === undefined) argv.push(flag);
    else for (const v of Array.isArray(value) ? value : [value]) argv.push(flag, String(v));
  }
  return [...argv, ...(parsed.args.length ? ["--", ...parsed.args] : [])];
}
