/**
 * A command declaration reduced to what shell completion needs (the Model), shared by the bash,
 * zsh and fish generators (lib/cli/bashcompletion.ts, zshcompletion.ts, fishcompletion.ts), with
 * the checks that refuse a word a shell cannot take and the quoting the scripts share.
 *
 * Positions are counted the way lib/cli/parser.ts parses: `--` ends the options, a flag declared
 * with a value takes the next word, and any other word starting with "-" is an option, except "-"
 * itself and "-<digit>...".
 */
import type { ArgSpec, CommandSpec, Completion } from "./parser.ts";

/** One option as the scripts see it: its spellings and what completes its value, if it has one. */
export interface Flag {
  readonly flags: readonly string[];
  readonly help: string;
  readonly repeat: boolean;
  /** The help flags: nothing else is completed after them. */
  readonly isHelp?: boolean;
  /** Absent for a boolean option. */
  readonly value?: { readonly label: string; readonly complete: Completion };
}

/** One positional argument after the verb (if any). */
export interface Position {
  readonly label: string;
  readonly complete: Completion;
  /** Covers this position and every later one. */
  readonly repeat: boolean;
}

/** A declaration reduced to what completion needs, checked for words the shells cannot take. */
export interface Model {
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

/**
 * The declarations as the scripts see them; throws TypeError on a word a shell cannot take, and
 * on two commands answering to one name or sharing a function name.
 */
export function modelsOf(specs: readonly CommandSpec[]): Model[] {
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
export function positions(model: Model): { fixed: Position[]; rest?: Position } {
  const fixed: Position[] = [];
  for (const arg of model.args) {
    if (arg.repeat) return { fixed, rest: arg };
    fixed.push(arg);
  }
  return { fixed };
}

/** Help text on one line. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

/** A shell word in single quotes (bash, zsh). */
export function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The first lines of every script: what it is, that it is generated, how to install it. */
export function header(comment: string, install: string): string[] {
  return [
    `${comment} Shell completion for om and the names it answers to through links.`,
    `${comment} Generated by \`om completions\` from the command declarations: do not edit by hand;`,
    `${comment} run \`deno task completions\` after changing a command's options.`,
    `${comment} Install: ${install}`,
  ];
}

/** Every link name of every command, in order. */
export function linkNames(models: readonly Model[]): string[] {
  return models.flatMap((m) => m.links);
}
