/**
 * A real CRIU dump of an ordinary job of user nobody's, for the tests of the checks of a user's
 * images (tests/lib/migration/imagecheck_test.ts, imagekinds_test.ts), and copies of it to forge.
 */
import assert from "node:assert/strict";
import { retryUntil } from "../../lib/base/retry.ts";
import type { CredentialRule } from "../../lib/migration/credentials.ts";
import { checkImages } from "../../lib/migration/imagecheck.ts";
import { dump } from "../../lib/criu/run.ts";
import { startJob } from "../../lib/criu/startjob.ts";
import { parseJobUser } from "../../lib/criu/jobuser.ts";

/**
 * A tree for a job of nobody's: `base` (755) with `readme` (644), `work` (nobody's, where its
 * files go) and the job's perl `job.pl`, which opens `readme` for reading, `work/out` for
 * appending, `work/ghost` for reading and writing (then deletes it), an unnamed temporary file in
 * `work`, a listening unix socket at an abstract name, a connected unix socket pair with a
 * packet queued, a FIFO of its own in `work` (open for
 * reading and writing, holding data), a pipe and a memfd, enters `work` and sleeps.
 */
export async function jobTree(base: string): Promise<void> {
  await Deno.chmod(base, 0o755);
  await Deno.mkdir(`${base}/work`);
  await Deno.chown(`${base}/work`, 65534, 65534);
  await Deno.writeTextFile(`${base}/readme`, "hello\n");
  await Deno.chmod(`${base}/readme`, 0o644);
  const work = `${base}/work`;
  await Deno.writeTextFile(
    `${base}/job.pl`,
    `use Socket; open(my $r, "<", "${base}/readme") or die; ` +
      `open(my $w, ">>", "${work}/out") or die; ` +
      `open(my $g, "+>", "${work}/ghost") or die; print $g "x" x 100; unlink "${work}/ghost"; ` +
      `sysopen(my $t, "${work}", 020200002) or die "O_TMPFILE: $!"; ` +
      "socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die; " +
      'bind($s, pack_sockaddr_un("\\0om-imagecheck-' + base.split("-").at(-1) + '")) or die; ' +
      "listen($s, 5) or die; pipe(my $pr, my $pw) or die; " +
      'socketpair(my $p1, my $p2, AF_UNIX, SOCK_STREAM, 0) or die; syswrite($p1, "queued"); ' +
      `use POSIX (); POSIX::mkfifo("${work}/fifo", 0600) or die; ` +
      `open(my $ff, "+<", "${work}/fifo") or die; syswrite($ff, "in the fifo"); ` +
      // memfd_create(2), syscall 319 on x86_64.
      'my $mfd = syscall(319, my $mname = "om-memfd", 0); $mfd >= 0 or die "memfd: $!"; ' +
      'open(my $mf, "+<&=", $mfd) or die; syswrite($mf, "y" x 10); ' +
      `chdir "${work}"; open(my $ready, ">", "${work}/ready"); close($ready); sleep 60;`,
  );
  await Deno.chmod(`${base}/job.pl`, 0o644);
}

/**
 * Starts `shell` (sh -c, its stdio on /dev/null opened inside its mount namespace: a user's job
 * holds no file from outside it) as om starts a user's job (its own mounts and /proc), waits until
 * it runs as nobody and `ready` holds, dumps it into `images` as nobody's job is dumped, and kills
 * what is left of it. `shell` ends by becoming nobody (setpriv).
 */
export async function dumpAsNobody(
  binary: string,
  shell: string,
  images: string,
  ready: () => Promise<unknown> = () => Promise.resolve(),
): Promise<void> {
  const job = await startJob(["sh", "-c", `exec </dev/null >/dev/null 2>&1; ${shell}`], {
    stdout: "null",
    stderr: "null",
    cwd: "/",
    ownMounts: true,
  });
  await Deno.mkdir(images);
  try {
    const user = await retryUntil(
      async () => {
        await ready();
        return parseJobUser(
          await Deno.readTextFile(`/proc/${job.pid}/status`),
          await Deno.readTextFile("/proc/self/status"),
        );
      },
      5000,
      { what: "the job to be nobody's and ready", intervalMs: 10 },
    );
    await dump({ binary, now: () => performance.now() }, { pid: job.pid, imagesDir: images, user });
  } finally {
    try {
      Deno.kill(job.pid, "SIGKILL");
    } catch { /* the dump ended it */ }
    await job.process.status;
  }
}

/** The start of a shell command that becomes nobody and runs what follows it. */
export const AS_NOBODY = "exec setpriv --reuid=65534 --regid=65534 --clear-groups";

/**
 * Dumps the job of {@linkcode jobTree} in `base`, started by root as om starts a user's job (its
 * own mounts and /proc) and becoming nobody, as nobody's job is dumped; returns its images dir.
 */
export async function dumpNobodyJob(binary: string, base: string): Promise<string> {
  await jobTree(base);
  const images = `${base}/images`;
  await dumpAsNobody(
    binary,
    `${AS_NOBODY} perl ${base}/job.pl`,
    images,
    () => Deno.stat(`${base}/work/ready`),
  );
  await Deno.remove(`${base}/work/ready`);
  return images;
}

/** A copy of images dir `from` at `to`. */
export async function copyImages(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile) await Deno.copyFile(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

/** The names of the ghost-file images in `dir`. */
export async function ghostImages(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name)
    .filter((name) => name.startsWith("ghost-file-")).sort();
}

/** What a job of user nobody may hold on a target whose daemon has no capabilities. */
export const NOBODY_RULE: CredentialRule = {
  owner: { name: "nobody", uid: 65534, gid: 65534 },
  groups: new Set([65534]),
  daemon: { inh: 0n, prm: 0n, eff: 0n, bnd: 0n, amb: 0n },
};

/**
 * A checker of forged copies of `images` (made in `base`, one directory each): the copy that
 * `forge` patches must be refused by checkImages for `rule` with `expected`.
 */
export function forgeries(images: string, base: string, rule: CredentialRule = NOBODY_RULE) {
  let copies = 0;
  return async (what: string, forge: (dir: string) => Promise<void>, expected: RegExp) => {
    const dir = `${base}/forged-${++copies}`;
    await copyImages(images, dir);
    await forge(dir);
    assert.match((await checkImages(dir, rule)) ?? "passed", expected, what);
  };
}
