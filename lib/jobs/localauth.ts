/**
 * Who may do what on the local socket (PROTOCOL.md §10). Every connection starts with `auth`
 * (lib/jobs/usertoken.ts says how a token proves its user); the user is kept in the connection's
 * session, and every other command is refused until then. Then: anyone may run jobs and list
 * them; only a job's owner or root may follow it, write to it, signal or migrate it (openMosix
 * let users move their own processes, root any; the kernel refused others with EPERM); only
 * root may expel or bring jobs, and use any command not named here.
 */
import { jsonBytes, jsonOf } from "../base/json.ts";
import { type ChannelClient, connectChannel } from "../channel/client.ts";
import type { Peer } from "../channel/handshake.ts";
import type { Handler } from "../channel/server.ts";
import type { Clock } from "../base/clock.ts";
import { checkToken, createToken, usersDirPath } from "./usertoken.ts";
import { userName } from "../base/users.ts";

/** Who may use a command: everyone who authenticated, a job's owner (or root), root. */
export type Access = "anyone" | "owner" | "root";

/** The local socket's commands and who may use them; any other is root's. */
export const LOCAL_ACCESS: Readonly<Record<string, Access>> = {
  "ping": "anyone",
  "version": "anyone",
  "job.run": "anyone",
  "job.list": "anyone",
  "job.output": "owner",
  "job.input": "owner",
  "job.signal": "owner",
  "job.migrate": "owner",
  "job.place": "owner",
  "node.expel": "root",
  "node.bring": "root",
};

/** What a refused command was about to do to a job, for its message. */
const VERBS: Readonly<Record<string, string>> = {
  "job.output": "follow",
  "job.input": "write to",
  "job.signal": "signal",
  "job.migrate": "migrate",
  "job.place": "place",
};

const UID = "uid";

/** The daemon's local control socket in the state tree `root`. */
export function localSocketPath(root: string): string {
  return `${root}/omdiscd.sock`;
}

/** The uid a local connection authenticated as; undefined before `auth`. */
export function sessionUid(peer: Peer): number | undefined {
  const uid = peer.session?.get(UID);
  return typeof uid === "number" ? uid : undefined;
}

/** The job id of an owner command's body; undefined when there is none (the handler says so). */
function jobIdOf(body: Uint8Array): number | undefined {
  try {
    const id: unknown = jsonOf<{ id?: unknown } | null>(body)?.id;
    return typeof id === "number" && Number.isInteger(id) && id > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Wraps the local socket's handlers (built-ins included: pass them all) in the rules above and
 * adds `auth`. `ownerOf` gives the uid of a job of this node, undefined for no such job.
 */
export function guardLocal(
  handlers: ReadonlyMap<string, Handler>,
  options: {
    readonly usersDir: string;
    readonly clock: Clock;
    readonly ownerOf: (id: number) => number | undefined;
  },
): Map<string, Handler> {
  const guarded = new Map<string, Handler>();
  for (const [command, handler] of handlers) {
    const access = LOCAL_ACCESS[command] ?? "root";
    guarded.set(command, async (body, peer) => {
      const uid = sessionUid(peer);
      if (uid === undefined) {
        throw new Error(`Cannot run "${command}": not authenticated (send auth first)`);
      }
      if (uid !== 0 && access === "root") {
        throw new Error(`Cannot run "${command}": Operation not permitted (root only)`);
      }
      if (uid !== 0 && access === "owner") {
        const id = jobIdOf(body);
        const owner = id === undefined ? undefined : options.ownerOf(id);
        if (owner !== undefined && owner !== uid) {
          throw new Error(
            `Cannot ${VERBS[command] ?? "use"} job ${id}: Operation not permitted ` +
              `(it belongs to user ${await userName(owner)})`,
          );
        }
      }
      return await handler(body, peer);
    });
  }
  guarded.set("auth", async (body, peer) => {
    if (!peer.session) throw new Error(`Cannot authenticate: this connection keeps no session`);
    const known = sessionUid(peer);
    if (known !== undefined) throw new Error(`Cannot authenticate: already uid ${known}`);
    let token: unknown;
    try {
      token = jsonOf<{ token?: unknown } | null>(body)?.token;
    } catch { /* below */ }
    if (typeof token !== "string") {
      throw new TypeError("Cannot read the body of auth: fields missing or of the wrong type");
    }
    const { uid } = await checkToken(options.usersDir, token, { now: options.clock.now() });
    peer.session.set(UID, uid);
    return jsonBytes({ uid });
  });
  return guarded;
}

/** The local socket refused our token (the daemon's words in `message`). */
export class LocalAuthError extends Error {
  override name = "LocalAuthError";
}

/**
 * The client's side: connects to the local socket of the state tree `root` and authenticates
 * (a fresh token in `root/users`). Throws LocalAuthError when the token cannot be made or is
 * refused, and connectChannel's errors when the daemon cannot be reached.
 */
export async function connectLocal(
  root: string,
  options: { readonly timeoutMs?: number } = {},
): Promise<ChannelClient> {
  const client = await connectChannel({ path: localSocketPath(root), ...options });
  const dir = usersDirPath(root);
  let token: string | undefined;
  try {
    token = await createToken(dir);
    await client.request("auth", jsonBytes({ token }));
    return client;
  } catch (error) {
    if (token !== undefined) await Deno.remove(`${dir}/${token}`).catch(() => {});
    await client.close().catch(() => {});
    const why = error instanceof Error && "error" in error
      ? String((error as { error: unknown }).error)
      : error instanceof Error
      ? error.message
      : String(error);
    throw new LocalAuthError(`Cannot prove who you are to om discover (${dir}): ${why}`, {
      cause: error,
    });
  }
}
