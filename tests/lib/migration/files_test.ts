/** lib/migration/files.ts: the body of a `mig.file` request, the names and sizes it may have. */
import assert from "node:assert/strict";
import {
  announcedFiles,
  chunkRefusal,
  decodeFileChunk,
  encodeFileChunk,
  FILES_MAX_COUNT,
  filesTotal,
  isImageName,
  userImagesRefusal,
} from "../../../lib/migration/files.ts";
import { HELD_INVENTORY } from "../../../lib/criu/restore.ts";

Deno.test("migration files: mig.file bodies carry a JSON header and raw bytes", () => {
  const data = new Uint8Array([0, 1, 2, 255]);
  const body = encodeFileChunk({ id: 42, name: "pages-1.img", offset: 8 }, data);
  assert.deepEqual(decodeFileChunk(body), { id: 42, name: "pages-1.img", offset: 8, data });
  const bad = encodeFileChunk({ id: 42, name: "../etc/passwd", offset: 0 }, data);
  assert.throws(() => decodeFileChunk(bad), TypeError);
  assert.throws(() => decodeFileChunk(new Uint8Array([0, 0, 1, 0])), TypeError);
});

/**
 * What criu 4 dumped into its images directory here (a root job with two children, and a user's
 * job in its own mount namespace, dumped with lib/criu/run.ts as tests/lib/criu/run_test.ts
 * does): every name but the log and the statistics is an image the restore reads.
 */
const DUMPED = [
  "core-1.img",
  "core-2.img",
  "core-6.img",
  "fdinfo-2.img",
  "fdinfo-3.img",
  "files.img",
  "fs-1.img",
  "ids-1.img",
  "inventory.img",
  "mm-1.img",
  "mountpoints-10.img",
  "pagemap-1.img",
  "pages-1.img",
  "pipes-data.img",
  "pstree.img",
  "seccomp.img",
  "timens-0.img",
];

Deno.test("migration files: only CRIU's image names are written, none of om's own", () => {
  for (const name of DUMPED) assert.ok(isImageName(name), name);
  // Images of other kinds CRIU names so: shared memory, hex ids, a tmpfs's contents, the pages
  // images om's receiver numbers from 65537.
  for (
    const name of [
      "pagemap-shmem-1234.img",
      "ghost-file-1a2f.img",
      "tcp-stream-ff01.img",
      "tmpfs-dev-77.tar.gz.img",
      "ipcns-shm-9.img",
      "pages-65537.img",
    ]
  ) {
    assert.ok(isImageName(name), name);
  }
  // What a dump writes beside them stays at the source; what om makes in an images directory is
  // never a source's to write (the restore's marker above all: it would say "restored").
  for (
    const name of [
      "dump.log",
      "stats-dump",
      "restored",
      "restore.pid",
      "restore.log",
      "gate",
      "dump-gate",
      "page-server.log",
      "reserve-1",
      HELD_INVENTORY,
      "parent",
      "../inventory.img",
      "pre-1/pages-1.img",
      ".img",
      "-core.img",
      "Core-1.img",
      "core--1.img",
      "core-1.img.tmp",
      `${"a".repeat(61)}.img`,
      "",
    ]
  ) {
    assert.equal(isImageName(name), false, JSON.stringify(name));
  }
  for (const name of ["restored", "restore.pid", "gate", HELD_INVENTORY, "stats-dump"]) {
    const body = encodeFileChunk({ id: 7, name, offset: 0 }, new Uint8Array(1));
    assert.throws(
      () => decodeFileChunk(body),
      new TypeError(`Cannot store ${JSON.stringify(name)} of job 7: not a CRIU image name`),
    );
  }
});

Deno.test("migration files: each file within the size mig.begin announced", () => {
  assert.ok(announcedFiles({ "core-1.img": 2357, "inventory.img": 0 }));
  assert.ok(announcedFiles({}));
  for (
    const files of [
      { restored: 1 },
      { "core-1.img": -1 },
      { "core-1.img": 1.5 },
      { "core-1.img": "1" },
      [],
      null,
      Object.fromEntries(
        Array.from({ length: FILES_MAX_COUNT + 1 }, (_, i) => [`core-${i}.img`, 1]),
      ),
    ]
  ) {
    assert.equal(announcedFiles(files), false, JSON.stringify(files)?.slice(0, 40));
  }
  assert.equal(filesTotal({ "core-1.img": 2357, "mm-1.img": 1036 }), 3393);
  const files = { "core-1.img": 10 };
  assert.equal(chunkRefusal(files, { name: "core-1.img", offset: 0, length: 10 }), undefined);
  assert.equal(chunkRefusal(files, { name: "core-1.img", offset: 4, length: 6 }), undefined);
  assert.equal(
    chunkRefusal(files, { name: "core-1.img", offset: 4, length: 7 }),
    "bytes 4 to 11 are beyond its announced 10",
  );
  assert.equal(
    chunkRefusal(files, { name: "core-2.img", offset: 0, length: 0 }),
    "mig.begin did not announce it",
  );
  // A name that is a property of every object is no announcement.
  assert.equal(
    chunkRefusal(files, { name: "constructor", offset: 0, length: 0 }),
    "mig.begin did not announce it",
  );
});

Deno.test("migration files: a user's job brings no tmpfs's contents (criu unpacks them as root)", () => {
  const dumped = Object.fromEntries(DUMPED.map((name) => [name, 4096]));
  assert.equal(userImagesRefusal(dumped), undefined, "a user's job as om starts it has none");
  assert.equal(
    userImagesRefusal({ ...dumped, "tmpfs-dev-77.tar.gz.img": 4096 }),
    "its images hold a tmpfs's contents (tmpfs-dev-77.tar.gz.img), which criu would unpack as root",
  );
});
