/**
 * The argv of each CRIU command om runs (`check`, `dump`/`pre-dump`, `page-server`, `restore`),
 * built by pure functions tested without CRIU, as go-criu and p.haul drive CRIU: through its
 * command line, never through a library. Options are listed in the order of CRIU's own
 * documentation; combinations CRIU would reject, or that would silently mean something else, are
 * refused here with a RangeError or TypeError before anything runs.
 */

/** `criu check` (the whole check), or `criu check --feature NAME`. */
export function checkArgs(feature?: string): string[] {
  return feature === undefined ? ["check"] : ["check", "--feature", feature];
}

/** Options of a dump or pre-dump. */
export interface DumpArgsOptions {
  /** Host PID of the tree's root (the job's PID 1). */
  pid: number;
  /** Where the images go; must exist. */
  imagesDir: string;
  /** The step's log file (absolute; criu resolves a relative one against its work dir). */
  logFile: string;
  /** `--leave-running`: the job goes on after the dump (else CRIU kills it once dumped). */
  leaveRunning?: boolean;
  /** `--leave-stopped`: the job stays, stopped, after the dump (a migration's source copy). */
  leaveStopped?: boolean;
  /** `--track-mem`: start dirty-memory tracking, for a later pre-dump or dump on top. */
  trackMem?: boolean;
  /** `--prev-images-dir`: the previous (pre-)dump's images, RELATIVE to `imagesDir` (CRIU's rule). */
  prevImagesDir?: string;
  /** `--shell-job`: the job shares a session or terminal with something outside the tree. */
  shellJob?: boolean;
  /** `--ext-unix-sk`: allow unix sockets whose peer is outside the tree. */
  extUnixSk?: boolean;
  /** `--tcp-established`: checkpoint established TCP connections. */
  tcpEstablished?: boolean;
  /** `--file-locks`: checkpoint file locks. */
  fileLocks?: boolean;
  /** `--page-server --address --port`: send the pages to a `criu page-server` instead. */
  pageServer?: { address: string; port: number };
  /**
   * `--page-server --ps-socket N`: send the pages to a `criu page-server` over descriptor N, a
   * connection already made (lib/migration/pagelink.ts); excludes `pageServer`.
   */
  psSocket?: number;
  /**
   * `--unprivileged`: criu runs as the job's user (with root's capabilities as ambient ones,
   * asJobUser in jobuser.ts), as it must for a job that is not root's.
   */
  unprivileged?: boolean;
  /**
   * `--external mnt[]`: the job has a mount namespace of its own (a user's job,
   * startJobArgs in startjob.ts); its mounts, copies of the host's, are dumped as external ones,
   * by path, and their contents stay behind (its /proc is made anew on restore).
   */
  ownMounts?: boolean;
  /** `--action-script PATH`: a program criu runs at each step (lib/migration/pagelink.ts DUMP_GATE). */
  actionScript?: string;
  /** Log verbosity 0-4; default 4 (the log is the only trace of a failed migration). */
  verbosity?: number;
}

/** `criu dump` (or `criu pre-dump` with `action`), in the order criu's own docs list options. */
export function dumpArgs(
  options: DumpArgsOptions,
  action: "dump" | "pre-dump" = "dump",
): string[] {
  if (!Number.isInteger(options.pid) || options.pid <= 0) {
    throw new RangeError(`Cannot dump process "${options.pid}": not a process id`);
  }
  if (options.prevImagesDir?.startsWith("/")) {
    throw new RangeError(
      `Cannot use previous images "${options.prevImagesDir}": must be relative to the images dir`,
    );
  }
  const argv = [
    action,
    "--tree",
    String(options.pid),
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
  ];
  if (options.leaveRunning && options.leaveStopped) {
    throw new TypeError("Cannot leave the job both running and stopped");
  }
  if (options.leaveRunning) argv.push("--leave-running");
  if (options.leaveStopped) argv.push("--leave-stopped");
  if (options.trackMem) argv.push("--track-mem");
  if (options.prevImagesDir !== undefined) argv.push("--prev-images-dir", options.prevImagesDir);
  if (options.shellJob) argv.push("--shell-job");
  if (options.extUnixSk) argv.push("--ext-unix-sk");
  if (options.tcpEstablished) argv.push("--tcp-established");
  if (options.fileLocks) argv.push("--file-locks");
  if (options.unprivileged) argv.push("--unprivileged");
  if (options.ownMounts) argv.push("--external", "mnt[]");
  if (options.actionScript !== undefined) argv.push("--action-script", options.actionScript);
  if (options.pageServer && options.psSocket !== undefined) {
    throw new TypeError("Cannot dump to a page server: give an address or a socket, not both");
  }
  if (options.psSocket !== undefined) {
    if (!Number.isInteger(options.psSocket) || options.psSocket < 0) {
      throw new RangeError(`Cannot use socket "${options.psSocket}": not a descriptor number`);
    }
    argv.push("--page-server", "--ps-socket", String(options.psSocket));
  }
  if (options.pageServer) {
    argv.push(
      "--page-server",
      "--address",
      options.pageServer.address,
      "--port",
      String(options.pageServer.port),
    );
  }
  return argv;
}

