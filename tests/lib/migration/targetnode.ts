/**
 * What the tests of a target's handlers share (migration_test.ts, admission_test.ts,
 * credentials_test.ts, restoredfiles_test.ts, imagecheck_test.ts): a target node 2 built as
 * lib/node.ts builds one (a Migration of a node with a cluster key, with a deputy of no jobs and no
 * other node), its peer, request bodies, and a source's sending of images.
 */
import type { Peer } from "../../../lib/channel/handshake.ts";
import type { Handler } from "../../../lib/channel/server.ts";
import { FakeClock } from "../../../lib/base/clock.ts";
import { Deputy } from "../../../lib/jobs/deputy.ts";
import { createLogger } from "../../../lib/base/log.ts";
import { Migration } from "../../../lib/migration/migration.ts";
import type { JobOwner } from "../../../lib/migration/jobowner.ts";
import { encodeFileChunk, FILE_CHUNK } from "../../../lib/migration/files.ts";
import { imageFiles } from "../../../lib/migration/source.ts";

/** A target node 2: a Migration and its channel handlers. */
export function targetNode(
  root: string,
  options: {
    lines?: string[];
    staleMs?: number;
    criu?: string;
    env?: Record<string, string>;
    /** root_guests: false = root's jobs from other nodes are refused. */
    rootGuests?: boolean;
  } = {},
): { migration: Migration; handlers: Map<string, Handler> } {
  const logger = createLogger(
    (level, text) => options.lines?.push(`${level}: ${text}`),
    () => false,
  );
  const migration = new Migration({
    nodeId: 2,
    root,
    deputy: new Deputy({ nodeId: 2, jobsDir: `${root}/jobs`, logger, clock: new FakeClock() }),
    logger,
    criuBinary: options.criu,
    connect: () => Promise.reject(new Error("no other node here")),
    blocked: () => Promise.resolve(false),
    keyed: true,
    staleMs: options.staleMs,
    env: (name) => options.env?.[name],
    rootGuests: options.rootGuests === undefined ? undefined : () => options.rootGuests!,
  });
  return { migration, handlers: migration.channelHandlers() };
}

/** Node 1, the source of every request. */
export const peer: Peer = { address: "10.0.0.1", port: 20302, nodeId: 1, authenticated: true };

/** A JSON request body. */
export const body = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

/** A reply's text. */
export const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** Root, as a source names the user of a root job (every stand-in "job" here is root's). */
export const ROOT: JobOwner = { name: "root", uid: 0, gid: 0 };

/** The user nobody, as a source names it. */
export const NOBODY: JobOwner = { name: "nobody", uid: 65534, gid: 65534 };

/** mig.begin of job 77 of node 1, root's, with no image files announced. */
export const begin = {
  id: 77,
  home: 1,
  user: ROOT,
  files: {},
  command: ["sleep", "9"],
  fds: [null, "pipe:[123]", null],
};

/**
 * A final round's mig.pages of job 77 of node 1 (root's), asking the target to start its restore
 * early; resolves with the page link's port. `link`: the round's token and secret.
 */
export async function finalRoundPages(
  handlers: Map<string, Handler>,
  link: { token: string; secret: string },
): Promise<number> {
  const reply = await handlers.get("mig.pages")!(
    body({
      id: 77,
      home: 1,
      user: ROOT,
      ...link,
      restore: { fds: [null, null, null], mounts: false },
    }),
    peer,
  );
  return JSON.parse(text(reply)).port;
}

/**
 * Sends the images in `dir` to the target as a source would, for job `id` of node 1 run by
 * `user` (`command` its command line): mig.begin announcing them, each file in FILE_CHUNK
 * pieces, then mig.restore; resolves with mig.restore's answer.
 */
export async function sendImages(
  handlers: Map<string, Handler>,
  job: { id: number; user: JobOwner; dir: string; command: string[] },
): Promise<Uint8Array> {
  const { id, dir } = job;
  const files = await imageFiles(dir);
  const announced = { id, home: 1, user: job.user, files, command: job.command };
  await handlers.get("mig.begin")!(body({ ...announced, fds: [null, null, null] }), peer);
  for (const [name, size] of Object.entries(files)) {
    const bytes = await Deno.readFile(`${dir}/${name}`);
    for (let offset = 0; offset < Math.max(size, 1); offset += FILE_CHUNK) {
      const data = bytes.subarray(offset, offset + FILE_CHUNK);
      await handlers.get("mig.file")!(encodeFileChunk({ id, name, offset }, data), peer);
    }
  }
  return handlers.get("mig.restore")!(body({ id }), peer);
}
