import assert from "node:assert/strict";
import { allows, nameProblem, patternProblem, refusal } from "../../../lib/exec/allow.ts";

Deno.test("allow: nothing runs with no pattern; * runs every name and path", () => {
  assert.equal(allows([], "uptime"), false);
  assert.equal(allows([], "/bin/true"), false);
  assert.equal(allows(["*"], "uptime"), true);
  assert.equal(allows(["*"], "/usr/local/bin/backup"), true);
});

Deno.test("allow: a bare pattern matches bare names only, never a path's basename", () => {
  const patterns = ["uptime", "mosctl*", "df?"];
  assert.equal(allows(patterns, "uptime"), true);
  assert.equal(allows(patterns, "uptimes"), false);
  assert.equal(allows(patterns, "mosctl"), true);
  assert.equal(allows(patterns, "mosctl-status"), true);
  assert.equal(allows(patterns, "dfx"), true);
  assert.equal(allows(patterns, "df"), false);
  // The basename is uptime, but it is somebody's file in /tmp: not allowed.
  assert.equal(allows(patterns, "/tmp/x/uptime"), false);
  assert.equal(allows(patterns, "/usr/bin/uptime"), false);
});

Deno.test("allow: a path pattern matches plain absolute paths, * and ? not crossing a /", () => {
  const patterns = ["/usr/local/bin/*", "/opt/?/run"];
  assert.equal(allows(patterns, "/usr/local/bin/backup"), true);
  assert.equal(allows(patterns, "/usr/local/bin/sub/backup"), false, "* does not cross /");
  assert.equal(allows(patterns, "/opt/a/run"), true);
  assert.equal(allows(patterns, "/opt/ab/run"), false);
  assert.equal(allows(patterns, "backup"), false, "a bare name is not a path");
  // Walking out of the allowed directory, or a path that is not plain.
  for (const name of ["/usr/local/bin/../../../tmp/x", "/usr/local/bin/./x", "//usr/local/bin/x"]) {
    assert.equal(allows(patterns, name), false, name);
    assert.equal(allows(["*"], name), false, `${name} is refused even with *`);
  }
  // Regular-expression characters in a pattern are plain characters.
  assert.equal(allows(["a.b", "c+"], "a.b"), true);
  assert.equal(allows(["a.b", "c+"], "axb"), false);
  assert.equal(allows(["a.b", "c+"], "cc"), false);
});

Deno.test("allow: names that never run, patterns that are not patterns", () => {
  assert.equal(nameProblem("uptime"), undefined);
  assert.equal(nameProblem("/bin/true"), undefined);
  assert.match(nameProblem("")!, /empty/);
  assert.match(nameProblem("./x")!, /must be absolute/);
  assert.match(nameProblem("bin/x")!, /must be absolute/);
  assert.match(nameProblem("/bin/")!, /plain/);
  assert.match(nameProblem("a\0b")!, /NUL/);
  assert.equal(allows(["*"], "./x"), false);
  assert.equal(patternProblem("*"), undefined);
  assert.equal(patternProblem("/usr/bin/*"), undefined);
  assert.match(patternProblem("usr/bin/*")!, /absolute path/);
  assert.match(patternProblem("up time")!, /blank/);
  assert.match(patternProblem("")!, /empty/);
  // A bad pattern in the list allows nothing (the configuration refuses it anyway).
  assert.equal(allows(["usr/*"], "usr/x"), false);
});

Deno.test("allow: the refusal says why, the same words on every node", () => {
  assert.equal(refusal(["*"], "uptime"), undefined);
  assert.equal(
    refusal([], "uptime"),
    'Cannot run "uptime": om exec is off on this node (exec_allow is empty; set exec_allow in ' +
      "its om.conf, OM_EXEC_ALLOW or --exec-allow: names, paths, * for all)",
  );
  assert.equal(
    refusal(["uname", "df"], "rm"),
    'Cannot run "rm": exec_allow on this node does not allow it (exec_allow = uname, df)',
  );
  assert.equal(
    refusal(["*"], "../x"),
    'Cannot run "../x": a path must be absolute (a bare name runs from the PATH)',
  );
});

Deno.test("allow: every character but * and ? stands for itself (-, ., +, [, $...)", () => {
  const patterns = ["ssh-keygen", "apt-get", "/usr/bin/x-y", "g++", "a.b", "[x]", "$HOME", "c^d"];
  for (
    const name of ["ssh-keygen", "apt-get", "/usr/bin/x-y", "g++", "a.b", "[x]", "$HOME", "c^d"]
  ) {
    assert.equal(allows(patterns, name), true, name);
  }
  for (const name of ["sshxkeygen", "aptget", "/usr/bin/xy", "gg", "axb", "x", "HOME", "cd"]) {
    assert.equal(allows(patterns, name), false, name);
  }
  assert.equal(refusal(["uptime", "ssh-keygen"], "ssh-keygen"), undefined);
  assert.match(refusal(["uptime", "ssh-keygen"], "ls")!, /does not allow it/);
});
