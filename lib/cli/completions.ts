/**
 * The bash, zsh and fish completion scripts of om, generated from the command declarations so
 * they never drift from what the parser accepts (STYLE item 12). Pure: declarations in, the text
 * of a script out; `om completions` prints them, writes the committed copies in completions/ and
 * checks that those are current.
 *
 * Every script completes the same things the same way:
 * - `om <TAB>`: the command names, `--help` and `--version`;
 * - `om <cmd> <TAB>`: the command's flags (its help flags too) and, in first position, its verbs;
 * - the value after a flag that takes one (`-i eth0`, `--interface=eth0`), by the option's
 *   `complete`: file names, network interface names (the last item of a comma-separated list),
 *   host names, or the listed words;
 * - positional arguments by their ArgSpec's `complete`, counted after the verb when the command
 *   has verbs; an argument whose name ends in "..." (`command...`, `[FILE...]`) also covers every
 *   later position;
 * - the same for every link name (`omdiscd`, `showmap`, ...), where the command word is implicit.
 *
 * Positions are counted the way lib/cli/parser.ts parses: `--` ends the options, a flag declared with a
 * value takes the next word, and any other word starting with "-" is an option, except "-" itself
 * and "-<digit>...".
 */
import type { ArgSpec, CommandSpec, Completion } from "./parser.ts";

/** One option as the scripts see it: its spellings and what completes its value, if it has one. */
interface Flag {
  readonly flags: readonly string[];
  readonly help: string;
  readonly repeat: boolean;
  /** The help flags: nothing else is completed after them. */
  readonly isHelp?: boolean;
  /** Absent for a boolean option. */
  readonly value?: { readonly label: string; readonly complete: Completion };
}

/** One positional argument after the verb (if any). */
interface Position {
  readonly label: string;
  readonly complete: Completion;
  /** Covers this position and every later one. */
  readonly repeat: boolean;
}

/** A declaration reduced to what completion needs, checked for words the shells cannot take. */
interface Model {
  readonly name: string;
  /** The name as a part of a shell function name. */
  readonly ident: string;
  readonly links: readonly string[];
  /** The command's name and its link names, each once (`showmap` is both). */
  readonly names: readonly string[];
  readonly summary: string;
  readonly options: readonly Flag[];
  readonly verbs: readonly ArgSpec[];
  readonly args: readonly Position[];
}

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const FLAG = /^--?[A-Za-z0-9][A-Za-z0-9_-]*$/;
const WORD = /^[A-Za-z0-9_.,@%+\/-]+$/;

function checked(pattern: RegExp, what: string, word: string, why: string): string {
  if (!pattern.test(word)) {
    throw new TypeError(`Cannot generate completions for ${what} "${word}": ${why}`);
  }
  return word;
}

function checkedCompletion(complete: Completion | undefined, owner: string): Completion {
  if (complete === undefined) return "none";
  if (typeof complete !== "string") {
    for (const word of complete) {
      checked(WORD, `a word of ${owner}`, word, "only letters, digits and _.,@%+/- are allowed");
    }
  }
  return complete;
}

function modelOf(spec: CommandSpec): Model {
  const name = checked(NAME, "the command", spec.name, "not a plain command name");
  const links = (spec.links ?? []).map((link) =>
    checked(NAME, "the link name", link, "not a plain command name")
  );
  if (links.includes("om")) {
    throw new TypeError(`Cannot generate completions for the link name "om": it is om itself`);
  }
  const seen = new Set<string>();
  const flag = (word: string) => {
    checked(FLAG, "the flag", word, "a flag is - or -- then letters, digits, _ and -");
    if (seen.has(word)) {
      throw new TypeError(`Cannot generate completions for the flag "${word}": declared twice`);
    }
    seen.add(word);
    return word;
  };
  const options: Flag[] = spec.options.map((o) => ({
    flags: o.flags.map(flag),
    help: o.help,
    repeat: o.repeat ?? false,
    value: o.value === undefined
      ? undefined
      : { label: o.value, complete: checkedCompletion(o.complete, o.flags.join(", ")) },
  }));
  options.push({
    flags: (spec.helpFlags ?? ["-h", "--help"]).map(flag),
    help: "show this help",
    repeat: false,
    isHelp: true,
  });
  const verbs = (spec.verbs ?? []).map((verb) => {
    checked(WORD, "the verb", verb.name, "only letters, digits and _.,@%+/- are allowed");
    return verb;
  });
  const args = (spec.args ?? []).map((arg) => ({
    label: arg.name,
    complete: checkedCompletion(arg.complete, arg.name),
    repeat: /\.\.\.\]?$/.test(arg.name),
  }));
  return {
    name,
    ident: name.replaceAll("-", "_"),
    links,
    names: [...new Set([name, ...links])],
    summary: spec.summary,
    options,
    verbs,
    args,
  };
}

