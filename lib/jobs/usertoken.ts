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
 */

/** The mode of `$OM_ROOT/users/`: sticky, writable and searchable by all, listable by root. */
export const USERS_DIR_MODE = 0o1733;
/** How old a token file may be when the daemon checks it. */
export const TOKEN_MAX_AGE_MS = 30_000;
/** Clock skew tolerated the other way (a file "from the future"). */
const TOKEN_FUTURE_MS = 5_000;
/** A token: 128 to 256 bits in lowercase hex. */
const TOKEN_NAME = /^[0-9a-f]{32,64}$/;

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

/**
 * The daemon's side: checks token `name` in `dir` (the rules above) and removes it. `now` is
 * the current time in milliseconds since the epoch. Throws TokenError saying why it is refused.
 */
export async function checkToken(
  dir: string,
  name: string,
  options: { readonly now: number },
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
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw refuse(`no such file in ${dir}`);
    throw error;
  }
  const why = await (async () => {
    if (info.isSymlink) return "a symbolic link";
    if (!info.isFile) return "not a regular file";
    if (info.nlink !== 1) return `a file with ${info.nlink} links`;
    if (((info.mode ?? 0) & 0o077) !== 0) return "readable or writable by others";
    const changed = info.ctime?.getTime() ?? 0;
    if (changed < options.now - TOKEN_MAX_AGE_MS || changed > options.now + TOKEN_FUTURE_MS) {
      return `not made within the last ${TOKEN_MAX_AGE_MS / 1000} s`;
    }
    // Opened after the lstat: it must still be the same file, and hold its own name.
    using file = await Deno.open(path, { read: true });
    const opened = await file.stat();
    if (opened.ino !== info.ino || opened.dev !== info.dev) return "replaced while checked";
    const buffer = new Uint8Array(65);
    const n = await file.read(buffer) ?? 0;
    if (decoder.decode(buffer.subarray(0, n)) !== name) return "it does not hold its name";
    return undefined;
  })();
  // Used or refused, it goes: a token works once (removing a link leaves its target alone).
  await Deno.remove(path).catch(() => {});
  if (why !== undefined) throw refuse(why);
  return { uid: info.uid!, gid: info.gid! };
}
