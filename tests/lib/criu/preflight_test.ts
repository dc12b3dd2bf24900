/** lib/criu/preflight.ts: reading criu's version, and a CRIU that cannot run. */
import assert from "node:assert/strict";
import { CriuError } from "../../../lib/criu/criuerror.ts";
import { parseVersion, preflight } from "../../../lib/criu/preflight.ts";
import type { Criu } from "../../../lib/criu/run.ts";

Deno.test("criu: parseVersion reads criu --version", () => {
  assert.deepEqual(parseVersion("Version: 4.1.1\n"), {
    major: 4,
    minor: 1,
    patch: 1,
    text: "4.1.1",
  });
  assert.deepEqual(parseVersion("Version: 3.17\nGitID: v3.17\n"), {
    major: 3,
    minor: 17,
    patch: 0,
    text: "3.17",
  });
  assert.equal(parseVersion("criu: command not found"), undefined);
});

Deno.test("criu: a missing binary is a CriuError with a hint", async () => {
  const criu: Criu = { binary: "/nonexistent/criu", now: () => performance.now() };
  const error = await preflight(criu).then(() => undefined, (e) => e);
  assert.ok(error instanceof CriuError);
  assert.equal(error.step, "check");
  assert.equal(error.exitCode, undefined);
  assert.match(error.hint ?? "", /OM_CRIU/);
});
