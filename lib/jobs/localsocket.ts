/**
 * The daemon's local control socket, `<root>/omdiscd.sock` (PROTOCOL.md §10): the deputy's job
 * commands and any others the node adds, behind lib/jobs/localauth.ts's rule of who may do what.
 */
import { builtinHandlers, type Handler, serveChannel } from "../channel/server.ts";
import type { Clock } from "../base/clock.ts";
import type { Logger } from "../base/log.ts";
import { guardLocal, localSocketPath } from "./localauth.ts";
import { prepareUsersDir, usersDirPath } from "./usertoken.ts";
import type { Deputy } from "./deputy.ts";

/**
 * Opens the local control socket `<root>/omdiscd.sock` with the deputy's job commands: mode
 * 0666, every user may connect, and proves who they are with a token in `<root>/users`
 * (lib/jobs/localauth.ts says who may then do what). Closing stops both.
 */
export function serveLocal(
  options: {
    root: string;
    nodeId: number;
    logger: Logger;
    clock: Clock;
    /** The jobs the socket's job commands act on. */
    deputy: Deputy;
    /** More commands for the socket (job.migrate, the balancer's). */
    more?: ReadonlyMap<string, Handler>;
  },
): { close(): Promise<void> } {
  const { deputy } = options;
  let server;
  try {
    // Users must reach the socket: the state tree's root is searchable by all.
    Deno.mkdirSync(options.root, { recursive: true });
    const root = Deno.statSync(options.root);
    if (((root.mode ?? 0) & 0o011) !== 0o011) {
      Deno.chmodSync(options.root, ((root.mode ?? 0) & 0o7777) | 0o011);
    }
    // ... but not the migrations' images (CRIU writes them 0644: the jobs' memory).
    Deno.mkdirSync(`${options.root}/migrations`, { recursive: true });
    Deno.chmodSync(`${options.root}/migrations`, 0o700);
    const usersDir = usersDirPath(options.root);
    prepareUsersDir(usersDir);
    server = serveChannel({
      path: localSocketPath(options.root),
      mode: 0o666,
      nodeId: options.nodeId,
      logger: options.logger,
      handlers: guardLocal(
        new Map([
          ...builtinHandlers(options.nodeId),
          ...deputy.handlers(),
          ...(options.more ?? []),
        ]),
        {
          usersDir,
          clock: options.clock,
          ownerOf: (id) => deputy.jobs.find(id)?.uid,
        },
      ),
    });
  } catch (error) {
    void deputy.close();
    throw error;
  }
  return {
    async close() {
      await server.close();
      await deputy.close();
    },
  };
}