function modelsOf(specs: readonly CommandSpec[]): Model[] {
  const models = specs.map(modelOf);
  const names = new Set<string>();
  const idents = new Set<string>();
  for (const model of models) {
    for (const name of model.names) {
      if (names.has(name)) {
        throw new TypeError(`Cannot generate completions for "${name}": two commands answer to it`);
      }
      names.add(name);
    }
    if (idents.has(model.ident)) {
      throw new TypeError(
        `Cannot generate completions for "${model.name}": its function name is taken`,
      );
    }
    idents.add(model.ident);
  }
  return models;
}

/** The positions after the verb that a script must spell out, and the one for all later ones. */
function positions(model: Model): { fixed: Position[]; rest?: Position } {
  const fixed: Position[] = [];
  for (const arg of model.args) {
    if (arg.repeat) return { fixed, rest: arg };
    fixed.push(arg);
  }
  return { fixed };
}

/** Help text on one line. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** A shell word in single quotes (bash, zsh). */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A fish word in single quotes: there only \\ and \' are escapes. */
function fishQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

function header(comment: string, install: string): string[] {
  return [
    `${comment} Shell completion for om and the names it answers to through links.`,
    `${comment} Generated by \`om completions\` from the command declarations: do not edit by hand;`,
    `${comment} run \`deno task completions\` after changing a command's options.`,
    `${comment} Install: ${install}`,
  ];
}

function linkNames(models: readonly Model[]): string[] {
  return models.flatMap((m) => m.links);
}

// ---------------------------------------------------------------------------------------------
// bash

/** The value of REPLY that `_om_values` takes for a kind of completion. */
function bashKind(complete: Completion): string {
  return typeof complete === "string" ? complete : quote(`words:${complete.join(" ")}`);
}

function bashSpec(model: Model): string[] {
  const valued = model.options.filter((o) => o.value);
  const { fixed, rest } = positions(model);
  const first = model.verbs.length ? 1 : 0;
  const lines = [
    `# om ${model.names.join(", ")}`,
    `_om_spec_${model.ident}() {`,
    "  case $1 in",
    `    flags) REPLY=${quote(model.options.flatMap((o) => o.flags).join(" "))} ;;`,
    `    valued) REPLY=${quote(valued.flatMap((o) => o.flags).join(" "))} ;;`,
    "    value)",
    "      case $2 in",
    ...valued.map((o) => `        ${o.flags.join(" | ")}) REPLY=${bashKind(o.value!.complete)} ;;`),
    "        *) REPLY=none ;;",
    "      esac ;;",
    "    arg)",
    "      case $2 in",
  ];
  if (model.verbs.length) {
    lines.push(`        0) REPLY=${bashKind(model.verbs.map((v) => v.name))} ;;`);
  }
  fixed.forEach((arg, i) => lines.push(`        ${first + i}) REPLY=${bashKind(arg.complete)} ;;`));
  lines.push(
    `        *) REPLY=${rest ? bashKind(rest.complete) : "none"} ;;`,
    "      esac ;;",
    "  esac",
    "}",
  );
  return lines;
}

