/**
 * The system's users, as the daemon needs them for jobs of other users than root: a uid's name
 * (for messages), primary group and home, from the name service (`getent passwd`, so that
 * NSS users count too).
 */

/** One entry of the user database. */
export interface UserEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** Parses one `passwd` line (name:x:uid:gid:gecos:home:shell); undefined when it is not one. */
export function parsePasswdLine(line: string): UserEntry | undefined {
  const fields = line.trim().split(":");
  if (fields.length < 7 || !/^\d+$/.test(fields[2]) || !/^\d+$/.test(fields[3])) return undefined;
  return { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] };
}

/**
 * The name service's entry for `key` (`getent passwd KEY`: a uid, or a name); undefined when it
 * has none, or `getent` could not be run.
 */
export async function getentPasswd(key: string): Promise<UserEntry | undefined> {
  try {
    const output = await new Deno.Command("getent", {
      args: ["passwd", key],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (output.code !== 0) return undefined;
    return parsePasswdLine(new TextDecoder().decode(output.stdout).split("\n")[0]);
  } catch {
    return undefined;
  }
}

/** The user with `uid`; undefined when the name service does not know it. */
export async function lookupUser(uid: number): Promise<UserEntry | undefined> {
  const entry = await getentPasswd(String(uid));
  return entry?.uid === uid ? entry : undefined;
}

/** How messages name a user: its name, or `uid N` when it has none. */
export async function userName(uid: number): Promise<string> {
  return (await lookupUser(uid))?.name ?? `uid ${uid}`;
}
