/**
 * lib/migration/migration.ts without nodes: the dump rounds (stop-and-copy, or pre-copy where the kernel
 * tracks dirty memory: this machine's does not, so pre-copy is tested here for its plan and argv
 * only); a target's real handlers on real files: an image set whose source went quiet after
 * mig.begin is dropped, and mig.status while a (stand-in) criu restores and after; a home's
 * handlers for a moved job's output (with an in-memory deputy). The restore waiter is tested in
 * restore_test.ts, the guest's way home in homelink_test.ts, what a target takes in (the job's
 * user, the cap, the budget, the image files) in admission_test.ts, the restored job's
 * credentials in credentials_test.ts.
 */
import assert from "node:assert/strict";
import type { Peer } from "../../../lib/channel/handshake.ts";
import { RemoteError } from "../../../lib/channel/client.ts";
import { systemClock } from "../../../lib/base/clock.ts";
import type { HomeDeputy } from "../../../lib/migration/home.ts";
import { disownedText, isDisowned } from "../../../lib/migration/homelink.ts";
import { JobTable } from "../../../lib/jobs/table.ts";
import { createLogger } from "../../../lib/base/log.ts";
import { Migration } from "../../../lib/migration/migration.ts";
import { dumpRounds, roundArgs } from "../../../lib/migration/rounds.ts";
import { PAGE_SERVER_ENV } from "../../../lib/migration/target.ts";
import {
  begin,
  body,
  finalRoundPages,
  peer,
  ROOT,
  targetNode as target,
  text,
} from "./targetnode.ts";
import { readProcess, readProcesses } from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { exists } from "../../tools/labkit.ts";
import { execute } from "../../tools/sandbox.ts";
import {
  ADD_F,
  CLOSE,
  command,
  concat,
  newLink,
  OPEN2,
  PRESENT,
  sealedStream,
  sendOnLink,
  sendSealed,
  task,
} from "../../tools/sealedpages.ts";
import { pageProxy } from "../../tools/pageproxy.ts";
import { tempDir } from "../../tools/tempdir.ts";

Deno.test("migration: stop-and-copy without dirty-memory tracking: one dump, left stopped", () => {
  const rounds = dumpRounds(false);
  assert.deepEqual(rounds, [{ action: "dump", dir: "" }]);
  assert.deepEqual(
    roundArgs(rounds[0], { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: false }),
    [
      "dump",
      "--tree",
      "42",
      "--images-dir",
      "/m/42-out",
      "--log-file",
      "/m/42-out/dump.log",
      "-v4",
      "--leave-stopped",
      "--page-server",
      "--ps-socket",
      "0",
    ],
  );
  // A user's job, gated: criu as its user, its own mounts external, the gate as action script.
  const options = { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: false };
  assert.deepEqual(
    roundArgs(rounds[0], { ...options, user: true, gate: "/m/dump-gate" }).slice(9),
    [
      "--unprivileged",
      "--external",
      "mnt[]",
      "--action-script",
      "/m/dump-gate",
      "--page-server",
      "--ps-socket",
      "0",
    ],
  );
});

Deno.test("migration: pre-copy with dirty-memory tracking: pre-dumps, then the rest", () => {
  assert.deepEqual(dumpRounds(true), [
    { action: "pre-dump", dir: "pre-1" },
    { action: "dump", dir: "", prev: "pre-1" },
  ]);
  const rounds = dumpRounds(true, 2);
  assert.deepEqual(rounds, [
    { action: "pre-dump", dir: "pre-1" },
    { action: "pre-dump", dir: "pre-2", prev: "../pre-1" },
    { action: "dump", dir: "", prev: "pre-2" },
  ]);
  const options = { pid: 42, imagesDir: "/m/42-out", memDirtyTrack: true };
  assert.deepEqual(roundArgs(rounds[1], options), [
    "pre-dump",
    "--tree",
    "42",
    "--images-dir",
    "/m/42-out/pre-2",
    "--log-file",
    "/m/42-out/pre-2/pre-dump.log",
    "-v4",
    "--track-mem",
    "--prev-images-dir",
    "../pre-1",
    "--page-server",
    "--ps-socket",
    "0",
  ]);
  const last = roundArgs(rounds[2], options);
  assert.deepEqual(last.slice(0, 4), ["dump", "--tree", "42", "--images-dir"]);
  assert.ok(last.includes("--track-mem"));
  assert.deepEqual(
    last.slice(last.indexOf("--prev-images-dir"), last.indexOf("--prev-images-dir") + 2),
    [
      "--prev-images-dir",
      "pre-2",
    ],
  );
  assert.ok(last.includes("--leave-stopped"));
  assert.deepEqual(dumpRounds(true, 0), [{ action: "dump", dir: "" }]);
});

