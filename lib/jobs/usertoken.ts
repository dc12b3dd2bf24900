/**
 * Who is on the other end of the local socket (PROTOCOL.md §10). Deno has no SO_PEERCRED, so a
 * client proves its user by a file only that user can have made: in `$OM_ROOT/users/` (root's,
 * mode 1733: anyone may create a file there, nobody but root may list it, and the sticky bit
 * keeps users from removing or renaming each other's files) it creates a file with a fresh
 * random name (128 bits, O_EXCL, mode 0600) holding that name, and sends the name. The daemon
 * takes the file's owner as the connection's user, provided the file is a regular file (not a
 * symbolic link), has one link (not a hard link to somebody else's file), is fresh (its ctime,
 * which no user can set, within the last 30 s), is private, and holds its own name (so that a
 * file of another user renamed there does not pass); then it removes it (one use).
 *
 * How the file is opened. A user owns the names of their files in `users/` and may swap one for
 * something else at any moment, so nothing is checked by name: the daemon opens the name once and
 * checks what it opened, through that descriptor. The open must neither follow a symbolic link
 * (root would open whatever it points to: a device, another user's file) nor wait (opening a FIFO
 * for reading blocks until somebody opens it for writing: a handler that never returns). Deno.open
 * offers neither O_NOFOLLOW nor O_NONBLOCK, but Deno's built-in `node:fs` hands numeric flags to
 * openat(2) as they are (with Deno 2.9: `openat(AT_FDCWD, PATH, O_RDONLY|O_NONBLOCK|O_NOFOLLOW|
 * O_CLOEXEC)`), and its FileHandle's stat() is fstat of that descriptor (statx with
 * AT_EMPTY_PATH). So: a symbolic link fails to open (ELOOP), a unix socket too (ENXIO), a FIFO
 * opens at once and is refused by its fstat without a byte read, and a user can make no device.
 * Everything else (a regular file, its owner, mode, links, ctime, size, content) is read from the
 * open descriptor, so a swap after the open changes nothing.
 *
 * A bound on `users/`: anyone may create files there, so the daemon sweeps it (sweepTokens): a
 * file that cannot be a token, or is older than a token may be, goes; a user with more than
 * MAX_TOKENS_PER_USER files in it loses them all and is refused; and while more than
 * MAX_TOKEN_FILES are left in all, the user with the most loses theirs and is refused. So one
 * user (or several) filling the directory are refused, and nobody else is.
 */
import { open } from "node:fs/promises";
import { constants } from "node:fs";

/** The mode of `$OM_ROOT/users/`: sticky, writable and searchable by all, listable by root. */
export const USERS_DIR_MODE = 0o1733;
/** How old a token file may be when the daemon checks it. */
export const TOKEN_MAX_AGE_MS = 30_000;
/** Clock skew tolerated the other way (a file "from the future"). */
const TOKEN_FUTURE_MS = 5_000;
/** A token: 128 to 256 bits in lowercase hex. */
const TOKEN_NAME = /^[0-9a-f]{32,64}$/;
/** The largest token file: the longest name. */
const TOKEN_MAX_SIZE = 64;
/** Token files `users/` may hold in all; beyond, the users with the most lose theirs. */
export const MAX_TOKEN_FILES = 1024;
/**
 * Token files one user may have in `users/`; beyond, they are removed and `auth` refused. A token
 * lives from the client's `auth` to the daemon's check (milliseconds), so this is a burst of that
 * many `om run`s of one user starting at the same moment.
 */
export const MAX_TOKENS_PER_USER = 256;
/** How a token file is opened: read only, never following a link, never waiting (see above). */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The users directory of a state tree. */
export function usersDirPath(root: string): string {
  return `${root}/users`;
}

/** A token was refused; the message says why (it is the `auth` reply's error). */
export class TokenError extends Error {
  override name = "TokenError";
}

/** A token was refused for the bound on `users/` (its user's files, or all of them). */
export class TokenLimitError extends TokenError {
  override name = "TokenLimitError";
}

