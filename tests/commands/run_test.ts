/**
 * `om run` and the runners in-process, up to the daemon: usage errors exit 2 before anything
 * is started, help answers, and without a daemon they fail with 125. The jobs themselves run in
 * tests/integration/run_test.ts and place_test.ts.
 */
import assert from "node:assert/strict";
import { COMMANDS, findCommand } from "../../commands/index.ts";
import * as run from "../../commands/run.ts";
import { runner, RUNNER_NAMES } from "../../commands/runners.ts";
import { parse } from "../../lib/cli/parser.ts";
import { invoke, sandbox } from "../tools/sandbox.ts";

Deno.test("run: the runners are in the command table, each with its link", async () => {
  for (const name of RUNNER_NAMES) {
    const found = findCommand(name);
    assert.equal(found?.name, name);
    assert.deepEqual(found?.links, [name]);
    const module = await found!.load();
    assert.equal(module.spec.name, name);
  }
  assert.deepEqual(
    COMMANDS.map((c) => c.name).filter((n) => RUNNER_NAMES.includes(n)),
    ["nomig", "runhome", "runon", "cpujob", "iojob", "nodecay", "slowdecay", "fastdecay"],
  );
});

Deno.test("run: -h is home, --help is help; help before the command only", () => {
  assert.equal(parse(run.spec, ["-h", "ls"]).help, false);
  assert.equal(parse(run.spec, ["-2", "--help"]).help, true);
  assert.equal(parse(run.spec, ["ls", "--help"]).help, false);
  assert.deepEqual(parse(run.spec, ["-j2-3", "sh", "-c", "x"]).args, ["-j2-3", "sh", "-c", "x"]);
});

Deno.test("run: usage errors exit 2, help exits 0, no daemon exits 125", async () => {
  const box = await sandbox("run");
  try {
    const bad = await invoke(run, ["-j", "2-x", "true"], box.env);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /^om run: Cannot use node list "2-x": "2-x" is not a node id/);
    assert.match(bad.err, /Try 'om run --help'/);
    assert.equal((await invoke(run, ["-q", "true"], box.env)).code, 2);
    assert.equal((await invoke(run, [], box.env)).code, 2);
    const help = await invoke(run, ["--help"], box.env);
    assert.equal(help.code, 0);
    assert.match(help.out, /-j LIST/);
    assert.match((await invoke(run, ["-2", "-j", "2", "--help"], box.env)).out, /^om run:/);
    const none = await invoke(run, ["-2", "true"], box.env);
    assert.equal(none.code, 125);
    assert.match(none.err, /Cannot reach om discover/);

    const runon = runner("runon");
    const noNode = await invoke(runon, ["x", "true"], box.env);
    assert.equal(noNode.code, 2);
    assert.match(noNode.err, /^om runon: Cannot run on "x": not a node id/);
    assert.equal((await invoke(runon, ["3"], box.env)).code, 2);
    assert.equal((await invoke(runon, [], box.env)).code, 2);
    assert.match((await invoke(runon, ["--help"], box.env)).out, /om runon .*NODE/);
    const nomig = runner("nomig");
    const extra = await invoke(nomig, ["-l", "true"], box.env);
    assert.equal(extra.code, 2);
    assert.match(extra.err, /this runner takes only --root/);
    assert.equal((await invoke(nomig, ["-h"], box.env)).code, 0);
    assert.equal((await invoke(nomig, ["true"], box.env)).code, 125);
  } finally {
    await box.cleanup();
  }
});
