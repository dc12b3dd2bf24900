/**
 * lib/migration.ts without nodes: the dump rounds (stop-and-copy, or pre-copy where the kernel
 * tracks dirty memory: this machine's does not, so pre-copy is tested here for its plan and argv
 * only). The restore waiter is tested in restore_test.ts.
 */
import assert from "node:assert/strict";
import { dumpRounds, roundArgs } from "../../lib/migration.ts";

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
