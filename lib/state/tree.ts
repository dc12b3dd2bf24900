/**
 * Where the map lives: om's own state tree (`$OM_ROOT`, laid out like /proc/hpc), the kernel's
 * /proc/hpc when the node runs openMosix, or the seed's ALPHA files in /tmp.
 */
import { type ClusterMap, decodeConfig, decodeMospe, encodeConfig, encodeMospe } from "./hpcmap.ts";

/** Which backend holds the map. */
export type Backend = "userland" | "kernel" | "alpha";

/** The resolved paths of one node's state. */
export interface StatePaths {
  readonly backend: Backend;
  /** om's own state tree (pid file, statistics), whatever the backend. */
  readonly root: string;
  /** The directory of the admin files (flags: block, quiet, speed, ...). */
  readonly admin: string;
  /** The directory of the per-node information, `nodes/<id>/...`. */
  readonly nodes: string;
  readonly config: string;
  readonly mospe: string;
}

/** Chooses the backend: ALPHA when asked, kernel when `<proc>/hpc` exists, else userland. */
export function resolveStatePaths(
  settings: { root: string; proc: string; alpha: boolean; alphaDir?: string },
): StatePaths {
  if (settings.alpha) {
    return {
      backend: "alpha",
      root: settings.root,
      admin: `${settings.root}/admin`,
      nodes: `${settings.root}/nodes`,
      config: `${settings.alphaDir ?? "/tmp"}/om_config`,
      mospe: `${settings.alphaDir ?? "/tmp"}/om_mospe`,
    };
  }
  let kernel = false;
  try {
    kernel = Deno.statSync(`${settings.proc}/hpc`).isDirectory;
  } catch {
    kernel = false;
  }
  const admin = kernel ? `${settings.proc}/hpc/admin` : `${settings.root}/admin`;
  return {
    backend: kernel ? "kernel" : "userland",
    root: settings.root,
    admin,
    nodes: kernel ? `${settings.proc}/hpc/nodes` : `${settings.root}/nodes`,
    config: `${admin}/config`,
    mospe: `${admin}/mospe`,
  };
}

/** Writes a file so that readers see the old or the new content, never a part. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  await Deno.mkdir(dir, { recursive: true });
  await replaceFile(path, bytes);
}

/** The node id and map in force, or undefined when none was written yet. */
export async function readMap(
  paths: StatePaths,
): Promise<{ self: number; map: ClusterMap } | undefined> {
  let config: Uint8Array;
  let mospe: Uint8Array;
  try {
    [config, mospe] = await Promise.all([Deno.readFile(paths.config), Deno.readFile(paths.mospe)]);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return { self: decodeMospe(mospe), map: decodeConfig(config) };
}

/**
 * A writer for a process that rewrites the map often (the discovery daemon): the node id file is
 * written only when the id changes and directories are made once, so a burst of joins costs one
 * file replacement each instead of two plus a mkdir.
 */
export function mapWriter(paths: StatePaths): (self: number, map: ClusterMap) => Promise<void> {
  let writtenSelf: number | undefined;
  // The files' own directories (the ALPHA files are not in admin/); /proc/hpc exists already.
  let dirsMade = paths.backend === "kernel";
  return async (self, map) => {
    if (!dirsMade) {
      for (const file of [paths.mospe, paths.config]) {
        await Deno.mkdir(file.slice(0, file.lastIndexOf("/")) || "/", { recursive: true });
      }
      dirsMade = true;
    }
    const replace = paths.backend === "kernel"
      ? (path: string, bytes: Uint8Array) => Deno.writeFile(path, bytes)
      : replaceFile;
    if (writtenSelf !== self) {
      await replace(paths.mospe, encodeMospe(self));
      writtenSelf = self;
    }
    await replace(paths.config, encodeConfig(map));
  };
}

/**
 * Replaces a small file atomically in an existing directory. Synchronous on purpose: Deno runs
 * each async file operation on a worker thread, and for files of a few bytes, written dozens of
 * times a second by the daemon, the hand-offs cost far more than the write (measured: most of an
 * idle daemon's CPU among 32 nodes went to futex and sched_yield).
 */
export function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.${Deno.pid}.tmp`;
  Deno.writeFileSync(temporary, bytes);
  Deno.renameSync(temporary, path);
  return Promise.resolve();
}

/**
 * Writes the node id and the map. In the state tree and the ALPHA files each file is replaced
 * atomically; /proc/hpc files are written in place, as the kernel expects.
 */
export async function writeMap(paths: StatePaths, self: number, map: ClusterMap): Promise<void> {
  await mapWriter(paths)(self, map);
}
