/**
 * The image files of a migration that do not go over the page link (PROTOCOL.md §11, `mig.file`):
 * each request's body is a u32 header length (big-endian), the JSON header (job, file name,
 * offset), then the raw bytes.
 */
import { bodyOf, isId } from "../channel/body.ts";
import { jsonBytes } from "../base/json.ts";

/** Image bytes per `mig.file` request (a frame holds 16 MiB). */
export const FILE_CHUNK = 4 * 1024 * 1024;

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

/** Reads a `mig.file` body; throws TypeError when it is not one. */
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
      isId(h.id) && typeof h.name === "string" && /^[A-Za-z0-9][\w.-]*$/.test(h.name) &&
      Number.isInteger(h.offset) && h.offset >= 0,
  );
  return { ...header, data: body.subarray(4 + length) };
}
