/**
 * The daemon's pid file, locked while the daemon runs, so that a second instance on the same
 * state tree refuses to start (the seed's TODO: "add pid file").
 */

/** Another instance holds the pid file. */
export class AlreadyRunningError extends Error {
  override name = "AlreadyRunningError";
  constructor(readonly path: string, readonly pid: number | undefined) {
    super(
      `Cannot start: another om discover is running${pid ? ` (pid ${pid})` : ""} on this ` +
        `state tree (${path} is locked)`,
    );
  }
}

/** A held pid file; `release` unlocks and removes it. */
export interface PidFile {
  readonly path: string;
  release(): void;
}

/** Creates and locks the pid file, writing `pid` into it. */
export function acquirePidFile(path: string, pid: number): PidFile {
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")) || "/", { recursive: true });
  const file = Deno.openSync(path, { read: true, write: true, create: true });
  let locked = false;
  try {
    // Deno 2.9 has FsFile.tryLockSync: false when another process holds the lock.
    locked = file.tryLockSync(true);
  } catch (error) {
    file.close();
    throw error;
  }
  if (!locked) {
    file.close();
    const text = (() => {
      try {
        return Deno.readTextFileSync(path).trim();
      } catch {
        return "";
      }
    })();
    throw new AlreadyRunningError(path, /^\d+$/.test(text) ? Number(text) : undefined);
  }
  file.truncateSync(0);
  file.writeSync(new TextEncoder().encode(`${pid}\n`));
  return {
    path,
    release() {
      try {
        Deno.removeSync(path);
      } catch { /* already gone */ }
      try {
        file.unlockSync();
        file.close();
      } catch { /* already closed */ }
    },
  };
}
