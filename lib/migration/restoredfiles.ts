/**
 * What a restored job may hold open (PROTOCOL.md §11, "The restored job's files"). criu opens a
 * job's files, maps its mapped files and enters its working directory as root (the target runs
 * `criu restore` as root, a user's job too), whatever the files' modes: images that name
 * a file the job's user may not open, `/etc/shadow` for reading or `/etc/passwd` for writing, would
 * hand it to the job. So, with its credentials (credentials.ts) and while the job is still stopped,
 * every task of a user's restored job is checked ({@linkcode checkRestoredFiles}):
 *
 * - each descriptor that names a file (its `/proc/PID/fd/N` link is a path): the file's mode, for
 *   the class the user is in (owner, group, other, as the kernel picks it), grants what the
 *   descriptor's access mode needs (`O_RDONLY` read, `O_WRONLY` write, `O_RDWR` both, `O_PATH`
 *   nothing);
 * - each mapped file (`/proc/PID/smaps`): read, and write too for a shared mapping that is or may
 *   be made writable (`mw` among its VmFlags);
 * - the working directory: search; the root directory: `/`, as a user's job has;
 * - for each of those still at its path (not deleted), search on every directory above it, so that
 *   a readable file inside a directory closed to the user is not handed over either.
 *
 * The check is by mode bits: a file the user may open only through an ACL fails it (the move fails
 * safely and says which file). Descriptors that are not files (pipes, sockets, anonymous inodes)
 * are not checked here.
 */
import type { CredentialRule } from "./credentials.ts";

/** What an access needs, as mode bits of one class: read 4, write 2, search or execute 1. */
export const Need = { read: 4, write: 2, search: 1 } as const;

/** A file's owner and mode, as stat gives them. */
export interface FileMode {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** A job's user as the kernel checks it: its uid, its gid and its other groups. */
export interface FileUser {
  readonly uid: number;
  readonly gid: number;
  readonly groups: ReadonlySet<number>;
}

/** Whether `file`'s mode grants `user` every bit of `need` (the kernel's owner/group/other pick). */
export function grants(file: FileMode, user: FileUser, need: number): boolean {
  const shift = file.uid === user.uid
    ? 6
    : file.gid === user.gid || user.groups.has(file.gid)
    ? 3
    : 0;
  return ((file.mode >> shift) & need) === need;
}

/** What a descriptor's `flags:` (octal, from fdinfo) needs of its file. */
export function descriptorNeed(flags: number): number {
  const O_PATH = 0o10000000;
  if (flags & O_PATH) return 0;
  switch (flags & 3) {
    case 0:
      return Need.read;
    case 1:
      return Need.write;
    default:
      return Need.read | Need.write;
  }
}

/** The words of a need, for a message. */
function needWords(need: number): string {
  const words = [];
  if (need & Need.read) words.push("reading");
  if (need & Need.write) words.push("writing");
  if (need & Need.search) words.push("search");
  return words.join(" and ");
}

const DELETED = " (deleted)";

/** A mapped file of a `/proc/PID/maps` line: its range, what it needs, its path. */
export function mappedFile(
  line: string,
): { range: string; need: number; path: string; shared: boolean } | undefined {
  const match = /^([0-9a-f]+-[0-9a-f]+)\s+([r-][w-][x-][sp])\s+\S+\s+\S+\s+\d+\s+(\/.*)$/.exec(
    line,
  );
  if (!match) return undefined;
  const [, padded, perms, path] = match;
  // maps pads the addresses with zeros (00400000-0041f000); map_files names them without
  // (400000-41f000), as a non-PIE program's mappings show.
  const range = padded.split("-").map((hex) => BigInt(`0x${hex}`).toString(16)).join("-");
  const shared = perms[3] === "s";
  return { range, need: Need.read | (shared && perms[1] === "w" ? Need.write : 0), path, shared };
}

/**
 * The mapped files of a `/proc/PID/smaps` text. A shared mapping that may be made writable
 * (`mw` among its `VmFlags`: its file was opened for writing, so mprotect can add write later)
 * needs write, even while it is read-only.
 */
export function mappedFiles(smaps: string): { range: string; need: number; path: string }[] {
  const found: { range: string; need: number; path: string; shared: boolean }[] = [];
  let current: (typeof found)[number] | undefined;
  for (const line of smaps.split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+\s/.test(line)) {
      current = mappedFile(line);
      if (current) found.push(current);
    } else if (current?.shared && /^VmFlags:.*\bmw\b/.test(line)) {
      current.need |= Need.write;
    }
  }
  return found.map(({ range, need, path }) => ({ range, need, path }));
}

