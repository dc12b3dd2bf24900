/**
 * The bash, zsh and fish completion scripts of om, generated from the command declarations (the
 * objects the parser reads and the help is rendered from), so they never drift from what om
 * accepts. Pure: declarations in, the text of a script out; `om completions` prints them, writes
 * the committed copies in completions/ and checks that those are still what the declarations
 * generate. One file per shell; the model they share is lib/cli/completionmodel.ts.
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
 * - the same for every link name (`omdiscd`, `showmap`, ...), where the command word is implicit;
 * - positions counted the way lib/cli/parser.ts parses (lib/cli/completionmodel.ts says how).
 */
export { bashCompletion } from "./bashcompletion.ts";
export { zshCompletion } from "./zshcompletion.ts";
export { fishCompletion } from "./fishcompletion.ts";