Deno.test("migration: a target drops the images of a job whose source went quiet after mig.begin", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  const lines: string[] = [];
  const { migration, handlers } = target(root, { lines, staleMs: 300 });
  await handlers.get("mig.begin")!(body(begin), peer);
  const dir = `${root}/migrations/77-in`;
  await Deno.writeTextFile(`${dir}/core-1.img`, "image");
  assert.equal(migration.arriving(), 1, "on its way here");
  await retryUntil(() => migration.arriving() === 0, 5000, { what: "the stale job to go" });
  await retryUntil(() => Deno.stat(dir).then(() => false, () => true), 2000, {
    what: "its images to go",
  });
  // The warning comes once the drop has ended, a moment after the images went.
  await retryUntil(
    () =>
      lines.some((line) => /warning: job 77 of node 1: no mig.restore within 300 ms/.test(line)),
    2000,
    { what: "the drop's warning" },
  );
  await assert.rejects(
    handlers.get("mig.restore")!(body({ id: 77 }), peer),
    /no migration of job 77 under way here/,
  );
  // An attempt's timer drops that attempt only: a new mig.begin after mig.abort gets its own.
  await handlers.get("mig.begin")!(body(begin), peer);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await handlers.get("mig.abort")!(body({ id: 77 }), peer);
  await handlers.get("mig.begin")!(body(begin), peer);
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(migration.arriving(), 1, "the first attempt's timer left the second alone");
  await retryUntil(() => migration.arriving() === 0, 5000, { what: "the second to go" });
});

Deno.test("migration: a failed page link stops the restore held for it; unclaimed images go", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  const lines: string[] = [];
  // A stand-in for criu (OM_PAGE_SERVER=criu: its page server, not om's receiver): its page
  // server stores what comes and fails (a link that broke), or ends well when it got "ok"; its
  // restore waits at the gate like criu's (opens the FIFO).
  const criu = `${root}/criu`;
  await Deno.writeTextFile(
    criu,
    "#!/bin/sh\ncase $1 in\npage-server) cat > pages-1.img; grep -q ok pages-1.img ;;\n" +
      "restore) exec 3< inventory.img; exec sleep 60 ;;\nesac\n",
    { mode: 0o755 },
  );
  const { handlers } = target(root, {
    criu,
    staleMs: 3000,
    lines,
    env: { [PAGE_SERVER_ENV]: "criu" },
  });
  const dir = `${root}/migrations/77-in`;
  const restores = async () =>
    (await readProcesses("/proc")).filter((p) =>
      p.argv.includes(criu) && p.argv.includes("restore")
    );
  const pages = async (data: string) => {
    const link = newLink();
    const port = await finalRoundPages(handlers, link);
    await retryUntil(async () => (await restores()).length > 0, 5000, {
      what: "the restore to wait at its gate",
    });
    await sendSealed(port, link, new TextEncoder().encode(data));
  };
  // The link breaks mid-dump: the held restore stops at once, the images stay a while.
  await pages("half the pages");
  await retryUntil(async () => (await restores()).length === 0, 2000, {
    what: "the held restore to stop with the failed page server",
  });
  assert.ok(await Deno.stat(`${dir}/pages-1.img`), "the images stay until the stale time");
  await retryUntil(() => Deno.stat(dir).then(() => false, () => true), 5000, {
    what: "the unclaimed images to go",
  });
  // criu's page server failed (exit code 1), or, when it ended before the relay had written
  // everything to it, the relay says the link failed first: a failed link either way. The line
  // is logged once the images are gone: waited for.
  await retryUntil(
    () =>
      lines.some((line) =>
        /job 77: its page server ended \((exit code 1|the page link failed: .+)\)/.test(line)
      ),
    2000,
    { what: `the failed page server logged (${lines.join(" | ")})` },
  );
  // A dump that ended well, then nothing: the restore waits until the images go with it.
  await pages("ok");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.ok((await restores()).length > 0, "the restore waits for mig.begin");
  await retryUntil(() => Deno.stat(dir).then(() => false, () => true), 5000, {
    what: "the unclaimed images to go",
  });
  assert.equal((await restores()).length, 0, "and the restore with them");
  await retryUntil(
    () => lines.some((line) => /job 77: its page server ended \(exit code 0\)/.test(line)),
    2000,
    { what: "the page server's end logged" },
  );
  // A link that broke, then mig.begin: it fails, and takes the images with it at once.
  await pages("cut again");
  await retryUntil(async () => (await restores()).length === 0, 2000, {
    what: "the held restore to stop with the failed page server",
  });
  await assert.rejects(
    handlers.get("mig.begin")!(body(begin), peer),
    /Cannot store the pages of job 77: criu page-server exit code 1/,
  );
  assert.equal(await exists(dir), false, "its images went");
});

