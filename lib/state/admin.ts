/**
 * The admin files of a node: `admin/<name>` in om's state tree, or /proc/hpc/admin/<name> on an
 * openMosix kernel. Flags hold `1` or `0`; settings hold one value. `mosctl` writes them, the
 * daemon reads them (quiet, block and speed at every information interval) and so does the
 * balancer (stay, lstay and the decay settings). Their names and the decay defaults are defined
 * here and nowhere else, so a reader and a writer cannot disagree on a file. PROTOCOL.md §3.8.
 */
import type { StatePaths } from "./tree.ts";
import { writeFileAtomic } from "./tree.ts";

/** The on/off flags of the HOWTO's table 8-2 (expel and bring are requests, 1 while pending). */
export const ADMIN_FLAGS = ["stay", "lstay", "block", "quiet", "nomfs", "expel", "bring"] as const;
export type AdminFlag = (typeof ADMIN_FLAGS)[number];

/** The settings, one value each; PROTOCOL.md §3.8 gives their formats and defaults. */
export const ADMIN_SETTINGS = [
  "speed",
  "yardstick",
  "decayinterval",
  "slowdecay",
  "fastdecay",
  "overheads",
] as const;
export type AdminSetting = (typeof ADMIN_SETTINGS)[number];

/** A file of admin/ (config and mospe, the map and the node id, are lib/state/tree.ts's). */
export type AdminFile = AdminFlag | AdminSetting;

/**
 * The requests, each with the flag it also sets: expel blocks new guests while the guests leave,
 * bring keeps this node's jobs home once they are back.
 */
export const ADMIN_REQUESTS = { expel: "block", bring: "lstay" } as const satisfies Partial<
  Record<AdminFlag, AdminFlag>
>;
export type AdminRequest = keyof typeof ADMIN_REQUESTS;

/** The decay parameters: how often a job's load history decays and how much each decay keeps. */
export interface Decay {
  /** Seconds between two decays. */
  readonly interval: number;
  /** Per mille kept at each decay by slowly decaying jobs. */
  readonly slow: number;
  /** Per mille kept at each decay by fast decaying jobs. */
  readonly fast: number;
}

/**
 * The decay parameters when their files are absent, for the balancer and `mosctl getdecay` alike:
 * slow 975 and fast 926 are openMosix's (HOWTO table 8-2); the interval of 1 s is om's.
 */
export const DEFAULT_DECAY: Decay = { interval: 1, slow: 975, fast: 926 };

/** The admin file of each decay parameter (the HOWTO's table spells them decay-interval, ...). */
export const DECAY_FILES = {
  interval: "decayinterval",
  slow: "slowdecay",
  fast: "fastdecay",
} as const satisfies Record<keyof Decay, AdminSetting>;

/** Reads `admin/<name>` as trimmed text; undefined when it does not exist. */
export async function readAdmin(paths: StatePaths, name: AdminFile): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(`${paths.admin}/${name}`)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Writes `admin/<name>`: in place on a kernel, atomically in the state tree. */
export async function writeAdmin(paths: StatePaths, name: AdminFile, value: string): Promise<void> {
  const bytes = new TextEncoder().encode(`${value}\n`);
  if (paths.backend === "kernel") await Deno.writeFile(`${paths.admin}/${name}`, bytes);
  else await writeFileAtomic(`${paths.admin}/${name}`, bytes);
}

/** True when the flag file holds a non-zero number. */
export async function readFlag(paths: StatePaths, name: AdminFlag): Promise<boolean> {
  const text = await readAdmin(paths, name);
  return text !== undefined && /^\d+$/.test(text) && Number(text) !== 0;
}

/** A numeric setting, or undefined when absent or not a whole number. */
export async function readNumber(
  paths: StatePaths,
  name: AdminSetting,
): Promise<number | undefined> {
  const text = await readAdmin(paths, name);
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/**
 * Sets a flag to 1 (`on`) or 0, unless it is so already (an absent file counts as 0): then the
 * file is left as it is. Returns whether it wrote.
 */
export async function setFlag(paths: StatePaths, name: AdminFlag, on: boolean): Promise<boolean> {
  if (await readFlag(paths, name) === on) return false;
  await writeAdmin(paths, name, on ? "1" : "0");
  return true;
}

/**
 * Files a request: sets the flag it implies (unless set already), then writes the request's own
 * file 1, even when it holds 1 already: asking again asks again. The daemon (or the kernel) acts
 * on it and writes 0 when done.
 */
export async function writeRequest(paths: StatePaths, request: AdminRequest): Promise<void> {
  await setFlag(paths, ADMIN_REQUESTS[request], true);
  await writeAdmin(paths, request, "1");
}

/**
 * Writes the decay parameters given: the interval, and the slow and fast rates when they are
 * given (`mosctl setdecay INTERVAL [SLOW FAST]`), in that order.
 */
export async function writeDecay(
  paths: StatePaths,
  decay: Pick<Decay, "interval"> & Partial<Decay>,
): Promise<void> {
  for (const key of ["interval", "slow", "fast"] as const) {
    const value = decay[key];
    if (value !== undefined) await writeAdmin(paths, DECAY_FILES[key], String(value));
  }
}
