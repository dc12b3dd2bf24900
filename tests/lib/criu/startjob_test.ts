/** lib/criu/startjob.ts: the argv that starts a job CRIU can move, and what it closes. */
import assert from "node:assert/strict";
import { CLOSE_FDS, DROP_NSFS, startJobArgs } from "../../../lib/criu/startjob.ts";

Deno.test("criu: startJobArgs makes the command PID 1 of its own namespace and session", () => {
  assert.deepEqual(startJobArgs(["sh", "-c", "echo hi"]), [
    "perl",
    "-e",
    CLOSE_FDS,
    "--",
    "unshare",
    "--pid",
    "--fork",
    "--",
    "setsid",
    "--",
    "sh",
    "-c",
    "echo hi",
  ]);
  assert.deepEqual(startJobArgs(["id"], { ownMounts: true }).slice(4), [
    "unshare",
    "--pid",
    "--fork",
    "--mount",
    "--mount-proc",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    DROP_NSFS,
    "om-job",
    "setsid",
    "--",
    "id",
  ]);
  assert.throws(() => startJobArgs([]), RangeError);
});

Deno.test("criu: a job starts with descriptors 0, 1 and 2 only, whatever its starter held", async () => {
  // sh opens 7 and 9 and execs the rest, which lists the descriptors of the shell at its end.
  const fds = async (...prefix: string[]) => {
    const argv = ["-c", 'exec 7</dev/null 9>/dev/null; exec "$@"', "sh", ...prefix];
    argv.push("sh", "-c", "ls /proc/$$/fd");
    const out = await new Deno.Command("sh", { args: argv, stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l).sort();
  };
  const held = await fds();
  assert.ok(held.includes("7") && held.includes("9"), `without it: ${held}`);
  assert.deepEqual(await fds("perl", "-e", CLOSE_FDS, "--"), ["0", "1", "2"]);
});