Deno.test("migration: om's page receiver stores the pages; a link cut in them fails it", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  const { handlers } = target(root, { staleMs: 3000 });
  const dir = `${root}/migrations/77-in`;
  /** mig.pages, then `before()` (the target's reservation made), then the stream. */
  const send = async (
    stream: Uint8Array,
    reserve?: Record<string, number>,
    before?: () => Promise<void>,
  ) => {
    const link = newLink();
    const reply = await handlers.get("mig.pages")!(
      body({ id: 77, home: 1, user: ROOT, ...link, ...(reserve ? { reserve } : {}) }),
      peer,
    );
    await before?.();
    await sendSealed(JSON.parse(text(reply)).port, link, stream);
  };
  const opened = command(OPEN2, 0, 0, 0n, task(1));
  // All of it, room reserved for task 1 and for a task 5 the dump did not bring: the images are
  // there, task 1's pages image is its reservation cut to its pages, nothing else is left, the
  // log says so.
  let reserved = 0;
  await send(
    concat(
      opened,
      command(ADD_F, PRESENT, 2, 0x1000n, task(1)),
      new Uint8Array(8192).fill(9),
      command(CLOSE, 0, 0, 0n, 0n),
    ),
    { 1: 1 << 20, 5: 1 << 20 },
    async () => {
      const stat = await Deno.stat(`${dir}/reserve-1`);
      assert.ok(stat.blocks! * 512 >= 1 << 20, "the room is taken before the dump");
      reserved = stat.ino!;
    },
  );
  await retryUntil(
    async () => /2 pages in 1 images/.test(await Deno.readTextFile(`${dir}/page-server.log`)),
    5000,
    { what: "the receiver to end" },
  );
  const pages = await Deno.readFile(`${dir}/pages-65537.img`);
  assert.equal(pages.length, 8192, "cut to its pages");
  assert.ok(pages.every((byte) => byte === 9));
  assert.equal((await Deno.stat(`${dir}/pages-65537.img`)).ino, reserved, "the reserved file");
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) => /reserve/.test(n)),
    [],
  );
  // A reservation that is not one is refused.
  for (const reserve of [{ x: 1 }, { 1: -1 }, { 1: 0.5 }, [1]]) {
    await assert.rejects(
      handlers.get("mig.pages")!(
        body({ id: 77, home: 1, user: ROOT, ...newLink(), reserve }),
        peer,
      ),
      /Cannot read the body of mig\.pages/,
      JSON.stringify(reserve),
    );
  }
  // Cut in the pages: mig.begin fails and names what failed, and the images go.
  await send(concat(opened, command(ADD_F, PRESENT, 2, 0x1000n, task(1)), new Uint8Array(10)));
  await assert.rejects(
    handlers.get("mig.begin")!(body(begin), peer),
    /Cannot store the pages of job 77: om's page receiver exit code 1 \(log: .*page-server\.log\)/,
  );
  assert.equal(await exists(dir), false, "its images went");
});

