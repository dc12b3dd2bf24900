import assert from "node:assert/strict";
import {
  checkToken,
  createToken,
  prepareUsersDir,
  sweepTokens,
  TOKEN_MAX_AGE_MS,
  TokenError,
  TokenLimitError,
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

Deno.test("usertoken: a token that is a FIFO is refused at once, without a writer", async () => {
  const { root, dir } = await usersDir();
  try {
    // What the daemon finds once a user swapped their token for a FIFO: the check opens the name
    // once and looks at what it opened, so a FIFO there from the start is the same case.
    const name = await createToken(dir);
    const now = await changed(`${dir}/${name}`);
    await Deno.remove(`${dir}/${name}`);
    const made = await new Deno.Command("mkfifo", { args: ["-m", "600", `${dir}/${name}`] })
      .output();
    assert.equal(made.code, 0);
    if (ROOT) await Deno.chown(`${dir}/${name}`, 65534, 65534);
    const check = checkToken(dir, name, { now }).then(() => "accepted", (error) => error);
    let stop = () => {};
    const hung = new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve("hung"), 3000);
      stop = () => clearTimeout(timer);
    });
    const outcome = await Promise.race([check, hung]);
    stop();
    if (outcome === "hung") {
      // Let the check's open go (a writer comes), so that the test can end, then fail.
      using _writer = await Deno.open(`${dir}/${name}`, { write: true });
      await check;
      assert.fail("the check waited for a writer on the FIFO");
    }
    assert.ok(outcome instanceof TokenError, String(outcome));
    assert.match(outcome.message, /not a regular file/);
    await assert.rejects(Deno.lstat(`${dir}/${name}`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test({
  name:
    "usertoken: a user over the bound on token files is refused and swept; past the total, the greediest",
  ignore: !ROOT,
  fn: async () => {
    const { root, dir } = await usersDir();
    try {
      const tokenOf = async (uid: number) => {
        const name = await createToken(dir);
        await Deno.chown(`${dir}/${name}`, uid, uid);
        return name;
      };
      // uid 65534 fills users/ beyond its share: its auth is refused, and its files go.
      for (let i = 0; i < 4; i++) await tokenOf(65534);
      const asker = await tokenOf(65534);
      const other = await tokenOf(1);
      const now = await changed(`${dir}/${asker}`);
      await assert.rejects(
        checkToken(dir, asker, { now, maxPerUser: 3 }),
        (error: Error) => {
          assert.ok(error instanceof TokenLimitError, String(error));
          assert.equal(
            error.message,
            `Cannot accept token "${asker}": uid 65534 had more than 3 token files in ${dir} ` +
              `(all removed)`,
          );
          return true;
        },
      );
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [other]);
      // Another user is served.
      assert.equal((await checkToken(dir, other, { now, maxPerUser: 3 })).uid, 1);
      // Users each within their share, past the total: the one with the most loses theirs, and
      // only they are refused.
      for (const uid of [2, 2, 2, 3, 3]) await tokenOf(uid);
      const crowding = await tokenOf(2);
      await assert.rejects(
        checkToken(dir, crowding, { now, maxPerUser: 3, maxFiles: 4 }),
        (error: Error) => {
          assert.ok(error instanceof TokenLimitError, String(error));
          assert.equal(
            error.message,
            `Cannot accept token "${crowding}": uid 2 had the most token files in ${dir}, which ` +
              `held more than 4 (all removed)`,
          );
          return true;
        },
      );
      assert.equal([...Deno.readDirSync(dir)].length, 2, "uid 3's two are left");
      assert.equal((await checkToken(dir, await tokenOf(3), { now, maxFiles: 4 })).uid, 3);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("usertoken: the sweep removes what is no token in its life, and keeps fresh tokens", async () => {
  const { root, dir } = await usersDir();
  try {
    const fresh = await createToken(dir);
    const now = await changed(`${dir}/${fresh}`);
    await Deno.writeTextFile(`${dir}/not-a-token`, "x");
    await Deno.writeTextFile(`${dir}/${"ab".repeat(16)}`, "x".repeat(1000), { mode: 0o600 });
    await Deno.mkdir(`${dir}/${"cd".repeat(16)}`);
    const swept = await sweepTokens(dir, { now });
    assert.deepEqual({ files: swept.files, removed: swept.removed }, { files: 1, removed: 3 });
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [fresh]);
    // Past a token's life, it goes too.
    assert.equal((await sweepTokens(dir, { now: now + TOKEN_MAX_AGE_MS + 1 })).removed, 1);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
