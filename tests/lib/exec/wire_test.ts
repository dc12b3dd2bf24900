import assert from "node:assert/strict";
import { jsonBytes } from "../../../lib/base/json.ts";
import {
  argvProblem,
  type ExecResult,
  MAX_ARGS,
  notRun,
  OUTPUT_LIMIT,
  overallStatus,
  readAskRequest,
  readResult,
  readRunRequest,
  resultJson,
  statusOf,
} from "../../../lib/exec/wire.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const ran: ExecResult = {
  node: 3,
  outcome: { kind: "exited", code: 2 },
  stdout: bytes("hi\n"),
  stderr: new Uint8Array([0xff, 0x00]),
  dropped: { stdout: 5, stderr: 0 },
  ms: 12,
};

Deno.test("wire: a result's JSON, exactly, and back", () => {
  const json = JSON.stringify(resultJson(ran));
  assert.equal(
    json,
    '{"node":3,"outcome":{"kind":"exited","code":2},"stdout":"aGkK","stderr":"/wA=",' +
      '"dropped":{"stdout":5,"stderr":0},"ms":12}',
  );
  assert.deepEqual(readResult(bytes(json)), ran);
});

Deno.test("wire: every outcome reads back", () => {
  const outcomes = [
    { kind: "exited", code: 0 },
    { kind: "signal", signal: "SIGKILL", code: 137 },
    { kind: "timeout", afterMs: 1500 },
    { kind: "unstartable", code: 127, reason: "x: command not found" },
    { kind: "refused", reason: "no" },
    { kind: "down", reason: "it is not in the cluster map" },
    { kind: "unreachable", reason: "connection refused" },
  ] as const;
  for (const outcome of outcomes) {
    const result = { ...notRun(4, { kind: "refused", reason: "" }), outcome };
    assert.deepEqual(readResult(jsonBytes(resultJson(result))).outcome, outcome);
  }
});

Deno.test("wire: a result from another node is checked, field by field", () => {
  const good = resultJson(ran);
  const bad: [unknown, RegExp][] = [
    ["not json", /not JSON/],
    [null, /not an object/],
    [{ ...good, node: 0 }, /fields missing/],
    [{ ...good, node: 70000 }, /fields missing/],
    [{ ...good, outcome: { kind: "exited", code: 256 } }, /fields missing/],
    [{ ...good, outcome: { kind: "exited" } }, /fields missing/],
    [{ ...good, outcome: { kind: "signal", signal: "KILL", code: 137 } }, /fields missing/],
    [{ ...good, outcome: { kind: "unstartable", code: 1, reason: "" } }, /fields missing/],
    [{ ...good, outcome: { kind: "refused", reason: "x".repeat(2001) } }, /fields missing/],
    [{ ...good, outcome: { kind: "timeout", afterMs: 0 } }, /fields missing/],
    [{ ...good, outcome: { kind: "exploded" } }, /fields missing/],
    [{ ...good, stdout: 7 }, /fields missing/],
    [{ ...good, dropped: { stdout: -1, stderr: 0 } }, /fields missing/],
    [{ ...good, ms: 1.5 }, /fields missing/],
    [{ ...good, stdout: "!!!!" }, /not base64/],
    [{ ...good, stdout: "A".repeat(Math.ceil(OUTPUT_LIMIT / 3) * 4 + 12) }, /more than 1048576/],
    [
      { ...good, stdout: btoa("x".repeat(OUTPUT_LIMIT)), stderr: btoa("yy") },
      /more than 1048576 bytes of output/,
    ],
  ];
  for (const [value, message] of bad) {
    const body = typeof value === "string" ? bytes(value) : jsonBytes(value);
    assert.throws(() => readResult(body, "exec.ask"), (error: Error) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /^Cannot read the reply to exec\.ask: /);
      assert.match(error.message, message);
      return true;
    }, JSON.stringify(value)?.slice(0, 100));
  }
  // Exactly the limit is fine.
  const full = { ...good, stdout: btoa("x".repeat(OUTPUT_LIMIT - 2)), stderr: btoa("yy") };
  assert.equal(readResult(jsonBytes(full)).stdout.length, OUTPUT_LIMIT - 2);
});

Deno.test("wire: exec.run and exec.ask bodies", () => {
  const run = { argv: ["uname", "-a"], timeoutMs: 5000, uid: 0, user: "root" };
  assert.deepEqual(readRunRequest(jsonBytes(run)), run);
  assert.equal(
    JSON.stringify(run),
    '{"argv":["uname","-a"],"timeoutMs":5000,"uid":0,"user":"root"}',
  );
  const ask = { node: 3, argv: ["true"], timeoutMs: 1 };
  assert.deepEqual(readAskRequest(jsonBytes(ask)), ask);
  for (
    const body of [
      { ...run, timeoutMs: 0 },
      { ...run, timeoutMs: 86_400_001 },
      { ...run, uid: -1 },
      { ...run, user: 3 },
      { ...run, user: "root\n13:37:00.000 omdiscd: info: exec: FORGED" },
      { ...run, user: "" },
      { ...run, user: "a".repeat(40) },
      { ...run, argv: [] },
      { ...run, argv: "uname" },
      { ...run, argv: ["a", 1] },
      { ...run, argv: ["a\0b"] },
    ]
  ) {
    assert.throws(
      () => readRunRequest(jsonBytes(body)),
      /^TypeError: Cannot read the body of exec\.run/,
    );
  }
  for (const body of [{ ...ask, node: 0 }, { ...ask, node: 65536 }, { ...ask, argv: [] }]) {
    assert.throws(
      () => readAskRequest(jsonBytes(body)),
      /^TypeError: Cannot read the body of exec\.ask/,
    );
  }
  assert.match(argvProblem(Array(MAX_ARGS + 1).fill("x"))!, /more than 4096 words/);
  assert.match(argvProblem(["x".repeat(128 * 1024 + 1)])!, /more than 131072 bytes/);
});

Deno.test("wire: each outcome's exit status, and the largest of the nodes'", () => {
  assert.equal(statusOf({ kind: "exited", code: 0 }), 0);
  assert.equal(statusOf({ kind: "exited", code: 3 }), 3);
  assert.equal(statusOf({ kind: "signal", signal: "SIGTERM", code: 143 }), 143);
  assert.equal(statusOf({ kind: "timeout", afterMs: 1000 }), 124);
  assert.equal(statusOf({ kind: "unstartable", code: 127, reason: "" }), 127);
  assert.equal(statusOf({ kind: "refused", reason: "" }), 255);
  assert.equal(statusOf({ kind: "down", reason: "" }), 255);
  assert.equal(statusOf({ kind: "unreachable", reason: "" }), 255);
  const exited = (node: number, code: number): ExecResult => ({
    ...notRun(node, { kind: "refused", reason: "" }),
    outcome: { kind: "exited", code },
  });
  assert.equal(overallStatus([]), 0);
  assert.equal(overallStatus([exited(1, 0), exited(2, 0)]), 0);
  assert.equal(overallStatus([exited(1, 0), exited(2, 3), exited(3, 1)]), 3);
  // A node that could not run it makes the status non-zero whatever the others did.
  assert.equal(overallStatus([exited(1, 0), notRun(2, { kind: "down", reason: "gone" })]), 255);
  assert.equal(text(notRun(2, { kind: "down", reason: "gone" }).stdout), "");
  assert.equal(notRun(2, { kind: "down", reason: "x".repeat(5000) }).outcome.kind, "down");
  assert.equal(
    (notRun(2, { kind: "down", reason: "x".repeat(5000) }).outcome as { reason: string }).reason
      .length,
    2000,
  );
});
