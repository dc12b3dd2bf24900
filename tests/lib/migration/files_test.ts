/** lib/migration/files.ts: the body of a `mig.file` request. */
import assert from "node:assert/strict";
import { decodeFileChunk, encodeFileChunk } from "../../../lib/migration/files.ts";

Deno.test("migration files: mig.file bodies carry a JSON header and raw bytes", () => {
  const data = new Uint8Array([0, 1, 2, 255]);
  const body = encodeFileChunk({ id: 42, name: "pages-1.img", offset: 8 }, data);
  assert.deepEqual(decodeFileChunk(body), { id: 42, name: "pages-1.img", offset: 8, data });
  const bad = encodeFileChunk({ id: 42, name: "../etc/passwd", offset: 0 }, data);
  assert.throws(() => decodeFileChunk(bad), TypeError);
  assert.throws(() => decodeFileChunk(new Uint8Array([0, 0, 1, 0])), TypeError);
});
