/**
 * The dump rounds of a migration (PROTOCOL.md §11.3): stop-and-copy, one dump with the job left
 * stopped, or iterative pre-copy where the kernel tracks dirty memory (pre-dumps while the job
 * runs, then the final dump of what changed). The machines of this project have no dirty-memory
 * tracking, so the pre-copy path is tested for its plan and argv only.
 */
import { dumpArgs } from "../criu/args.ts";

/** Pre-dump rounds before the final dump, when the kernel tracks dirty memory. */
export const PRE_DUMP_ROUNDS = 1;

/**
 * One dump round of a migration: its images go to `dir` (relative to the images directory on
 * both nodes, "" for the directory itself) and, for a round after a pre-dump, only the pages
 * changed since the round in `prev` (relative to `dir`) are sent.
 */
export interface DumpRound {
  readonly action: "pre-dump" | "dump";
  readonly dir: string;
  readonly prev?: string;
}

/**
 * The rounds of a migration (PROTOCOL.md §11.3): with dirty-memory tracking (`criu check
 * --feature mem_dirty_track`), PRE_DUMP_ROUNDS pre-dumps while the job runs (iterative pre-copy:
 * each round sends what changed since the one before), then the final dump of what changed since
 * the last; without it (this project's machines), one stop-and-copy dump.
 */
export function dumpRounds(memDirtyTrack: boolean, preDumps = PRE_DUMP_ROUNDS): DumpRound[] {
  if (!memDirtyTrack || preDumps < 1) return [{ action: "dump", dir: "" }];
  const rounds: DumpRound[] = [];
  for (let i = 1; i <= preDumps; i++) {
    rounds.push({
      action: "pre-dump",
      dir: `pre-${i}`,
      ...(i > 1 ? { prev: `../pre-${i - 1}` } : {}),
    });
  }
  return [...rounds, { action: "dump", dir: "", prev: `pre-${preDumps}` }];
}

/**
 * The criu argv of a round on the source, its pages sent over the page link (descriptor 0):
 * `--track-mem` in pre-copy, `--leave-stopped` for the final dump (the source's copy waits for
 * the commit, §11.2).
 */
export function roundArgs(
  round: DumpRound,
  options: {
    pid: number;
    imagesDir: string;
    memDirtyTrack: boolean;
    /** A user's job: criu runs as its user (`--unprivileged`), its own mounts are external. */
    user?: boolean;
    /** `--action-script`: the dump's gate (lib/migration/pagelink.ts DUMP_GATE). */
    gate?: string;
  },
): string[] {
  const imagesDir = round.dir ? `${options.imagesDir}/${round.dir}` : options.imagesDir;
  return dumpArgs({
    pid: options.pid,
    imagesDir,
    logFile: `${imagesDir}/${round.action}.log`,
    psSocket: 0,
    trackMem: options.memDirtyTrack,
    leaveStopped: round.action === "dump",
    unprivileged: options.user,
    ownMounts: options.user,
    ...(options.gate !== undefined ? { actionScript: options.gate } : {}),
    ...(round.prev !== undefined ? { prevImagesDir: round.prev } : {}),
  }, round.action);
}
