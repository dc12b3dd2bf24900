/** `om mon`'s one-screen forms, in-process: --once, output that is not a terminal, errors. */
import assert from "node:assert/strict";
import { parse } from "../../lib/cli/parser.ts";
import { captureContext } from "../../lib/cli/context.ts";
import { NO_NODES } from "../../lib/views/mon.ts";
import { run, spec } from "../../commands/mon.ts";
import { sandbox } from "../tools/monbox.ts";

/** Runs mon in-process (output is not a terminal, so one screen). */
async function mon(argv: string[], env: Record<string, string>) {
  const ctx = captureContext(env);
  const code = await run(parse(spec, argv), ctx);
  return { code, out: ctx.stdout(), err: ctx.stderr() };
}

Deno.test("mon --once, or output that is not a terminal, prints one screen", async () => {
  await using box = await sandbox();
  const once = await mon(["--once"], box.env);
  assert.equal(once.code, 0);
  assert.equal(once.err, "");
  const lines = once.out.split("\n");
  assert.equal(lines[0], "om mon: load (1.00 = one yardstick CPU fully busy)");
  assert.equal(lines[1], "3 nodes: 2 up, 1 down (d shows them)");
  assert.equal(lines[2], "1.50 | ###");
  assert.deepEqual(lines.slice(-3), ["   0 +--------", "         1   2", ""]);
  assert.equal(lines.length, 25);
  assert.deepEqual(await mon([], box.env), once);
  assert.deepEqual(await mon(["--root", box.root], { OM_CONFIG: box.env.OM_CONFIG }), once);
});

Deno.test("mon: a map without node information says so; no map and no nodes is mosmon's error", async () => {
  await using empty = await sandbox({ nodes: false });
  await using none = await sandbox({ map: false, nodes: false });
  const waiting = await mon(["--once"], empty.env);
  assert.equal(waiting.code, 0);
  assert.equal(waiting.out.split("\n")[2], NO_NODES);
  // mosmon's own words, word for word.
  assert.deepEqual(await mon([], none.env), {
    code: 1,
    out: "",
    err: "mosmon: This is NOT a openMosix system!\n",
  });
});

Deno.test("mon rejects a bad --interval and arguments", async () => {
  await using box = await sandbox();
  await assert.rejects(() => mon(["--interval", "0"], box.env), /--interval/);
  await assert.rejects(() => mon(["--interval", "fast"], box.env), /--interval/);
  await assert.rejects(() => mon(["extra"], box.env), /takes no arguments/);
});
