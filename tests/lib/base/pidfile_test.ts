/** lib/base/pidfile.ts. */
import assert from "node:assert/strict";
import { acquirePidFile, type AlreadyRunningError } from "../../../lib/base/pidfile.ts";

Deno.test("pidfile: a second holder is refused with the first one's pid; release frees it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/omdiscd.pid`;
    const first = acquirePidFile(path, 4242);
    assert.equal(await Deno.readTextFile(path), "4242\n");
    assert.throws(() => acquirePidFile(path, 1), (e: AlreadyRunningError) => {
      assert.equal(e.pid, 4242);
      assert.match(e.message, /another om discover is running \(pid 4242\)/);
      return true;
    });
    first.release();
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    acquirePidFile(path, 7).release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
