/**
 * lib/migration/admission.ts and what a target takes in, on its real handlers: the rule of the cap
 * and the budget, the admission over concurrent requests, and a target that refuses (before the
 * job is frozen: at mig.pages) a job of a user it does not have with that uid, a fifth migration at
 * once, reservations of concurrent migrations over its room, image files over their bound, and
 * mig.file chunks that are not announced images within their sizes.
 */
import assert from "node:assert/strict";
import {
  Admission,
  admissionRefusal,
  MAX_INCOMING,
  type Room,
  ROOM_MARGIN,
  roomAt,
} from "../../../lib/migration/admission.ts";
import { encodeFileChunk, FILES_MAX_BYTES } from "../../../lib/migration/files.ts";
import { newPageToken } from "../../../lib/migration/pagelink.ts";
import { newPageSecret } from "../../../lib/migration/pageseal.ts";
import { PAGE_SERVER_ENV } from "../../../lib/migration/target.ts";
import { exists } from "../../tools/labkit.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { begin, body, NOBODY, peer, ROOT, targetNode } from "./targetnode.ts";

const MIB = 1048576;

Deno.test("admission: at most MAX_INCOMING jobs at once; one already on its way is let on", () => {
  const incoming = new Set([1, 2, 3, 4]);
  const state = { incoming, promised: new Map<number, number>() };
  assert.equal(MAX_INCOMING, 4);
  assert.equal(
    admissionRefusal({ id: 5, bytes: 0, what: "its pages" }, state),
    "takes 4 migrations at once, and 4 are on their way there",
  );
  assert.equal(admissionRefusal({ id: 4, bytes: 0, what: "its pages" }, state), undefined);
  incoming.delete(1);
  assert.equal(admissionRefusal({ id: 5, bytes: 0, what: "its pages" }, state), undefined);
});

