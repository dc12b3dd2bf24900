/** lib/migration/errors.ts: a failed step and CRIU's log travel as fields of an error reply. */
import assert from "node:assert/strict";
import { readErrorDetails, RemoteError } from "../../../lib/channel/client.ts";
import { errorDetails } from "../../../lib/channel/server.ts";
import { CriuError } from "../../../lib/criu/criuerror.ts";
import { MigrationError } from "../../../lib/migration/errors.ts";

/** The error `error` becomes once it has crossed the channel (server's reply, client's read). */
function acrossTheWire(error: Error): RemoteError {
  return new RemoteError(
    "mig.move",
    error.message,
    "node 2",
    readErrorDetails(errorDetails(error)),
  );
}

Deno.test("migration errors: the failed step and the log are fields of the reply, not its text", () => {
  const sent = new MigrationError(
    "Cannot migrate job 5 to node 3: dump failed on node 2: criu said no; the job goes on at node 2",
    "dump",
    "/run/om/migrations/5-out/dump.log",
  );
  assert.equal(
    new TextDecoder().decode(errorDetails(sent)),
    '{"step":"dump","logPath":"/run/om/migrations/5-out/dump.log"}',
  );
  const got = MigrationError.from(acrossTheWire(sent));
  assert.equal(got.message, sent.message);
  assert.equal(got.step, "dump");
  assert.equal(got.logPath, "/run/om/migrations/5-out/dump.log");
  // The step is the field's, whatever the text says.
  const plain = new MigrationError("x: target check failed on node 3: blocks guests", undefined);
  assert.equal(MigrationError.from(acrossTheWire(plain)).step, undefined);
  const renamed = new MigrationError("it did not work", "target check");
  assert.equal(MigrationError.from(acrossTheWire(renamed)).step, "target check");
});

Deno.test("migration errors: a reply's details are bounded to known steps and strings", () => {
  // A step no migration has is dropped; fields that are not strings are not read.
  const bogus = new RemoteError("mig.move", "no", "node 2", { step: "lunch", logPath: "/l" });
  assert.equal(MigrationError.from(bogus).step, undefined);
  assert.equal(MigrationError.from(bogus).logPath, "/l");
  const enc = (text: string) => new TextEncoder().encode(text);
  assert.deepEqual(readErrorDetails(enc('{"step":1,"logPath":"/x"}')), { logPath: "/x" });
  assert.deepEqual(readErrorDetails(enc("[1,2]")), {});
  assert.deepEqual(readErrorDetails(enc("not json")), {});
  assert.deepEqual(readErrorDetails(new Uint8Array(0)), {});
  // An error without details sends an empty body, as before this field existed.
  assert.equal(errorDetails(new Error("plain")).length, 0);
  // CRIU's own failure on a target sends its log, for the source to name.
  const criu = new CriuError("restore failed", { step: "restore", logPath: "/r.log" });
  assert.deepEqual(readErrorDetails(errorDetails(criu)), { logPath: "/r.log" });
  // A failure that is not an error reply keeps its text and has no step.
  assert.equal(MigrationError.from(new Error("connection reset")).step, undefined);
});