/**
 * Makes `dir` the users directory: created when missing, owned by this process's user (root),
 * mode 1733, emptied of tokens left by clients that died. Throws when something else is there
 * (a symbolic link, a file, a directory of another user). Synchronous: it runs once, as
 * the daemon opens its socket.
 */
export function prepareUsersDir(dir: string): void {
  try {
    const info = Deno.lstatSync(dir);
    if (!info.isDirectory) throw new Error(`Cannot use "${dir}" for tokens: not a directory`);
    if (info.uid !== Deno.uid()) {
      throw new Error(`Cannot use "${dir}" for tokens: owned by uid ${info.uid}`);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    Deno.mkdirSync(dir, { mode: 0o700 });
  }
  Deno.chmodSync(dir, USERS_DIR_MODE);
  for (const entry of Deno.readDirSync(dir)) {
    try {
      Deno.removeSync(`${dir}/${entry.name}`, { recursive: true });
    } catch { /* gone meanwhile */ }
  }
}

/**
 * The client's side: creates a fresh token file in `dir` and returns its name. Throws the file
 * system's error (NotFound when there is no users directory: an old or absent daemon).
 */
export async function createToken(dir: string): Promise<string> {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const name = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeFile(`${dir}/${name}`, encoder.encode(name), { createNew: true, mode: 0o600 });
  return name;
}

/** Who a token says the client is. */
export interface TokenUser {
  readonly uid: number;
  readonly gid: number;
}

/** Whether a ctime (ms) is within a token's life at `now`. */
function fresh(changed: number, now: number): boolean {
  return changed >= now - TOKEN_MAX_AGE_MS && changed <= now + TOKEN_FUTURE_MS;
}

/**
 * Opens `path` as a token file and says who made it, or why it is not a token; every fact read
 * from the open descriptor (see the header).
 */
async function readToken(
  path: string,
  name: string,
  now: number,
): Promise<{ user: TokenUser } | { why: string }> {
  let file;
  try {
    file = await open(path, OPEN_FLAGS);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") return { why: `no such file in ${path.slice(0, -name.length - 1)}` };
    if (code === "ELOOP") return { why: "a symbolic link" };
    if (code === "ENXIO") return { why: "not a regular file" };
    throw error;
  }
  try {
    const info = await file.stat();
    if (!info.isFile()) return { why: "not a regular file" };
    if (info.nlink !== 1) return { why: `a file with ${info.nlink} links` };
    if ((info.mode & 0o077) !== 0) return { why: "readable or writable by others" };
    if (!fresh(info.ctimeMs, now)) {
      return { why: `not made within the last ${TOKEN_MAX_AGE_MS / 1000} s` };
    }
    if (info.size > TOKEN_MAX_SIZE) return { why: "it does not hold its name" };
    const buffer = new Uint8Array(TOKEN_MAX_SIZE + 1);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    if (decoder.decode(buffer.subarray(0, bytesRead)) !== name) {
      return { why: "it does not hold its name" };
    }
    return { user: { uid: info.uid, gid: info.gid } };
  } finally {
    await file.close().catch(() => {});
  }
}

/**
 * The daemon's side: checks token `name` in `dir` (the rules above) and removes it; then sweeps
 * `dir` (sweepTokens) and refuses a user over the bound on token files. `now` is the current time
 * in milliseconds since the epoch. Throws TokenError saying why it is refused (TokenLimitError
 * for the bound).
 */
export async function checkToken(
  dir: string,
  name: string,
  options: { readonly now: number; readonly maxFiles?: number; readonly maxPerUser?: number },
): Promise<TokenUser> {
  if (!TOKEN_NAME.test(name)) throw new TokenError(`Cannot accept token "${name}": not a token`);
  const refuse = (why: string) => new TokenError(`Cannot accept token "${name}": ${why}`);
  const home = await Deno.lstat(dir).catch(() => undefined);
  if (
    !home?.isDirectory || home.uid !== Deno.uid() ||
    ((home.mode ?? 0) & 0o7777) !== USERS_DIR_MODE
  ) {
    throw refuse(
      `the directory ${dir} is not this daemon's, mode ${USERS_DIR_MODE.toString(8)}`,
    );
  }
  const path = `${dir}/${name}`;
  const read = await readToken(path, name, options.now);
  // Used or refused, it goes: a token works once (removing a link leaves its target alone).
  await Deno.remove(path).catch(() => {});
  if ("why" in read) throw refuse(read.why);
  const maxFiles = options.maxFiles ?? MAX_TOKEN_FILES;
  const maxPerUser = options.maxPerUser ?? MAX_TOKENS_PER_USER;
  const swept = await sweepTokens(dir, { now: options.now, maxPerUser, maxFiles });
  const { uid } = read.user;
  if (swept.overUsers.has(uid)) {
    throw new TokenLimitError(
      `Cannot accept token "${name}": uid ${uid} had more than ${maxPerUser} token files in ` +
        `${dir} (all removed)`,
    );
  }
  if (swept.crowdingUsers.has(uid)) {
    throw new TokenLimitError(
      `Cannot accept token "${name}": uid ${uid} had the most token files in ${dir}, which held ` +
        `more than ${maxFiles} (all removed)`,
    );
  }
  return read.user;
}

/** What a sweep of `users/` did. */
export interface TokenSweep {
  /** Files left in the directory. */
  readonly files: number;
  /** Files removed: stale, not tokens, or of a user over the bound. */
  readonly removed: number;
  /** The users who had more than `maxPerUser` files (all removed). */
  readonly overUsers: ReadonlySet<number>;
  /** The users who had the most files while more than `maxFiles` were left (all removed). */
  readonly crowdingUsers: ReadonlySet<number>;
}

/**
 * Removes from `dir` every entry that is not a token still in its life at `now` (a name or size
 * no token has, not a regular file, a ctime outside the token's life), then every file of a user
 * who has more than `maxPerUser` left, then, while more than `maxFiles` are left, every file of
 * the user who has the most. Looks at each entry by lstat only (it opens nothing).
 */
export async function sweepTokens(
  dir: string,
  options: { readonly now: number; readonly maxPerUser?: number; readonly maxFiles?: number },
): Promise<TokenSweep> {
  const maxPerUser = options.maxPerUser ?? MAX_TOKENS_PER_USER;
  const maxFiles = options.maxFiles ?? MAX_TOKEN_FILES;
  const byUser = new Map<number, string[]>();
  let removed = 0;
  const remove = async (path: string) => {
    await Deno.remove(path, { recursive: true }).then(() => removed++, () => {});
  };
  try {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      const info = await Deno.lstat(path).catch(() => undefined);
      if (!info) continue;
      const token = TOKEN_NAME.test(entry.name) && info.isFile && info.size <= TOKEN_MAX_SIZE &&
        fresh(info.ctime?.getTime() ?? 0, options.now);
      if (!token) {
        await remove(path);
        continue;
      }
      const files = byUser.get(info.uid!) ?? [];
      files.push(path);
      byUser.set(info.uid!, files);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const overUsers = new Set<number>();
  let files = 0;
  for (const [uid, paths] of byUser) {
    if (paths.length <= maxPerUser) {
      files += paths.length;
      continue;
    }
    overUsers.add(uid);
    byUser.delete(uid);
    for (const path of paths) await remove(path);
  }
  const crowdingUsers = new Set<number>();
  while (files > maxFiles) {
    const [uid, paths] = [...byUser].reduce((most, entry) =>
      entry[1].length > most[1].length ? entry : most
    );
    crowdingUsers.add(uid);
    byUser.delete(uid);
    files -= paths.length;
    for (const path of paths) await remove(path);
  }
  return { files, removed, overUsers, crowdingUsers };
}