const BASH_ENGINE = `
# _om_interfaces: sets REPLY to the names of the network interfaces.
_om_interfaces() {
  local dev
  REPLY=''
  for dev in /sys/class/net/*; do
    [[ -e $dev ]] && REPLY+=" \${dev##*/}"
  done
}

# _om_values KIND WORD: fills COMPREPLY with the completions of WORD of that kind
# (file, interface, host, none, or words:WORD...).
_om_values() {
  local word=$2 head=''
  case $1 in
    file)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$word") ;;
    interface)
      # A comma-separated list: complete its last item.
      [[ $word == *,* ]] && head=\${word%,*},
      _om_interfaces
      mapfile -t COMPREPLY < <(compgen -P "$head" -W "$REPLY" -- "\${word##*,}") ;;
    host)
      mapfile -t COMPREPLY < <(compgen -A hostname -- "$word") ;;
    words:*)
      mapfile -t COMPREPLY < <(compgen -W "\${1#words:}" -- "$word") ;;
    *)
      COMPREPLY=() ;;
  esac
}

# _om_complete SPEC FIRST: fills COMPREPLY for the word under the cursor, for the command whose
# declaration is the function SPEC and whose arguments start at word FIRST. Counts positions as
# om parses: "--" ends the options, a flag with a value takes the next word.
_om_complete() {
  local spec=$1 i=$2 cur=\${COMP_WORDS[COMP_CWORD]} word flag='' valued pos=0 rest=0
  "$spec" valued
  valued=" $REPLY "
  while (( i < COMP_CWORD )); do
    word=\${COMP_WORDS[i]}
    i=$(( i + 1 ))
    if (( rest )); then
      pos=$(( pos + 1 ))
    elif [[ $word == -- ]]; then
      rest=1
    elif [[ $word == -* && \${COMP_WORDS[i]} == = ]]; then
      # --flag=value, which bash splits at "=" (COMP_WORDBREAKS).
      if (( i >= COMP_CWORD - 1 )); then
        flag=$word
        (( i == COMP_CWORD )) && cur=''
        break
      fi
      i=$(( i + 2 ))
    elif [[ $valued == *" $word "* ]]; then
      if (( i == COMP_CWORD )); then
        flag=$word
        break
      fi
      i=$(( i + 1 ))
    elif [[ $word != -?* || $word == -[0-9]* ]]; then
      pos=$(( pos + 1 ))
    fi
  done
  if [[ -n $flag ]]; then
    "$spec" value "$flag"
    _om_values "$REPLY" "$cur"
  elif (( ! rest )) && [[ $cur == -* ]]; then
    "$spec" flags
    mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
  else
    "$spec" arg "$pos"
    _om_values "$REPLY" "$cur"
  fi
}
`.trim();

/**
 * The bash completion script for `specs` (in the order `om --help` lists them). It needs bash 4
 * and nothing from the bash-completion package; it registers the same function for `om` and
 * every link name.
 */
