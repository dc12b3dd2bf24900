import assert from "node:assert/strict";
import {
  checkToken,
  createToken,
  prepareUsersDir,
  TOKEN_MAX_AGE_MS,
  TokenError,
  USERS_DIR_MODE,
} from "../../../lib/jobs/usertoken.ts";

const ROOT = Deno.uid() === 0;

/** A fresh users directory as the daemon makes it, in a temporary state tree. */
async function usersDir(): Promise<{ root: string; dir: string }> {
  const root = await Deno.makeTempDir({ prefix: "om-token-test-" });
  const dir = `${root}/users`;
  prepareUsersDir(dir);
  return { root, dir };
}

/** When the file was last changed (its ctime), as the check sees it. */
const changed = async (path: string) => (await Deno.lstat(path)).ctime!.getTime();

async function refused(dir: string, name: string, now: number, why: RegExp): Promise<void> {
  await assert.rejects(checkToken(dir, name, { now }), (error) => {
    assert.ok(error instanceof TokenError, String(error));
    assert.match(error.message, why);
    return true;
  });
}

Deno.test("usertoken: the daemon makes users/ mode 1733 and empties it", async () => {
  const { root, dir } = await usersDir();
  try {
    assert.equal((await Deno.lstat(dir)).mode! & 0o7777, USERS_DIR_MODE);
    await Deno.writeTextFile(`${dir}/leftover`, "x");
    await Deno.chmod(dir, 0o755);
    prepareUsersDir(dir);
    assert.equal((await Deno.lstat(dir)).mode! & 0o7777, USERS_DIR_MODE);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    // Something else in its place is not taken over.
    await Deno.remove(dir);
    await Deno.symlink(root, dir);
    assert.throws(() => prepareUsersDir(dir), /not a directory/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("usertoken: a fresh private file names its owner, once", async () => {
  const { root, dir } = await usersDir();
  try {
    const name = await createToken(dir);
    assert.match(name, /^[0-9a-f]{32}$/);
    const info = await Deno.lstat(`${dir}/${name}`);
    assert.equal(info.mode! & 0o777, 0o600);
    const now = await changed(`${dir}/${name}`);
    assert.deepEqual(await checkToken(dir, name, { now }), { uid: info.uid, gid: info.gid });
    // Used: removed, and a second use is refused.
    await refused(dir, name, now, /no such file/);
    // Two tokens never share a name.
    assert.notEqual(await createToken(dir), await createToken(dir));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name: "usertoken: the file's owner is the user (another uid's file says that uid)",
  ignore: !ROOT,
  fn: async () => {
    const { root, dir } = await usersDir();
    try {
      const name = await createToken(dir);
      await Deno.chown(`${dir}/${name}`, 65534, 65534);
      const now = await changed(`${dir}/${name}`);
      assert.deepEqual(await checkToken(dir, name, { now }), { uid: 65534, gid: 65534 });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("usertoken: symbolic links, hard links, other files and bad names are refused", async () => {
  const { root, dir } = await usersDir();
  try {
    const now = Date.now();
    const name = "0123456789abcdef0123456789abcdef";
    // A symbolic link to somebody's file: refused, the file left alone.
    await Deno.writeTextFile(`${root}/victim`, name, { mode: 0o600 });
    await Deno.symlink(`${root}/victim`, `${dir}/${name}`);
    await refused(dir, name, now, /a symbolic link/);
    assert.equal(await Deno.readTextFile(`${root}/victim`), name);
    // A hard link to it: two links.
    await Deno.link(`${root}/victim`, `${dir}/${name}`);
    await refused(dir, name, await changed(`${root}/victim`), /a file with 2 links/);
    assert.equal(await Deno.readTextFile(`${root}/victim`), name);
    // A directory, a file that does not hold its name, one others may read.
    await Deno.mkdir(`${dir}/${name}`);
    await refused(dir, name, now, /not a regular file/);
    await Deno.remove(`${dir}/${name}`).catch(() => {});
    await Deno.writeTextFile(`${dir}/${name}`, "something else", { mode: 0o600 });
    await refused(dir, name, await changed(`${dir}/${name}`), /does not hold its name/);
    await Deno.writeTextFile(`${dir}/${name}`, name, { mode: 0o600 });
    await Deno.chmod(`${dir}/${name}`, 0o644);
    await refused(dir, name, await changed(`${dir}/${name}`), /readable or writable by others/);
    // Missing, and names that are no token (a path, too short).
    await refused(dir, name, now, /no such file/);
    await refused(dir, "../victim", now, /not a token/);
    await refused(dir, "0123abcd", now, /not a token/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("usertoken: a stale token, or one in a directory of the wrong mode, is refused", async () => {
  const { root, dir } = await usersDir();
  try {
    const stale = await createToken(dir);
    const made = await changed(`${dir}/${stale}`);
    await refused(dir, stale, made + TOKEN_MAX_AGE_MS + 1000, /not made within the last 30 s/);
    const future = await createToken(dir);
    await refused(dir, future, made - 60_000, /not made within/);
    // The directory must be the daemon's, 1733: a listable one could leak tokens.
    const name = await createToken(dir);
    await Deno.chmod(dir, 0o1777);
    await refused(dir, name, made, /not this daemon's, mode 1733/);
    await Deno.chmod(dir, USERS_DIR_MODE);
    assert.equal((await checkToken(dir, name, { now: made })).uid, Deno.uid());
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