/** Every directory above `path` ("/a/b/c": "/", "/a", "/a/b"). */
export function directoriesAbove(path: string): string[] {
  const parts = path.split("/").filter((part) => part !== "");
  return parts.slice(0, -1).reduce(
    (dirs, part) => [...dirs, `${dirs.at(-1) === "/" ? "" : dirs.at(-1)}/${part}`],
    ["/"],
  );
}

/** Options of {@linkcode checkRestoredFiles}. */
export interface RestoredFilesOptions {
  readonly procDir?: string;
}

/**
 * Why a task of `pids` holds a file, a mapping or a directory the job's user may not have here
 * (the rule in this file's header), or undefined when none does. A root job is not checked. A task
 * whose descriptors or mappings cannot be read is a fault: a check that cannot look must not pass.
 */
export async function checkRestoredFiles(
  pids: Iterable<number>,
  rule: CredentialRule,
  options: RestoredFilesOptions = {},
): Promise<string | undefined> {
  const { owner } = rule;
  if (owner.uid === 0) return undefined;
  const procDir = options.procDir ?? "/proc";
  const user: FileUser = { uid: owner.uid, gid: owner.gid, groups: rule.groups };
  const who = `user ${owner.name} (uid ${owner.uid})`;
  const searchable = new Map<string, boolean>();
  /** Whether every directory above `path` lets the user search it (undefined: it may). */
  const blockedAbove = async (path: string): Promise<string | undefined> => {
    if (path.endsWith(DELETED)) return undefined;
    for (const dir of directoriesAbove(path)) {
      let ok = searchable.get(dir);
      if (ok === undefined) {
        const info = await Deno.stat(dir).catch(() => undefined);
        // Gone since (or never there, as in a test's tree): nothing to walk through.
        ok = info === undefined || grants(fileMode(info), user, Need.search);
        searchable.set(dir, ok);
      }
      if (!ok) return dir;
    }
    return undefined;
  };
  /** Why `what` (a file reached at `at`, named `path`) may not be had for `need`. */
  const fault = async (at: string, path: string, need: number, what: string) => {
    if (need) {
      const info = await Deno.stat(at).catch(() => undefined);
      if (info === undefined) return `${what} ${path} cannot be read`;
      if (!grants(fileMode(info), user, need)) {
        return `${what} is ${path}, for ${needWords(need)}, which ${who} may not open here`;
      }
    }
    const dir = await blockedAbove(path);
    return dir === undefined
      ? undefined
      : `${what} is ${path}, inside ${dir}, which ${who} may not search here`;
  };

  for (const pid of pids) {
    const task = `${procDir}/${pid}`;
    const where = `task ${pid}`;
    const root = await Deno.readLink(`${task}/root`).catch(() => undefined);
    if (root !== "/") return `${where}: its root directory is ${root ?? "unreadable"}, not /`;
    const cwd = await Deno.readLink(`${task}/cwd`).catch(() => undefined);
    if (cwd === undefined) return `${where}: its working directory cannot be read`;
    const cwdFault = await fault(`${task}/cwd`, cwd, Need.search, "its working directory");
    if (cwdFault) return `${where}: ${cwdFault}`;

    let fds: string[];
    try {
      fds = (await Array.fromAsync(Deno.readDir(`${task}/fd`))).map((entry) => entry.name)
        .filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(a) - Number(b));
    } catch {
      return `${where}: its descriptors cannot be read`;
    }
    for (const fd of fds) {
      const path = await Deno.readLink(`${task}/fd/${fd}`).catch(() => undefined);
      if (path === undefined || !path.startsWith("/")) continue; // gone, or not a file
      const info = await Deno.readTextFile(`${task}/fdinfo/${fd}`).catch(() => "");
      const flags = /^flags:\s*([0-7]+)$/m.exec(info)?.[1];
      if (flags === undefined) return `${where}: its descriptor ${fd} cannot be read`;
      const found = await fault(
        `${task}/fd/${fd}`,
        path,
        descriptorNeed(parseInt(flags, 8)),
        `its descriptor ${fd}`,
      );
      if (found) return `${where}: ${found}`;
    }

    let smaps: string;
    try {
      smaps = await Deno.readTextFile(`${task}/smaps`);
    } catch {
      return `${where}: its mappings cannot be read`;
    }
    const seen = new Set<string>();
    for (const mapped of mappedFiles(smaps)) {
      if (seen.has(`${mapped.path}\0${mapped.need}`)) continue;
      seen.add(`${mapped.path}\0${mapped.need}`);
      const found = await fault(
        `${task}/map_files/${mapped.range}`,
        mapped.path,
        mapped.need,
        "its mapping",
      );
      if (found) return `${where}: ${found}`;
    }
  }
  return undefined;
}

function fileMode(info: Deno.FileInfo): FileMode {
  return { mode: info.mode ?? 0, uid: info.uid ?? -1, gid: info.gid ?? -1 };
}