/** Options of a page server (the receiving end of a dump's `--page-server`). */
export interface PageServerArgsOptions {
  /** Where the pages (pagemap-*.img, pages-*.img) go; must exist. */
  imagesDir: string;
  logFile: string;
  /** `--ps-socket N`: serve the connection already made on descriptor N (lib/migration/pagelink.ts). */
  psSocket: number;
  /**
   * `--prev-images-dir`: the previous pre-dump's pages, RELATIVE to `imagesDir`; criu links it
   * as `parent` there, where the restore finds the pages the last round did not send again.
   */
  prevImagesDir?: string;
  verbosity?: number;
}

/** `criu page-server` serving one connection: it exits once the dump has sent everything. */
export function pageServerArgs(options: PageServerArgsOptions): string[] {
  if (!Number.isInteger(options.psSocket) || options.psSocket < 0) {
    throw new RangeError(`Cannot use socket "${options.psSocket}": not a descriptor number`);
  }
  if (options.prevImagesDir?.startsWith("/")) {
    throw new RangeError(
      `Cannot use previous images "${options.prevImagesDir}": must be relative to the images dir`,
    );
  }
  return [
    "page-server",
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
    "--ps-socket",
    String(options.psSocket),
    ...(options.prevImagesDir !== undefined ? ["--prev-images-dir", options.prevImagesDir] : []),
  ];
}

/**
 * One descriptor handed to the restored tree: criu's own `fd` stands for the dumped file `key`
 * (`--inherit-fd fd[N]:pipe:[INODE]`, INODE the old pipe's, read from the link
 * `/proc/<pid>/fd/N` before the dump). N is one of criu's OWN descriptors: Deno cannot hand a
 * child descriptors other than 0, 1 and 2, so the new pipes are the `criu restore` process's own
 * stdin, stdout and stderr; criu logs to its log file, not to them, and the restored job keeps
 * them after criu exits. Pipe data: CRIU saves unread bytes only of pipes whose READ end the job
 * holds (its stdin) and does not put them back into an inherited pipe, so bytes the job had not
 * read from stdin at dump time are in the images (pipes-data.img) but not in the new pipe. Bytes
 * the job wrote to stdout and nobody read yet stay in the OLD pipe, which its reader drains to
 * end of file: nothing is lost or doubled.
 */
export interface InheritFd {
  /** criu's descriptor (0, 1 or 2 when criu is started by Deno). */
  fd: number;
  /** What CRIU calls the dumped file: `pipe:[INODE]`, `socket:[INODE]`, or a path. */
  key: string;
}

/** Options of a restore. */
export interface RestoreArgsOptions {
  imagesDir: string;
  logFile: string;
  /** criu writes the restored root's host PID here. */
  pidfile: string;
  inheritFds?: readonly InheritFd[];
  /** `--restore-detached`: criu exits once the tree runs (default true). */
  restoreDetached?: boolean;
  /** `--restore-sibling`: the root becomes a child of criu's parent, not of criu. */
  restoreSibling?: boolean;
  /** `--leave-stopped`: the restored tree stays stopped (SIGSTOP) until someone continues it. */
  leaveStopped?: boolean;
  shellJob?: boolean;
  extUnixSk?: boolean;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  /**
   * `--root / --external mnt[]`: the images hold a mount namespace of the job's own (dumped with
   * `ownMounts`): it is made anew, each of its mounts bound from this host's same path.
   */
  ownMounts?: boolean;
  /**
   * `--auto-dedup`: criu frees the pages of the images (punches holes in `pages-*.img`) as it
   * restores them, so the node holds the job's memory once, not twice, and the restore reuses
   * the memory just freed.
   */
  autoDedup?: boolean;
  verbosity?: number;
}

/** `criu restore`. */
export function restoreArgs(options: RestoreArgsOptions): string[] {
  const argv = [
    "restore",
    "--images-dir",
    options.imagesDir,
    "--log-file",
    options.logFile,
    `-v${options.verbosity ?? 4}`,
    "--pidfile",
    options.pidfile,
  ];
  if (options.restoreDetached ?? true) argv.push("--restore-detached");
  if (options.restoreSibling) argv.push("--restore-sibling");
  if (options.leaveStopped) argv.push("--leave-stopped");
  if (options.shellJob) argv.push("--shell-job");
  if (options.extUnixSk) argv.push("--ext-unix-sk");
  if (options.tcpEstablished) argv.push("--tcp-established");
  if (options.fileLocks) argv.push("--file-locks");
  if (options.ownMounts) argv.push("--root", "/", "--external", "mnt[]");
  if (options.autoDedup) argv.push("--auto-dedup");
  for (const { fd, key } of options.inheritFds ?? []) {
    if (!Number.isInteger(fd) || fd < 0) {
      throw new RangeError(`Cannot inherit descriptor "${fd}": not a descriptor number`);
    }
    argv.push("--inherit-fd", `fd[${fd}]:${key}`);
  }
  return argv;
}
