/**
 * The job's user across a move (PROTOCOL.md §11): its name, uid and gid, which the source reads
 * from the job's PID 1 ({@linkcode jobOwner}) and sends in `mig.pages` and `mig.begin`. The target
 * takes the job only when a user of that name has that uid there too ({@linkcode ownerRefusal}),
 * before anything is frozen, and checks the restored tasks against it (credentials.ts).
 */
import { getentPasswd, lookupUser, type UserEntry } from "../base/users.ts";

/** The user a job runs as, as `mig.pages` and `mig.begin` carry it; uid 0: a root job. */
export interface JobOwner {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * A user's name as om takes it: a letter or `_`, then up to 31 letters, digits, `_`, `.` and
 * `-`, perhaps a final `$`. Never all digits (the name service would take it for a uid), never a
 * leading `-` (it would be read as an option).
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/** An id as the kernel has them: 0 to 2^32 - 2 (2^32 - 1 is "no id"). */
const isIdNumber = (value: unknown) =>
  Number.isInteger(value) && (value as number) >= 0 && (value as number) < 0xffffffff;

/** Whether `value` is a {@linkcode JobOwner} as it comes over the wire. */
export function isJobOwner(value: unknown): value is JobOwner {
  if (typeof value !== "object" || value === null) return false;
  const owner = value as JobOwner;
  return typeof owner.name === "string" && NAME.test(owner.name) && isIdNumber(owner.uid) &&
    isIdNumber(owner.gid);
}

/** Whether two owners are the same user. */
export function sameOwner(a: JobOwner, b: JobOwner): boolean {
  return a.name === b.name && a.uid === b.uid && a.gid === b.gid;
}

/**
 * Why node `nodeId` cannot take a job of `owner`, given the entry of the user of that name there
 * (`here`, undefined when there is none); undefined when it can.
 */
export function ownerRefusal(
  owner: JobOwner,
  node: { here: UserEntry | undefined; nodeId: number },
): string | undefined {
  const { here, nodeId } = node;
  if (!here) return `node ${nodeId} has no user ${owner.name}`;
  if (here.uid !== owner.uid) return `user ${owner.name} is uid ${here.uid} here, not ${owner.uid}`;
  // The group comes from the wire too: a user's job runs in the user's own group here, never in
  // one the request names (a job of nobody in group disk would write the disks).
  if (here.gid !== owner.gid) {
    return `user ${owner.name}'s group is gid ${here.gid} here, not ${owner.gid}`;
  }
  return undefined;
}

/** The user named `name` in the name service (`getent passwd NAME`); undefined when none. */
export async function userNamed(name: string): Promise<UserEntry | undefined> {
  if (!NAME.test(name)) return undefined;
  const entry = await getentPasswd(name);
  return entry?.name === name ? entry : undefined;
}

/**
 * The groups user `name` is in on this node (`id -G -- NAME`: its primary group and the
 * supplementary ones of the name service); empty when it cannot tell.
 */
export async function groupsOf(name: string): Promise<Set<number>> {
  if (!NAME.test(name)) return new Set();
  try {
    const output = await new Deno.Command("id", {
      args: ["-G", "--", name],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (output.code !== 0) return new Set();
    const words = new TextDecoder().decode(output.stdout).trim().split(/\s+/);
    return new Set(words.filter((word) => /^\d+$/.test(word)).map(Number));
  } catch {
    return new Set();
  }
}

/**
 * The user whom the job whose PID 1 is `pid` runs as: its real uid and gid (`/proc/PID/status`),
 * and the name of that uid on this node. Throws when the uid has no name here (the target could
 * not tell whether it is the same user).
 */
export async function jobOwner(pid: number, procDir = "/proc"): Promise<JobOwner> {
  const status = await Deno.readTextFile(`${procDir}/${pid}/status`);
  const [uid, gid] = ["Uid", "Gid"].map((name) =>
    Number(new RegExp(`^${name}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? NaN)
  );
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`Cannot name the job's user: process ${pid} has no Uid and Gid lines`);
  }
  const entry = await lookupUser(uid);
  if (!entry) throw new Error(`Cannot name the job's user: uid ${uid} has no name on this node`);
  if (!NAME.test(entry.name)) {
    throw new Error(`Cannot name the job's user: uid ${uid}'s name is not one om sends`);
  }
  return { name: entry.name, uid, gid };
}
