/**
 * The on/off verbs of `mosctl` (HOWTO table 8-6): the admin file each writes, the value, and the
 * sentence it prints when the flag is already so (and nothing changes). nostay's and nolstay's
 * sentences are the original's, word for word; the others are om's, in the same style.
 * PROTOCOL.md §3.8 lists them.
 */
import type { AdminFlag } from "../state/admin.ts";

/** An on/off verb: the admin file it writes, the value, and what it says when already so. */
export interface FlagVerb {
  readonly file: AdminFlag;
  readonly on: boolean;
  readonly already: string;
}

/** The on/off verbs. nolstay's and nostay's messages are the original's, word for word. */
export const FLAG_VERBS: Readonly<Record<string, FlagVerb>> = {
  stay: { file: "stay", on: true, already: "automatic load-balancing already disabled." },
  nostay: { file: "stay", on: false, already: "automatic load-balancing already enabled." },
  lstay: {
    file: "lstay",
    on: true,
    already: "Local processes already kept from leaving automatically.",
  },
  nolstay: {
    file: "lstay",
    on: false,
    already: "Local processes already allowed to leave automatically.",
  },
  block: { file: "block", on: true, already: "Arrival of guest processes already blocked." },
  noblock: { file: "block", on: false, already: "Arrival of guest processes already allowed." },
  quiet: {
    file: "quiet",
    on: true,
    already: "Gathering of load-balancing information already stopped.",
  },
  noquiet: {
    file: "quiet",
    on: false,
    already: "Gathering of load-balancing information already running.",
  },
  nomfs: { file: "nomfs", on: true, already: "MFS already disabled." },
  mfs: { file: "nomfs", on: false, already: "MFS already enabled." },
};

/** The original's dash spellings of the "no" verbs: option name, flag, verb. */
export const DASH_SPELLINGS = [
  { name: "dashStay", flag: "-stay", verb: "nostay" },
  { name: "dashLstay", flag: "-lstay", verb: "nolstay" },
  { name: "dashBlock", flag: "-block", verb: "noblock" },
  { name: "dashQuiet", flag: "-quiet", verb: "noquiet" },
] as const;
