/**
 * The image files of a migration that do not go over the page link (PROTOCOL.md §11, `mig.file`):
 * each request's body is a u32 header length (big-endian), the JSON header (job, file name,
 * offset), then the raw bytes. Only CRIU's image names travel ({@linkcode isImageName}), each
 * within the size `mig.begin` announced for it ({@linkcode announcedFiles}).
 */
import { bodyOf, isId } from "../channel/body.ts";
import { jsonBytes } from "../base/json.ts";

/** Image bytes per `mig.file` request (a frame holds 16 MiB). */
export const FILE_CHUNK = 4 * 1024 * 1024;

/**
 * Whether `name` is one of CRIU's image names, the only files `mig.file` writes: lowercase words
 * and numbers (decimal or hex ids) joined by `-`, ending `.img` (or `.tar.gz.img`, a tmpfs's
 * contents), at most 64 characters. A dump writes nothing else that a restore reads: what it
 * wrote here (tests/lib/migration/files_test.ts lists a real dump's directory) is `core-1.img`,
 * `pagemap-1.img`, `pages-1.img`, `mountpoints-10.img`, `timens-0.img`... and besides them only
 * `dump.log` and `stats-dump`, which stay at the source. So none of the names om itself makes in
 * an images directory can be written by a source: the restore's marker `restored`, its pidfile
 * `restore.pid` and log, the page link's `gate`, `page-server.log`, the `reserve-N` files, the
 * held inventory `inventory.img.held`, the `parent` link.
 */
export function isImageName(name: string): boolean {
  return name.length <= 64 && /^[a-z][a-z0-9]*(-[a-z0-9]+)*(\.tar\.gz)?\.img$/.test(name);
}

/** Most image files a `mig.begin` may announce (a job of 1024 tasks has some 8 per task). */
export const FILES_MAX_COUNT = 16384;

/**
 * Most bytes of image files (pages aside: they come over the page link) a `mig.begin` may
 * announce. A job's other images are some kilobytes per task; CRIU keeps a deleted file a job
 * holds open (a ghost file) up to 1 MiB each.
 */
export const FILES_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Whether `value` is `mig.begin`'s `files`: bytes (a whole number from 0) by image name
 * ({@linkcode isImageName}), at most FILES_MAX_COUNT names. Their total is checked apart
 * ({@linkcode filesTotal}), for a message that says what it is.
 */
export function announcedFiles(value: unknown): value is Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value);
  return entries.length <= FILES_MAX_COUNT &&
    entries.every(([name, bytes]) =>
      isImageName(name) && Number.isSafeInteger(bytes) && bytes >= 0
    );
}

/**
 * Why a job of a user (not root) may not bring these images, or undefined: a tmpfs's contents
 * (`tmpfs-*.img`) are unpacked by criu, as root, with their owners and set-user-ID bits, into the
 * job's mount namespace, where the user's job could then run a set-user-ID-root program. A user's
 * job, started by om in a mount namespace of its own, has none (its dumps hold none).
 */
export function userImagesRefusal(files: Record<string, number>): string | undefined {
  const tmpfs = Object.keys(files).find((name) => name.startsWith("tmpfs-"));
  return tmpfs === undefined
    ? undefined
    : `its images hold a tmpfs's contents (${tmpfs}), which criu would unpack as root`;
}

/** The bytes of announced files, all together. */
export function filesTotal(files: Record<string, number>): number {
  return Object.values(files).reduce((sum, bytes) => sum + bytes, 0);
}

/**
 * Why a chunk of `length` bytes at `offset` of image `name` may not be stored, given what
 * mig.begin announced (`files`); undefined when it may.
 */
export function chunkRefusal(
  files: Readonly<Record<string, number>>,
  chunk: { name: string; offset: number; length: number },
): string | undefined {
  const size = Object.hasOwn(files, chunk.name) ? files[chunk.name] : undefined;
  if (size === undefined) return `mig.begin did not announce it`;
  const end = chunk.offset + chunk.length;
  if (end > size) return `bytes ${chunk.offset} to ${end} are beyond its announced ${size}`;
  return undefined;
}

/**
 * A `mig.file` body of `length` data bytes, the data left to fill: u32 header length
 * (big-endian), JSON header, then the raw bytes (`data`, a view into `body`).
 */
export function fileChunkBody(
  header: { id: number; name: string; offset: number },
  length: number,
): { body: Uint8Array; data: Uint8Array } {
  const head = jsonBytes(header);
  const body = new Uint8Array(4 + head.length + length);
  new DataView(body.buffer).setUint32(0, head.length);
  body.set(head, 4);
  return { body, data: body.subarray(4 + head.length) };
}

/** A `mig.file` body holding `data`. */
export function encodeFileChunk(
  header: { id: number; name: string; offset: number },
  data: Uint8Array,
): Uint8Array {
  const chunk = fileChunkBody(header, data.length);
  chunk.data.set(data);
  return chunk.body;
}

/** Reads a `mig.file` body; throws TypeError when it is not one, or names no image file. */
export function decodeFileChunk(
  body: Uint8Array,
): { id: number; name: string; offset: number; data: Uint8Array } {
  if (body.length < 4) throw new TypeError("Cannot read mig.file: too short");
  const length = new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
  if (4 + length > body.length) throw new TypeError("Cannot read mig.file: header cut short");
  const header = bodyOf<{ id: number; name: string; offset: number }>(
    "mig.file",
    body.subarray(4, 4 + length),
    (h) =>
      isId(h.id) && typeof h.name === "string" && Number.isSafeInteger(h.offset) && h.offset >= 0,
  );
  if (!isImageName(header.name)) {
    throw new TypeError(
      `Cannot store ${JSON.stringify(header.name.slice(0, 80))} of job ${header.id}: not a CRIU ` +
        "image name",
    );
  }
  return { ...header, data: body.subarray(4 + length) };
}
