/** lib/criu/criuerror.ts: the hints and the tail of a CRIU log. */
import assert from "node:assert/strict";
import { hintFor, logTail } from "../../../lib/criu/criuerror.ts";

Deno.test("criu: hintFor recognises the failures met on these machines", () => {
  const log = [
    "(00.02) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted",
    "(00.03) Error (criu/cr-restore.c:1480): Can't fork for PID 4711: File exists",
  ].join("\n");
  assert.match(hintFor(log) ?? "", /own PID namespace/);
  assert.match(hintFor("Error (x): Unexpected rt vDSO area bounds") ?? "", /too old/);
  assert.match(
    hintFor("Error (mount.c): Can't lookup mount=42 for fd=0 path=/dev/null") ?? "",
    /opened outside its own mount namespace/,
  );
  assert.match(
    hintFor(
      "Error (criu/mount-v2.c:319): mnt-v2: Failed to open_tree /run/netns/x/: Not a directory\n" +
        "Error (criu/files.c:10): inherit fd fd[1]",
    ) ?? "",
    /each of its mounts here too/,
  );
  assert.match(hintFor("Error (parasite): Can't get /proc fd") ?? "", /\/proc of its own/);
  // The harmless rlimit warning alone is not taken for "needs root".
  assert.equal(hintFor(log.split("\n")[0]), undefined);
  assert.deepEqual(logTail(log + "\n\nlast\n", 2), [log.split("\n")[1], "last"]);
});