Deno.test("admission: the bytes announced fit the free space, less a margin and the others' promises", () => {
  // 1600 MiB of which 1000 free: 100 MiB kept free, so 900 left.
  const room: Room = { size: 1600 * MIB, free: 1000 * MIB };
  assert.equal(ROOM_MARGIN, 16);
  const state = { incoming: new Set([1]), promised: new Map<number, number>(), room };
  assert.equal(admissionRefusal({ id: 1, bytes: 900 * MIB, what: "its pages" }, state), undefined);
  assert.equal(
    admissionRefusal({ id: 1, bytes: 900 * MIB + 1, what: "its pages" }, state),
    "has 900.0 MiB left for migrations, and its pages need 900.0 MiB (1000.0 MiB free, " +
      "0.0 MiB promised to other migrations, 100.0 MiB kept free)",
  );
  // Another job's promise counts; the job's own earlier one does not (it is replaced).
  const promised = new Map([[2, 300 * MIB], [1, 800 * MIB]]);
  const both = { incoming: new Set([1, 2]), promised, room };
  assert.equal(admissionRefusal({ id: 1, bytes: 600 * MIB, what: "its pages" }, both), undefined);
  assert.match(
    admissionRefusal({ id: 1, bytes: 601 * MIB, what: "its image files" }, both)!,
    /^has 600\.0 MiB left for migrations, and its image files need 601\.0 MiB \(.*300\.0 MiB promised/,
  );
  // A job no longer on its way promises nothing.
  const gone = { incoming: new Set([1]), promised, room };
  assert.equal(admissionRefusal({ id: 1, bytes: 900 * MIB, what: "its pages" }, gone), undefined);
  // Nothing announced, nothing to check.
  assert.equal(
    admissionRefusal({ id: 1, bytes: 0, what: "its pages" }, {
      ...state,
      room: { size: 0, free: 0 },
    }),
    undefined,
  );
});

Deno.test("admission: two requests at once cannot both take the last room, or the last place", async () => {
  const on = new Set<number>();
  let rooms = 0;
  let free = 1000 * MIB;
  let during: (() => void) | undefined;
  const admission = new Admission({
    nodeId: 2,
    dir: "/nowhere",
    incoming: () => on,
    max: 2,
    room: () => {
      rooms++;
      const room = { size: 1600 * MIB, free };
      const hook = during;
      during = undefined;
      hook?.();
      return Promise.resolve(room);
    },
  });
  const pages = (bytes: number) => ({ kind: "pages" as const, bytes, what: "its pages" });
  // Job 1 takes 600 MiB; job 2, asking at the same time, is refused: the 600 are promised.
  const [one, two] = await Promise.allSettled([
    admission.take(1, pages(600 * MIB)),
    admission.take(2, pages(600 * MIB)),
  ]);
  assert.equal(one.status, "fulfilled");
  assert.equal(two.status, "rejected");
  assert.match(
    (two as PromiseRejectedResult).reason.message,
    /^Cannot take job 2: node 2 has 300\.0 MiB left for migrations, and its pages need 600\.0 MiB/,
  );
  assert.deepEqual([...admission.incoming()], [1], "being admitted, it counts");
  assert.equal(admission.promised(1), 600 * MIB);
  // The place: job 3 (no bytes) fits beside job 1; a fourth does not while both are admitted.
  const three = await admission.take(3, pages(0));
  await assert.rejects(admission.take(4, pages(0)), /node 2 takes 2 migrations at once/);
  three[Symbol.dispose]();
  // Job 1's room was taken (its reservation written): the free space shows it now. A room read
  // while it settled is read again, so that the 600 MiB are counted once, not never.
  on.add(1);
  (one as PromiseFulfilledResult<Disposable>).value[Symbol.dispose]();
  rooms = 0;
  during = () => {
    free -= 600 * MIB;
    admission.settle(1, "pages");
  };
  await assert.rejects(admission.take(5, pages(400 * MIB)), /has 300\.0 MiB left/);
  assert.equal(rooms, 2, "read again after the settle");
  assert.equal(admission.promised(1), 0);
  // Job 1 is gone: its place and its promises with it.
  on.delete(1);
  const five = await admission.take(5, pages(300 * MIB));
  five[Symbol.dispose]();
});

Deno.test("admission: the room of a real file system", async () => {
  await using tmp = await tempDir("admission");
  const room = await roomAt(`${tmp.path}/migrations`);
  assert.ok(room.size > 0 && room.free > 0 && room.free <= room.size, JSON.stringify(room));
  assert.ok(await exists(`${tmp.path}/migrations`), "made when missing");
});

/** mig.pages of job `id`, root's unless `user` says otherwise. */
const pagesBody = (id: number, extra: Record<string, unknown> = {}) =>
  body({ id, home: 1, user: ROOT, token: newPageToken(), secret: newPageSecret(), ...extra });

Deno.test("admission: a target takes no job of a user it has not, with that uid, before the freeze", async () => {
  await using tmp = await tempDir("admission");
  const { handlers } = targetNode(tmp.path);
  const dir = `${tmp.path}/migrations/77-in`;
  for (const command of ["mig.pages", "mig.begin"]) {
    const ask = (user: unknown) =>
      handlers.get(command)!(
        command === "mig.pages" ? pagesBody(77, { user }) : body({ ...begin, user }),
        peer,
      );
    await assert.rejects(
      ask({ name: "nobody", uid: 0, gid: 0 }),
      new Error("Cannot take job 77: user nobody is uid 65534 here, not 0"),
      command,
    );
    await assert.rejects(
      ask({ name: "om-no-such-user", uid: 4242, gid: 4242 }),
      new Error("Cannot take job 77: node 2 has no user om-no-such-user"),
      command,
    );
    for (const user of [undefined, { name: "-r", uid: 0, gid: 0 }, { name: "root", uid: -1 }]) {
      await assert.rejects(ask(user), /Cannot read the body of mig\.(pages|begin)/, command);
    }
    assert.equal(await exists(dir), false, `${command}: nothing made`);
  }
  // Taken as nobody's at mig.pages, the job must be nobody's at mig.begin too.
  await handlers.get("mig.pages")!(pagesBody(77, { user: NOBODY }), peer);
  await assert.rejects(
    handlers.get("mig.begin")!(body({ ...begin, user: ROOT }), peer),
    /Cannot take job 77: mig.begin names another user than mig.pages did/,
  );
  await handlers.get("mig.abort")!(body({ id: 77 }), peer);
});

Deno.test("admission: a target takes four migrations at once, a fifth when one went", async () => {
  await using tmp = await tempDir("admission");
  const { handlers } = targetNode(tmp.path);
  try {
    for (const id of [81, 82, 83]) await handlers.get("mig.pages")!(pagesBody(id), peer);
    // One more by mig.begin alone (no page link), then the fifth either way is refused.
    await handlers.get("mig.begin")!(body({ ...begin, id: 84 }), peer);
    await assert.rejects(
      handlers.get("mig.pages")!(pagesBody(85), peer),
      new Error(
        "Cannot take job 85: node 2 takes 4 migrations at once, and 4 are on their way there",
      ),
    );
    await assert.rejects(
      handlers.get("mig.begin")!(body({ ...begin, id: 85 }), peer),
      /Cannot take job 85: node 2 takes 4 migrations at once/,
    );
    assert.equal(await exists(`${tmp.path}/migrations/85-in`), false);
    // A job already on its way goes on: its next round, its mig.begin.
    await handlers.get("mig.pages")!(pagesBody(81), peer);
    await handlers.get("mig.abort")!(body({ id: 82 }), peer);
    await handlers.get("mig.pages")!(pagesBody(85), peer);
  } finally {
    for (const id of [81, 82, 83, 84, 85]) await handlers.get("mig.abort")!(body({ id }), peer);
  }
});

Deno.test("admission: reservations of migrations at once share the room of the node", async () => {
  await using tmp = await tempDir("admission");
  // criu's page server (a stand-in: never reached here) reserves nothing ahead: only the
  // budget stands between two announcements and a full file system.
  const criu = `${tmp.path}/criu`;
  await Deno.writeTextFile(criu, "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  const { handlers } = targetNode(tmp.path, { criu, env: { [PAGE_SERVER_ENV]: "criu" } });
  const room = await roomAt(`${tmp.path}/migrations`);
  const left = room.free - Math.ceil(room.size / ROOM_MARGIN);
  // Each asks for 60% of what is left: one fits, two do not.
  const reserve = { 1: Math.floor(left * 0.6) };
  try {
    await handlers.get("mig.pages")!(pagesBody(81, { reserve }), peer);
    await assert.rejects(
      handlers.get("mig.pages")!(pagesBody(82, { reserve }), peer),
      /^Error: Cannot take job 82: node 2 has [\d.]+ MiB left for migrations, and its pages need [\d.]+ MiB \([\d.]+ MiB free, [\d.]+ MiB promised to other migrations, [\d.]+ MiB kept free\)$/,
    );
    await handlers.get("mig.abort")!(body({ id: 81 }), peer);
    await handlers.get("mig.pages")!(pagesBody(82, { reserve }), peer);
    // Beyond the room outright: refused alone.
    await assert.rejects(
      handlers.get("mig.pages")!(pagesBody(83, { reserve: { 1: left + MIB } }), peer),
      /Cannot take job 83: node 2 has [\d.]+ MiB left for migrations/,
    );
  } finally {
    for (const id of [81, 82, 83]) await handlers.get("mig.abort")!(body({ id }), peer);
  }
});

Deno.test("admission: mig.file writes announced image files within their sizes, nothing else", async () => {
  await using tmp = await tempDir("admission");
  const { handlers } = targetNode(tmp.path);
  const dir = `${tmp.path}/migrations/77-in`;
  // Image files over the bound: refused at mig.begin, before anything is taken.
  await assert.rejects(
    handlers.get("mig.begin")!(
      body({ ...begin, files: { "core-1.img": FILES_MAX_BYTES, "mm-1.img": 1 } }),
      peer,
    ),
    new Error(
      "Cannot take job 77: its image files hold 256.0 MiB, more than the 256.0 MiB a node takes",
    ),
  );
  for (const files of [{ restored: 0 }, { "core-1.img": -1 }, [], undefined]) {
    await assert.rejects(
      handlers.get("mig.begin")!(body({ ...begin, files }), peer),
      /Cannot read the body of mig\.begin/,
      JSON.stringify(files),
    );
  }
  await handlers.get("mig.begin")!(
    body({ ...begin, files: { "core-1.img": 8, "inventory.img": 4 } }),
    peer,
  );
  const file = (name: string, offset: number, data: string) =>
    handlers.get("mig.file")!(
      encodeFileChunk({ id: 77, name, offset }, new TextEncoder().encode(data)),
      peer,
    );
  await file("core-1.img", 0, "core");
  await file("core-1.img", 4, "-one");
  await file("inventory.img", 0, "inv!");
  assert.equal(await Deno.readTextFile(`${dir}/core-1.img`), "core-one");
  await assert.rejects(
    file("core-1.img", 4, "-one!"),
    new Error("Cannot store image core-1.img of job 77: bytes 4 to 9 are beyond its announced 8"),
  );
  await assert.rejects(
    file("mm-1.img", 0, "mm"),
    new Error("Cannot store image mm-1.img of job 77: mig.begin did not announce it"),
  );
  // om's own files in an images directory: the restore's marker and pidfile, the page link's log.
  for (const name of ["restored", "restore.pid", "page-server.log", "inventory.img.held"]) {
    await assert.rejects(file(name, 0, "1"), /not a CRIU image name/, name);
    assert.equal(await exists(`${dir}/${name}`), false, name);
  }
  assert.equal(await Deno.readTextFile(`${dir}/core-1.img`), "core-one", "left as it was");
  await handlers.get("mig.abort")!(body({ id: 77 }), peer);
});
