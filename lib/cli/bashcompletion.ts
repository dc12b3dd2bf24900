/**
 * The bash completion script of om, generated from the command declarations: a small engine
 * (`_om_complete`, which counts positions as om parses) and one `_om_spec_<command>` function per
 * command that tells it the command's flags, the values of its flags and its arguments.
 */
import type { CommandSpec, Completion } from "./parser.ts";
import { header, linkNames, type Model, modelsOf, positions, quote } from "./completionmodel.ts";

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