Deno.test("migration: a page stream changed on the way fails the store; nothing is restored", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  // A stand-in criu whose restore waits at the gate like criu's; the pages go to om's receiver.
  const criu = `${root}/criu`;
  await Deno.writeTextFile(
    criu,
    "#!/bin/sh\ncase $1 in\nrestore) exec 3< inventory.img; exec sleep 60 ;;\nesac\nexit 1\n",
    { mode: 0o755 },
  );
  const { handlers } = target(root, { criu, staleMs: 3000 });
  const dir = `${root}/migrations/77-in`;
  const restores = async () =>
    (await readProcesses("/proc")).filter((p) =>
      p.argv.includes(criu) && p.argv.includes("restore")
    );
  for (const action of ["flip", "replay", "drop", "inject", "cutInside"] as const) {
    const link = newLink();
    const port = await finalRoundPages(handlers, link);
    await retryUntil(async () => (await restores()).length > 0, 5000, {
      what: "the restore to wait at its gate",
    });
    // A whole dump's stream, in records of 4 KiB: the man in the middle changes the third.
    const middle = pageProxy(port, {
      direction: "toTarget",
      at: 2,
      action,
    });
    const stream = concat(
      command(OPEN2, 0, 0, 0n, task(1)),
      command(ADD_F, PRESENT, 4, 0x1000n, task(1)),
      new Uint8Array(4 * 4096).fill(9),
      command(CLOSE, 0, 0, 0n, 0n),
    );
    await sendOnLink(middle.port, await sealedStream(link, stream, { chunk: 4096 }));
    await middle.close();
    // The held restore stops at once: those pages will never be whole.
    await retryUntil(async () => (await restores()).length === 0, 5000, {
      what: `${action}: the held restore to stop with the failed page link`,
    });
    const log = await Deno.readTextFile(`${dir}/page-server.log`);
    await assert.rejects(
      handlers.get("mig.begin")!(body(begin), peer),
      new RegExp(
        "Cannot store the pages of job 77: the page link failed: (sealed record [23] did not " +
          "open|the page link from the source ended in the middle of record 2)",
      ),
      action,
    );
    assert.match(log, /^Error: om page link: /m, action);
    assert.equal(await exists(dir), false, `${action}: its images went`);
    await assert.rejects(
      handlers.get("mig.restore")!(body({ id: 77 }), peer),
      /no migration of job 77 under way here/,
      `${action}: nothing to restore`,
    );
  }
});

Deno.test("migration: a new daemon removes what migrations left, and nothing else", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  const lines: string[] = [];
  const { migration } = target(root, { lines });
  assert.equal(migration.sweepLeftovers(), 0, "no migrations/ yet");
  const dir = `${root}/migrations`;
  for (const name of ["12-in", "13-out", "12-in-old"]) {
    await Deno.mkdir(`${dir}/${name}`, { recursive: true });
  }
  await Deno.writeFile(`${dir}/12-in/reserve-1`, new Uint8Array(4096));
  await Deno.writeTextFile(`${dir}/dump-gate`, "#!/bin/sh\n");
  assert.equal(migration.sweepLeftovers(), 2);
  const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  assert.deepEqual(left, ["12-in-old", "dump-gate"]);
  assert.deepEqual(lines, [`info: removed 2 directories that migrations left in ${dir}`]);
});

Deno.test("migration: an OM_PAGE_SERVER that is neither criu nor om is warned of", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  for (
    const [value, warned] of [["crui", true], ["criu", false], ["om", false], [undefined, false]]
  ) {
    const lines: string[] = [];
    target(root, {
      lines,
      env: value === undefined ? {} : { [PAGE_SERVER_ENV]: value as string },
    });
    assert.deepEqual(
      lines,
      warned
        ? [`warning: OM_PAGE_SERVER=${value} is neither criu nor om: om's page receiver is used`]
        : [],
      String(value),
    );
  }
});

