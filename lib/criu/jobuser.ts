/**
 * Whom a user's job is dumped as: its own user and group, with the daemon's capabilities kept as
 * ambient ones ({@linkcode asJobUser}). CRIU reads each task's limits with prlimit(2), which
 * another uid may do only with CAP_SYS_RESOURCE (which root lacks on some hosts, in containers
 * for one); the same uid and gid always may. Root's jobs are dumped by root.
 */

/** Linux's capabilities by number (linux/capability.h), as setpriv names them. */
const CAPABILITIES = [
  "chown",
  "dac_override",
  "dac_read_search",
  "fowner",
  "fsetid",
  "kill",
  "setgid",
  "setuid",
  "setpcap",
  "linux_immutable",
  "net_bind_service",
  "net_broadcast",
  "net_admin",
  "net_raw",
  "ipc_lock",
  "ipc_owner",
  "sys_module",
  "sys_rawio",
  "sys_chroot",
  "sys_ptrace",
  "sys_pacct",
  "sys_admin",
  "sys_boot",
  "sys_nice",
  "sys_resource",
  "sys_time",
  "sys_tty_config",
  "mknod",
  "lease",
  "audit_write",
  "audit_control",
  "setfcap",
  "mac_override",
  "mac_admin",
  "syslog",
  "wake_alarm",
  "block_suspend",
  "audit_read",
  "perfmon",
  "bpf",
  "checkpoint_restore",
] as const;

/** The capabilities of a hex mask (`CapEff:` of /proc/PID/status) as setpriv names them. */
export function capabilityNames(mask: string): string[] {
  if (!/^[0-9a-f]{1,16}$/i.test(mask)) throw new RangeError(`Cannot read capabilities "${mask}"`);
  const bits = BigInt(`0x${mask}`);
  return CAPABILITIES.filter((_, n) => ((bits >> BigInt(n)) & 1n) === 1n);
}

/** Whom a user's job is dumped as: its user and group, with the daemon's capabilities. */
export interface JobUser {
  readonly uid: number;
  readonly gid: number;
  /** Capabilities criu keeps (setpriv names); the daemon's own. */
  readonly caps: readonly string[];
}

/**
 * The argv prefix that runs criu as the job's user, keeping `caps` as inheritable and ambient
 * capabilities through exec: `setpriv --reuid --regid --clear-groups --inh-caps --ambient-caps
 * --`. CRIU reads each task's limits with prlimit(2), which another uid may do only with
 * CAP_SYS_RESOURCE (missing on some hosts, e.g. in containers), the same uid and gid always; the
 * rest of the dump needs the capabilities (ptrace, the parasite, the namespaces). The job's user
 * cannot trace such a process (it has more capabilities than the user), only signal it, which
 * fails its own job's dump, and the job goes on.
 */
export function asJobUser(user: JobUser): string[] {
  if (!Number.isInteger(user.uid) || user.uid <= 0 || !Number.isInteger(user.gid) || user.gid < 0) {
    throw new RangeError(`Cannot dump as user ${user.uid}:${user.gid}: not a user's ids`);
  }
  const caps = ["-all", ...user.caps.map((c) => `+${c}`)].join(",");
  return [
    "setpriv",
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--clear-groups",
    `--inh-caps=${caps}`,
    `--ambient-caps=${caps}`,
    "--",
  ];
}

/**
 * The user whom a job runs as, for its dump ({@linkcode asJobUser}), from its PID 1's
 * /proc/PID/status (`status`), with the capabilities of this process (`self`, its own status);
 * `undefined` when the job is root's. Throws when PID 1's real, effective and saved ids differ
 * (a set-user-ID program), which CRIU can dump only with CAP_SYS_RESOURCE.
 */
export function parseJobUser(status: string, self: string): JobUser | undefined {
  const ids = (name: string) =>
    (new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "").trim().split(/\s+/)
      .slice(0, 3).map(Number);
  const uids = ids("Uid");
  const gids = ids("Gid");
  const [uid, gid] = [uids[0], gids[0]];
  if (uids.length < 3 || gids.length < 3 || ![...uids, ...gids].every(Number.isInteger)) {
    throw new Error("Cannot read the job's user: no Uid and Gid lines");
  }
  if (uids.some((id) => id !== uid) || gids.some((id) => id !== gid)) {
    throw new Error(
      `Cannot dump the job as its user: it runs set-user-ID or set-group-ID (uids ${
        uids.join(" ")
      }, gids ${gids.join(" ")})`,
    );
  }
  if (uid === 0) return undefined;
  const mask = /^CapEff:\s*([0-9a-f]+)$/im.exec(self)?.[1];
  if (mask === undefined) throw new Error("Cannot read this process's capabilities");
  return { uid, gid, caps: capabilityNames(mask) };
}

/** {@linkcode parseJobUser} of the running job whose PID 1 is `pid`. */
export async function jobUser(pid: number): Promise<JobUser | undefined> {
  const [status, self] = await Promise.all(
    [`/proc/${pid}/status`, "/proc/self/status"].map((path) => Deno.readTextFile(path)),
  );
  return parseJobUser(status, self);
}
