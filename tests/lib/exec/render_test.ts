import assert from "node:assert/strict";
import { gatherResults } from "../../../lib/exec/gather.ts";
import {
  describeOutcome,
  outputLines,
  renderGroups,
  renderResult,
  showLine,
} from "../../../lib/exec/render.ts";
import { type ExecResult, notRun } from "../../../lib/exec/wire.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function ran(node: number, stdout: string, stderr = "", code = 0): ExecResult {
  return {
    node,
    outcome: { kind: "exited", code },
    stdout: bytes(stdout),
    stderr: bytes(stderr),
    dropped: { stdout: 0, stderr: 0 },
    ms: 1,
  };
}

Deno.test("render: each line marked with its node, stderr and the end on stderr", () => {
  assert.deepEqual(renderResult(ran(3, "one\ntwo\n")), {
    out: "node 3: one\nnode 3: two\n",
    err: "",
  });
  assert.deepEqual(renderResult(ran(3, "no newline")), { out: "node 3: no newline\n", err: "" });
  assert.deepEqual(renderResult(ran(3, "\n\n")), { out: "node 3: \nnode 3: \n", err: "" });
  assert.deepEqual(renderResult(ran(12, "", "oops\n", 2)), {
    out: "",
    err: "node 12: oops\nnode 12: exit status 2\n",
  });
  assert.deepEqual(
    renderResult(notRun(4, { kind: "down", reason: "it is not in the cluster map" })),
    {
      out: "",
      err: "node 4: down: it is not in the cluster map\n",
    },
  );
});

Deno.test("render: binary and control characters cannot garble the terminal or forge a line", () => {
  assert.equal(showLine("a\tb"), "a\tb");
  assert.equal(showLine("\x1b[2J\rnode 9: forged"), "\\x1b[2J\\x0dnode 9: forged");
  assert.equal(showLine("\x00\x7f\x85"), "\\x00\\x7f\\x85");
  assert.deepEqual(outputLines(new Uint8Array([0x61, 0xff, 0xfe, 0x0a, 0x62])), [
    "a\ufffd\ufffd",
    "b",
  ]);
  const shown = renderResult({ ...ran(2, ""), stdout: new Uint8Array([0, 1, 2, 10, 0x1b]) });
  assert.equal(shown.out, "node 2: \\x00\\x01\\x02\nnode 2: \\x1b\n");
});

Deno.test("render: output cut at the limit says so, in the stream that was cut", () => {
  const cut = { ...ran(5, "first\n", "e\n"), dropped: { stdout: 4096, stderr: 7 } };
  assert.deepEqual(renderResult(cut), {
    out: "node 5: first\n" +
      "node 5: [om exec: output cut at 1 MiB per node: 4096 more bytes of stdout dropped]\n",
    err: "node 5: e\n" +
      "node 5: [om exec: output cut at 1 MiB per node: 7 more bytes of stderr dropped]\n",
  });
});

Deno.test("render: how each outcome is said", () => {
  assert.equal(describeOutcome({ kind: "exited", code: 0 }), undefined);
  assert.equal(describeOutcome({ kind: "exited", code: 1 }), "exit status 1");
  assert.equal(
    describeOutcome({ kind: "signal", signal: "SIGSEGV", code: 139 }),
    "killed by SIGSEGV (status 139)",
  );
  assert.equal(
    describeOutcome({ kind: "timeout", afterMs: 1500 }),
    "timed out after 1.5 s: killed (status 124)",
  );
  assert.equal(
    describeOutcome({ kind: "unstartable", code: 127, reason: "frob: command not found" }),
    "frob: command not found (status 127)",
  );
  assert.equal(describeOutcome({ kind: "refused", reason: "no" }), "refused: no");
  assert.equal(describeOutcome({ kind: "unreachable", reason: "x" }), "unreachable: x");
});

Deno.test("render: -b gathers under a header, as clush -b", () => {
  const shown = renderGroups(gatherResults([
    ran(1, "Linux\n"),
    ran(2, "Linux\n"),
    ran(3, "Linux\n"),
    ran(4, "", "no such file\n", 2),
    notRun(6, { kind: "down", reason: "it is not in the cluster map" }),
  ]));
  assert.equal(
    shown.out,
    [
      "---------------",
      "node 1-3 (3)",
      "---------------",
      "Linux",
      "---------------",
      "node 4 (1): exit status 2",
      "---------------",
      "---------------",
      "node 6 (1): down: it is not in the cluster map",
      "---------------",
      "",
    ].join("\n"),
  );
  assert.equal(shown.err, "node 4: no such file\n");
});
