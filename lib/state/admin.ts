/**
 * The admin files of a node: `admin/<name>` in om's state tree, or /proc/hpc/admin/<name> on an
 * openMosix kernel. Flags hold `1` or `0`; settings hold a decimal number. `mosctl` writes them,
 * the daemon reads them (quiet and speed at every information interval). PROTOCOL.md §3.8.
 */
import type { StatePaths } from "./tree.ts";
import { writeFileAtomic } from "./tree.ts";

/** The on/off flags of the HOWTO's table 8-2 (expel and bring are requests, 1 while pending). */
export const ADMIN_FLAGS = ["stay", "lstay", "block", "quiet", "nomfs", "expel", "bring"] as const;
export type AdminFlag = (typeof ADMIN_FLAGS)[number];

/** Reads `admin/<name>` as trimmed text; undefined when it does not exist. */
export async function readAdmin(paths: StatePaths, name: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(`${paths.admin}/${name}`)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Writes `admin/<name>`: in place on a kernel, atomically in the state tree. */
export async function writeAdmin(paths: StatePaths, name: string, value: string): Promise<void> {
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
export async function readNumber(paths: StatePaths, name: string): Promise<number | undefined> {
  const text = await readAdmin(paths, name);
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}