export function bashCompletion(specs: readonly CommandSpec[]): string {
  const models = modelsOf(specs);
  const names = models.map((m) => m.name);
  const lines = [
    ...header(
      "#",
      "copy to /etc/bash_completion.d/om, or source it from ~/.bashrc.",
    ),
    "",
    BASH_ENGINE,
    "",
  ];
  for (const model of models) lines.push(...bashSpec(model), "");
  lines.push(
    "# _om: the completion function of om and of its link names.",
    "_om() {",
    "  COMPREPLY=()",
    "  case ${1##*/} in",
  );
  for (const model of models) {
    if (model.links.length) {
      lines.push(
        `    ${model.links.join(" | ")}) _om_complete _om_spec_${model.ident} 1; return ;;`,
      );
    }
  }
  lines.push(
    "  esac",
    "  if (( COMP_CWORD == 1 )); then",
    `    mapfile -t COMPREPLY < <(compgen -W ${
      quote([...names, "--help", "--version"].join(" "))
    } -- "\${COMP_WORDS[1]}")`,
    "    return",
    "  fi",
    "  case ${COMP_WORDS[1]} in",
  );
  for (const model of models) {
    lines.push(
      `    ${model.names.join(" | ")}) _om_complete _om_spec_${model.ident} 2 ;;`,
    );
  }
  lines.push(
    "  esac",
    "}",
    "",
    `complete -F _om ${["om", ...linkNames(models)].join(" ")}`,
  );
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// zsh

/** The explanation of an _arguments spec, inside `[...]`. */
function zshExplanation(text: string): string {
  return oneLine(text).replace(/[\\\[\]:]/g, (c) => `\\${c}`);
}

/** The message of an _arguments spec, between colons: there only ":" is special. */
function zshMessage(text: string): string {
  return oneLine(text).replaceAll(":", "\\:");
}

function zshAction(complete: Completion): string {
  if (typeof complete !== "string") return `(${complete.join(" ")})`;
  switch (complete) {
    case "file":
      return "_files";
    case "interface":
      return "_om_interfaces";
    case "host":
      return "_hosts";
    default:
      return " ";
  }
}

function zshOptionSpecs(option: Flag): string[] {
  const exclusive = option.flags.length > 1 && !option.repeat ? `(${option.flags.join(" ")})` : "";
  return option.flags.map((flag) => {
    const form = !option.value
      ? flag
      : flag.startsWith("--")
      ? `${flag}=`
      : flag.length === 2
      ? `${flag}+`
      : flag;
    const prefix = option.isHelp ? "(- *)" : option.repeat ? "*" : exclusive;
    const value = option.value
      ? `:${zshMessage(option.value.label)}:${zshAction(option.value.complete)}`
      : "";
    return quote(`${prefix}${form}[${zshExplanation(option.help)}]${value}`);
  });
}

function zshSpec(model: Model): string[] {
  const specs = model.options.flatMap(zshOptionSpecs);
  const { fixed, rest } = positions(model);
  const first = model.verbs.length ? 1 : 0;
  const lines = [
    `# om ${model.names.join(", ")}`,
  ];
  if (model.verbs.length) {
    specs.push(quote(`1: :_om_${model.ident}_verbs`));
    lines.push(
      `_om_${model.ident}_verbs() {`,
      "  local -a verbs=(",
      ...model.verbs.map((v) => `    ${quote(`${v.name}:${oneLine(v.help)}`)}`),
      "  )",
      `  _describe -t verbs ${quote(`om ${model.name} command`)} verbs`,
      "}",
      "",
    );
  }
  fixed.forEach((arg, i) =>
    specs.push(quote(`${first + i + 1}:${zshMessage(arg.label)}:${zshAction(arg.complete)}`))
  );
  if (rest) specs.push(quote(`*:${zshMessage(rest.label)}:${zshAction(rest.complete)}`));
  lines.push(
    `_om_${model.ident}() {`,
    "  _arguments -S \\",
    ...specs.map((s, i) => `    ${s}${i < specs.length - 1 ? " \\" : ""}`),
    "}",
  );
  return lines;
}

/**
 * The zsh completion script for `specs`: an autoloadable `_om` (its `#compdef` line names om and
 * every link name) that also works when sourced after `compinit`.
 */
export function zshCompletion(specs: readonly CommandSpec[]): string {
  const models = modelsOf(specs);
  const all = ["om", ...linkNames(models)];
  const lines = [
    `#compdef ${all.join(" ")}`,
    ...header(
      "#",
      "copy as _om into a directory of $fpath (e.g. /usr/local/share/zsh/site-functions),",
    ),
    "# then start a new shell (remove ~/.zcompdump if compinit cached the old list).",
    "",
    "# _om_interfaces: network interface names, as a comma-separated list.",
    "_om_interfaces() {",
    "  local -a ifs",
    "  ifs=(/sys/class/net/*(N:t))",
    "  _sequence -s , compadd - $ifs",
    "}",
    "",
    "# _om_commands: om's commands, with their summaries.",
    "_om_commands() {",
    "  local -a commands=(",
    ...models.map((m) => `    ${quote(`${m.name}:${oneLine(m.summary)}`)}`),
    "  )",
    "  _describe -t commands 'om command' commands",
    "}",
    "",
  ];
  for (const model of models) lines.push(...zshSpec(model), "");
  lines.push(
    "# _om: the completion function of om and of its link names.",
    "_om() {",
    "  local curcontext=$curcontext state state_descr line ret=1",
    "  typeset -A opt_args",
    "  case $service in",
  );
  for (const model of models) {
    if (model.links.length) {
      lines.push(`    ${model.links.join(" | ")}) _om_${model.ident}; return ;;`);
    }
  }
  lines.push(
    "  esac",
    "  _arguments -C \\",
    `    '(- *)--help[show the overview of the commands]' \\`,
    `    '(- *)--version[print the version of om]' \\`,
    "    '1: :_om_commands' \\",
    "    '*:: :->command' && ret=0",
    "  if [[ $state == command ]]; then",
    "    curcontext=${curcontext%:*:*}:om-$words[1]:",
    "    case $words[1] in",
  );
  for (const model of models) {
    lines.push(
      `      ${model.names.join(" | ")}) _om_${model.ident} && ret=0 ;;`,
    );
  }
  lines.push(
    "    esac",
    "  fi",
    "  return ret",
    "}",
    "",
    "if [[ $funcstack[1] == _om ]]; then",
    "  # Autoloaded from $fpath: complete now.",
    '  _om "$@"',
    "else",
    "  # Sourced after compinit.",
    `  compdef _om ${all.join(" ")}`,
    "fi",
  );
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// fish

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
