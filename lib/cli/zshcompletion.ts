/**
 * The zsh completion script of om, generated from the command declarations: one `_arguments`
 * function per command, its verbs described with their help, and an `_om` that dispatches on the
 * command word or the link name.
 */
import type { CommandSpec, Completion } from "./parser.ts";
import {
  type Flag,
  header,
  linkNames,
  type Model,
  modelsOf,
  oneLine,
  positions,
  quote,
} from "./completionmodel.ts";

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
