/**
 * The fish completion script of om, generated from the command declarations: `complete` lines for
 * om and every link name, with a helper (`__om_argc`) that counts positions as om parses.
 */
import type { CommandSpec, Completion } from "./parser.ts";
import {
  header,
  linkNames,
  type Model,
  modelsOf,
  oneLine,
  type Position,
  positions,
} from "./completionmodel.ts";

/** A fish word in single quotes: there only \\ and \' are escapes. */
function fishQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/** The `complete` switches for one spelling of a flag. */
function fishFlag(flag: string): string {
  if (flag.startsWith("--")) return `-l ${flag.slice(2)}`;
  if (flag.length === 2) return `-s ${flag.slice(1)}`;
  return `-o ${flag.slice(1)}`;
}

/** The `complete` switches that complete a value of this kind. */
function fishValues(complete: Completion): string {
  if (typeof complete !== "string") return `-a ${fishQuote(complete.join(" "))}`;
  switch (complete) {
    case "file":
      return "-F";
    case "interface":
      return "-a '(__om_interfaces)'";
    case "host":
      return "-a '(__fish_print_hostnames)'";
    default:
      return "";
  }
}

function fishLine(parts: readonly string[]): string {
  return parts.filter((p) => p !== "").join(" ");
}

/** The `complete` lines of one command, as `command` (om or a link) with `skip` leading words. */
function fishCommand(model: Model, command: string, condition: string, skip: number): string[] {
  const valued = model.options.filter((o) => o.value).flatMap((o) => o.flags);
  const when = (extra: string) => {
    const all = [condition, extra].filter((c) => c !== "").join("; and ");
    return all ? `-n ${fishQuote(all)}` : "";
  };
  const at = (op: string, n: number) =>
    `test (__om_argc ${[skip, ...valued].join(" ")}) ${op} ${n}`;
  const lines: string[] = [];
  for (const option of model.options) {
    lines.push(fishLine([
      `complete -c ${command}`,
      when(""),
      ...option.flags.map(fishFlag),
      option.value ? (option.value.complete === "file" ? "-r" : "-x") : "",
      option.value ? fishValues(option.value.complete) : "",
      `-d ${fishQuote(oneLine(option.help))}`,
    ]));
  }
  for (const verb of model.verbs) {
    lines.push(fishLine([
      `complete -c ${command}`,
      when(at("-eq", 0)),
      `-a ${verb.name}`,
      `-d ${fishQuote(oneLine(verb.help))}`,
    ]));
  }
  const { fixed, rest } = positions(model);
  const first = model.verbs.length ? 1 : 0;
  const add = (arg: Position, test: string) => {
    const values = fishValues(arg.complete);
    if (values) lines.push(fishLine([`complete -c ${command}`, when(test), values]));
  };
  fixed.forEach((arg, i) => add(arg, at("-eq", first + i)));
  if (rest) add(rest, at("-ge", first + fixed.length));
  return lines;
}

const FISH_ENGINE = `
function __om_interfaces --description 'Network interface names, as a comma-separated list'
    # Keep what precedes the item being completed: "--interface=" and earlier items.
    set -l head (commandline -ct | string replace -r -- '^-[^=]*=' '' | string replace -r -- '[^,]*$' '')
    for dev in /sys/class/net/*
        printf '%s%s\\n' "$head" (string replace -r -- '.*/' '' $dev)
    end
end

function __om_argc --description 'How many arguments precede the cursor: __om_argc SKIP VALUED-FLAG...'
    # Counts as om parses: "--" ends the options, a flag with a value takes the next word.
    set -l tokens (commandline -opc)
    set -l i (math $argv[1] + 1)
    set -l valued $argv[2..-1]
    set -l n 0
    set -l rest 0
    while test $i -le (count $tokens)
        set -l word $tokens[$i]
        if test $rest = 1
            set n (math $n + 1)
        else if test "$word" = --
            set rest 1
        else if contains -- $word $valued
            set i (math $i + 1)
        else if not string match -qr -- '^-[^0-9]' $word
            set n (math $n + 1)
        end
        set i (math $i + 1)
    end
    echo $n
end

function __om_needs_command --description 'True when the command line is "om" and nothing more'
    test (count (commandline -opc)) -eq 1
end

function __om_using --description 'True when the command line is "om NAME ...", NAME one of the arguments'
    set -l tokens (commandline -opc)
    test (count $tokens) -ge 2; and contains -- $tokens[2] $argv
end
`.trim();

/**
 * The fish completion script for `specs`: `complete` lines for `om` and for every link name.
 * Fish loads a completion file by command name, so the link names need the same file under
 * their own names (or the file in conf.d/) to complete before `om` has been completed once.
 */
export function fishCompletion(specs: readonly CommandSpec[]): string {
  const models = modelsOf(specs);
  const lines = [
    ...header(
      "#",
      "copy to ~/.config/fish/completions/om.fish, and link it there as <link>.fish",
    ),
    `# for each link name (${linkNames(models).join(", ") || "none"}).`,
    "",
    FISH_ENGINE,
    "",
    "# om",
    "complete -c om -f",
    "complete -c om -n __om_needs_command -l help -d 'show the overview of the commands'",
    "complete -c om -n __om_needs_command -l version -d 'print the version of om'",
    ...models.map((m) =>
      `complete -c om -n __om_needs_command -a ${m.name} -d ${fishQuote(oneLine(m.summary))}`
    ),
  ];
  for (const model of models) {
    const names = model.names.join(" ");
    lines.push(
      "",
      `# om ${model.name}`,
      ...fishCommand(model, "om", `__om_using ${names}`, 2),
    );
    for (const link of model.links) {
      lines.push("", `# ${link} (om ${model.name})`, `complete -c ${link} -f`);
      lines.push(...fishCommand(model, link, "", 1));
    }
  }
  return lines.join("\n") + "\n";
}