Deno.test({
  name: "migration: a target without room for the pages refuses mig.pages, before the freeze",
  ignore: Deno.uid() !== 0, // mount(8)
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "om-migration-" });
    // A node whose state tree has 1 MiB: no room for a job of 8, refused before any is taken.
    const mounted = await execute("mount", ["-t", "tmpfs", "-o", "size=1m", "om-test", root], {});
    assert.equal(mounted.code, 0, mounted.err);
    try {
      const { handlers } = target(root);
      await assert.rejects(
        handlers.get("mig.pages")!(
          body({ id: 77, home: 1, user: ROOT, ...newLink(), reserve: { 1: 8 << 20 } }),
          peer,
        ),
        // The budget (lib/migration/admission.ts): its free space less a sixteenth of its size.
        /^Error: Cannot take job 77: node 2 has 0\.\d MiB left for migrations, and its pages need 8\.0 MiB \(/,
      );
      assert.equal(await exists(`${root}/migrations/77-in`), false, "nothing was made");
      // Room for what fits is taken.
      await handlers.get("mig.pages")!(
        body({ id: 77, home: 1, user: ROOT, ...newLink(), reserve: { 1: 256 << 10 } }),
        peer,
      );
      assert.ok((await Deno.stat(`${root}/migrations/77-in/reserve-1`)).blocks! * 512 >= 256 << 10);
      // The source gives up before any page came: the reservation goes.
      await handlers.get("mig.abort")!(body({ id: 77 }), peer);
      assert.equal(
        await exists(`${root}/migrations/77-in`),
        false,
        "the reservation went with mig.abort",
      );
    } finally {
      await execute("umount", [root], {});
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("migration: mig.status says restored while the restore runs and while it waits", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  // A stand-in for criu restore: 400 ms, then a "job" whose PID goes to the pidfile.
  const criu = `${root}/criu`;
  await Deno.writeTextFile(
    criu,
    "#!/bin/sh\nsleep 0.4\nsleep 60 </dev/null >/dev/null 2>&1 & echo $! > restore.pid\n",
    { mode: 0o755 },
  );
  const { migration, handlers } = target(root, { criu });
  const status = async () =>
    JSON.parse(text(await handlers.get("mig.status")!(body({ id: 77 }), peer))).state;
  assert.equal(await status(), "none");
  await handlers.get("mig.begin")!(body(begin), peer);
  assert.equal(await status(), "none", "taken, not yet restoring");
  const restoring = handlers.get("mig.restore")!(body({ id: 77 }), peer);
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(await status(), "restored", "restoring");
  assert.equal(migration.arriving(), 1);
  assert.ok(JSON.parse(text(await restoring)).ms >= 400);
  assert.equal(await status(), "restored", "restored, stopped, waiting for mig.commit");
  const pid = Number((await Deno.readTextFile(`${root}/migrations/77-in/restore.pid`)).trim());
  await handlers.get("mig.abort")!(body({ id: 77 }), peer);
  assert.equal(await status(), "none");
  assert.equal(migration.arriving(), 0);
  await retryUntil(
    async () => {
      const process = await readProcess("/proc", pid);
      return process === undefined || "ZX".includes(process.state);
    },
    2000,
    { what: "the dropped copy to be killed" },
  );
});

Deno.test("migration: home takes a moved job's output once, and refuses it from a node it does not run on", async () => {
  await using tmp = await tempDir("migration");
  const root = tmp.path;
  const jobs = new JobTable(systemClock);
  const job = jobs.add({ id: 77, home: 1, node: 1, command: ["sleep", "9"] });
  // The home copy runs (its source went on with it): its pipes never drain while it does.
  let drained = new Promise<void>(() => {});
  const deputy = { jobs, drained: () => drained } as unknown as HomeDeputy;
  const migration = new Migration({
    nodeId: 1,
    root,
    deputy,
    logger: createLogger(() => {}, () => false),
    criuBinary: undefined,
    connect: () => Promise.reject(new Error("no other node here")),
    blocked: () => Promise.resolve(false),
    keyed: true,
  });
  const handlers = migration.channelHandlers();
  const node2: Peer = { ...peer, nodeId: 2 };
  const push = (offset: number, data: string) =>
    handlers.get("job.push")!(
      body({ id: 77, fd: 1, offset, data: btoa(data) }),
      node2,
    );
  // Refused at once (not left waiting for a drain that never comes): node 2 then kills its copy.
  await assert.rejects(push(0, "stray"), (error: Error) => {
    assert.equal(error.message, disownedText(77, 2));
    return true;
  });
  await assert.rejects(
    handlers.get("job.exited")!(body({ id: 77, exit: { code: 0 } }), node2),
    new RegExp(disownedText(77, 2)),
  );
  // Recorded on node 3, which cannot be asked (a move that settled as unknown): node 2's copy
  // may be the only one, so it is not disowned.
  job.node = 3;
  await assert.rejects(push(0, "maybe"), (error: Error) => {
    assert.equal(error.message, "job 77 is recorded on node 3, not on node 2");
    assert.ok(!isDisowned(new RemoteError("job.push", error.message, "node 1")));
    return true;
  });
  // Now it runs on node 2: a chunk sent again (its answer was lost) is appended once.
  job.node = 2;
  job.migrations = 1;
  drained = Promise.resolve();
  await push(0, "ab");
  await push(0, "ab");
  await push(1, "bcd");
  await push(4, "e");
  const read = job.output.readNow(0);
  assert.equal(read.chunks.map((c) => new TextDecoder().decode(c.data)).join(""), "abcde");
  assert.equal(job.output.end, 5);
  await handlers.get("job.exited")!(body({ id: 77, exit: { code: 3 } }), node2);
  await handlers.get("job.exited")!(body({ id: 77, exit: { code: 3 } }), node2);
  assert.deepEqual(job.output.exit, { code: 3 });
  // A later job with the same PID, moved to node 2 too, starts from offset 0 again.
  jobs.remove(77);
  const next = jobs.add({ id: 77, home: 1, node: 2, command: ["sleep", "9"] });
  next.migrations = 1;
  await push(0, "xy");
  assert.equal(next.output.end, 2);
});
