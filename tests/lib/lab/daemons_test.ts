import assert from "node:assert/strict";
import { isAlive } from "../../../lib/lab/daemons.ts";
import { readStat } from "../../../lib/base/procs.ts";

Deno.test("isAlive: the same pid and start time, until the process has ended", async () => {
  const child = new Deno.Command("sleep", { args: ["30"], stdout: "null" }).spawn();
  let ended = false;
  try {
    const startTime = (await readStat(child.pid)).startTime!;
    const daemon = { pid: child.pid, startTime, argv: ["sleep", "30"], log: "/dev/null" };
    assert.equal(await isAlive(daemon), true);
    assert.equal(await isAlive({ ...daemon, startTime: startTime - 1 }), false, "a reused pid");
    child.kill("SIGKILL");
    await child.status;
    ended = true;
    assert.equal(await isAlive(daemon), false);
  } finally {
    if (!ended) {
      child.kill("SIGKILL");
      await child.status;
    }
  }
});
