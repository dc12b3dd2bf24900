/** lib/criu/args.ts: the argv of each CRIU command, checked without CRIU. */
import assert from "node:assert/strict";
import { checkArgs, dumpArgs, pageServerArgs, restoreArgs } from "../../../lib/criu/args.ts";

Deno.test("criu: checkArgs is the whole check, or one feature", () => {
  assert.deepEqual(checkArgs(), ["check"]);
  assert.deepEqual(checkArgs("mem_dirty_track"), ["check", "--feature", "mem_dirty_track"]);
});

Deno.test("criu: dumpArgs for a plain stop-and-copy dump", () => {
  assert.deepEqual(dumpArgs({ pid: 42, imagesDir: "/img", logFile: "/img/dump.log" }), [
    "dump",
    "--tree",
    "42",
    "--images-dir",
    "/img",
    "--log-file",
    "/img/dump.log",
    "-v4",
  ]);
});

Deno.test("criu: dumpArgs with every option, and as a pre-dump", () => {
  assert.deepEqual(
    dumpArgs({
      pid: 7,
      imagesDir: "/img/2",
      logFile: "/img/2/dump.log",
      leaveRunning: true,
      trackMem: true,
      prevImagesDir: "../1",
      shellJob: true,
      extUnixSk: true,
      tcpEstablished: true,
      fileLocks: true,
      pageServer: { address: "10.0.0.2", port: 27 },
      verbosity: 2,
    }, "pre-dump"),
    [
      "pre-dump",
      "--tree",
      "7",
      "--images-dir",
      "/img/2",
      "--log-file",
      "/img/2/dump.log",
      "-v2",
      "--leave-running",
      "--track-mem",
      "--prev-images-dir",
      "../1",
      "--shell-job",
      "--ext-unix-sk",
      "--tcp-established",
      "--file-locks",
      "--page-server",
      "--address",
      "10.0.0.2",
      "--port",
      "27",
    ],
  );
  assert.deepEqual(
    dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/l", unprivileged: true, ownMounts: true })
      .slice(8),
    ["--unprivileged", "--external", "mnt[]"],
  );
  const stopped = dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/i/d.log", leaveStopped: true });
  assert.equal(stopped.at(-1), "--leave-stopped");
  assert.throws(
    () =>
      dumpArgs({ pid: 7, imagesDir: "/i", logFile: "/l", leaveRunning: true, leaveStopped: true }),
    /both running and stopped/,
  );
});

Deno.test("criu: dumpArgs and pageServerArgs over a connected socket (--ps-socket)", () => {
  assert.deepEqual(
    dumpArgs({ pid: 9, imagesDir: "/o", logFile: "/o/dump.log", psSocket: 0 }),
    ["dump", "--tree", "9", "--images-dir", "/o", "--log-file", "/o/dump.log", "-v4"]
      .concat(["--page-server", "--ps-socket", "0"]),
  );
  assert.throws(
    () =>
      dumpArgs({
        pid: 9,
        imagesDir: "/o",
        logFile: "/l",
        psSocket: 0,
        pageServer: { address: "10.0.0.2", port: 27 },
      }),
    /an address or a socket, not both/,
  );
  assert.throws(
    () => dumpArgs({ pid: 9, imagesDir: "/o", logFile: "/l", psSocket: -1 }),
    RangeError,
  );
  assert.deepEqual(
    pageServerArgs({ imagesDir: "/i", logFile: "/i/page-server.log", psSocket: 0 }),
    ["page-server", "--images-dir", "/i", "--log-file", "/i/page-server.log", "-v4"]
      .concat(["--ps-socket", "0"]),
  );
  assert.throws(
    () => pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 1.5 }),
    RangeError,
  );
  assert.deepEqual(
    pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 0, prevImagesDir: "pre-1" }).slice(
      -2,
    ),
    ["--prev-images-dir", "pre-1"],
  );
  assert.throws(
    () => pageServerArgs({ imagesDir: "/i", logFile: "/l", psSocket: 0, prevImagesDir: "/abs" }),
    /must be relative to the images dir/,
  );
});

Deno.test("criu: dumpArgs refuses a bad pid and an absolute previous images dir", () => {
  assert.throws(() => dumpArgs({ pid: 0, imagesDir: "/i", logFile: "/l" }), RangeError);
  assert.throws(() => dumpArgs({ pid: 1.5, imagesDir: "/i", logFile: "/l" }), RangeError);
  assert.throws(
    () => dumpArgs({ pid: 3, imagesDir: "/i", logFile: "/l", prevImagesDir: "/old" }),
    /must be relative to the images dir/,
  );
});

Deno.test("criu: restoreArgs is detached by default and maps inherited descriptors", () => {
  assert.deepEqual(
    restoreArgs({
      imagesDir: "/img",
      logFile: "/img/restore.log",
      pidfile: "/img/pid",
      inheritFds: [{ fd: 1, key: "pipe:[4711]" }, { fd: 2, key: "pipe:[4712]" }],
    }),
    [
      "restore",
      "--images-dir",
      "/img",
      "--log-file",
      "/img/restore.log",
      "-v4",
      "--pidfile",
      "/img/pid",
      "--restore-detached",
      "--inherit-fd",
      "fd[1]:pipe:[4711]",
      "--inherit-fd",
      "fd[2]:pipe:[4712]",
    ],
  );
  const attached = restoreArgs({
    imagesDir: "/i",
    logFile: "/l",
    pidfile: "/p",
    restoreDetached: false,
    restoreSibling: true,
    shellJob: true,
  });
  assert.ok(!attached.includes("--restore-detached"));
  assert.ok(!attached.includes("--leave-stopped"));
  assert.deepEqual(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", leaveStopped: true }).slice(-2),
    ["--restore-detached", "--leave-stopped"],
  );
  assert.ok(attached.includes("--restore-sibling") && attached.includes("--shell-job"));
  assert.deepEqual(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", ownMounts: true }).slice(-4),
    ["--root", "/", "--external", "mnt[]"],
  );
  assert.equal(
    restoreArgs({ imagesDir: "/i", logFile: "/l", pidfile: "/p", autoDedup: true }).at(-1),
    "--auto-dedup",
  );
  assert.throws(
    () =>
      restoreArgs({
        imagesDir: "/i",
        logFile: "/l",
        pidfile: "/p",
        inheritFds: [{ fd: -1, key: "x" }],
      }),
    RangeError,
  );
});
