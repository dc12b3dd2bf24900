/**
 * Two things a node works without, but worse: OpenSSL's libcrypto, which seals a moved job's pages
 * at native speed (lib/migration/chacha.ts; without it node:crypto's cipher does, and jobs stay
 * frozen longer), and cgroup v2, in which `om exec` runs each command in a group of its own
 * (lib/exec/cgroup.ts; without it only the command's process group is killed at its time limit).
 * Both are warnings when missing, never failures.
 */
import { findLibcrypto, libcryptoDirs, openSslChaCha } from "../migration/chacha.ts";
import { ownCgroupDir } from "../exec/cgroup.ts";
import { type Check, missed, passed } from "./report.ts";

/** Where the page link's cipher comes from on this node. */
export function checkPageCipher(
  find: () => string | undefined = findLibcrypto,
  load: (path: string) => unknown = openSslChaCha,
): Check {
  const path = find();
  const slower = "node:crypto's ChaCha20-Poly1305 seals a moved job's pages, about 3 times " +
    "slower than OpenSSL's: jobs stay frozen longer while they move";
  const fix = "install OpenSSL 3 (apt-get install openssl)";
  if (path === undefined) {
    return missed(
      "page-cipher",
      false,
      `no libcrypto.so.3 that only root may change in ${libcryptoDirs().join(", ")}: ${slower}`,
      fix,
    );
  }
  if (!load(path)) {
    return missed(
      "page-cipher",
      false,
      `${path} does not load or fails its self-test (a FIPS-mode OpenSSL offers no ` +
        `ChaCha20-Poly1305): ${slower}`,
      fix,
    );
  }
  return passed("page-cipher", `OpenSSL's ChaCha20-Poly1305 from ${path} seals moved jobs' pages`);
}

/** Whether om exec can give each command a cgroup: the daemon's (`procDir` its /proc/PID). */
export async function checkExecCgroup(procDir: string, whose: string): Promise<Check> {
  const dir = await ownCgroupDir({ self: procDir });
  if (dir === undefined) {
    return missed(
      "exec-cgroup",
      false,
      `no cgroup v2 for ${whose}: om exec kills a command's process group at its time limit, and ` +
        "a process the command starts in a session of its own (setsid) survives it",
      "mount the unified hierarchy (mount -t cgroup2 none /sys/fs/cgroup; systemd systems have it)",
    );
  }
  return passed("exec-cgroup", `om exec runs each command in a cgroup of its own below ${dir}`);
}
