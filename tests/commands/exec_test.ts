/**
 * `om exec` in-process, up to the daemon: its options, usage errors (exit 2), the nodes it picks
 * from the map and their status, and the failures before anything is asked. The commands
 * themselves run on lab nodes in tests/integration/exec_test.ts.
 */
import assert from "node:assert/strict";
import * as exec from "../../commands/exec.ts";
import { findCommand } from "../../commands/index.ts";
import { parse } from "../../lib/cli/parser.ts";
import { downInfo, writeNodeInfo } from "../../lib/state/nodestate.ts";
import { writeMap } from "../../lib/state/tree.ts";
import { invoke, sandbox } from "../tools/sandbox.ts";
import { systemClock } from "../../lib/base/clock.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { builtinHandlers, serveChannel } from "../../lib/channel/server.ts";
import { guardLocal, localSocketPath } from "../../lib/jobs/localauth.ts";
import { prepareUsersDir, usersDirPath } from "../../lib/jobs/usertoken.ts";
import { ExecService } from "../../lib/exec/service.ts";

Deno.test("exec: in the command table; options end at the command", () => {
  assert.equal(findCommand("exec")?.name, "exec");
  const parsed = parse(exec.spec, ["-w", "1-3", "-b", "uname", "-a", "-w", "x"]);
  assert.deepEqual(parsed.args, ["uname", "-a", "-w", "x"]);
  assert.equal(parsed.options.nodes, "1-3");
  assert.equal(parsed.options.gather, true);
  assert.deepEqual(parse(exec.spec, ["-t2.5", "-f", "4", "--", "-x"]).args, ["-x"]);
});

Deno.test("exec: -t in seconds, 0.1 to a day", () => {
  assert.equal(exec.parseTimeout(undefined), 60_000);
  assert.equal(exec.parseTimeout("2.5"), 2500);
  assert.equal(exec.parseTimeout("0.1"), 100);
  assert.equal(exec.parseTimeout("86400"), 86_400_000);
  for (const bad of ["0", "0.05", "-1", "1e3", "86401", "soon"]) {
    assert.throws(
      () => exec.parseTimeout(bad),
      /^UsageError: Cannot use ".*" for -t: not a number/,
    );
  }
});

Deno.test("exec: usage errors exit 2 before anything is asked", async () => {
  await using box = await sandbox("exec");
  const cases: [string[], RegExp][] = [
    [[], /^om exec: Cannot run it on the nodes: no command given\n/],
    [["-w", "2-x", "true"], /^om exec: Cannot use node list "2-x"/],
    [["-f", "0", "true"], /^om exec: Cannot use "0" for -f: not between 1 and 128/],
    [["-f", "129", "true"], /not between 1 and 128/],
    [["-t", "0", "true"], /^om exec: Cannot use "0" for -t/],
    [["--", "a\0b"], /a word holds a NUL byte/],
  ];
  for (const [args, message] of cases) {
    const result = await invoke(exec, args, box.env);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.err}`);
    assert.match(result.err, message);
    assert.match(result.err, /Try 'om exec --help'/);
  }
});

Deno.test("exec: no map, no daemon: said plainly, exit 1", async () => {
  await using box = await sandbox("exec");
  const nomap = await invoke(exec, ["--", "true"], box.env);
  assert.equal(nomap.code, 1);
  assert.equal(
    nomap.err,
    `om exec: Cannot read the cluster map in ${box.paths.config}: is om discover running?\n`,
  );
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "10.77.0.1", count: 3 }],
  });
  const nodaemon = await invoke(exec, ["--", "true"], box.env);
  assert.equal(nodaemon.code, 1);
  assert.equal(
    nodaemon.err,
    `om exec: Cannot reach om discover at ${box.env.OM_ROOT}/omdiscd.sock: is it running?\n`,
  );
});

Deno.test("exec: -w nodes that are down or not in the map are reported, not asked: 255", async () => {
  await using box = await sandbox("exec");
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "10.77.0.1", count: 3 }],
  });
  await writeNodeInfo(box.paths.nodes, downInfo(2));
  const result = await invoke(exec, ["-w", "2,9", "--", "true"], box.env);
  assert.equal(result.code, 255);
  assert.equal(result.out, "");
  assert.equal(
    result.err,
    "node 2: down: its status is down (no figures from it lately)\n" +
      "node 9: down: it is not in the cluster map\n",
  );
  const gathered = await invoke(exec, ["-b", "-w", "2,9,10", "--", "true"], box.env);
  assert.equal(gathered.code, 255);
  assert.equal(
    gathered.out,
    "---------------\nnode 2 (1): down: its status is down (no figures from it lately)\n" +
      "---------------\n---------------\nnode 9-10 (2): down: it is not in the cluster map\n" +
      "---------------\n",
  );
});

Deno.test("exec: through a daemon's local socket, every node answered once whatever the fanout", async () => {
  await using box = await sandbox("exec");
  const root = box.env.OM_ROOT;
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "10.77.0.1", count: 6 }],
  });
  const usersDir = usersDirPath(root);
  prepareUsersDir(usersDir);
  // The daemon's exec.ask: node 1 runs it here, the other nodes cannot be reached.
  const service = new ExecService({
    nodeId: 1,
    keyed: true,
    allow: ["*"],
    logger: silentLogger,
    clock: systemClock,
    connect: (node) => Promise.reject(new Error(`Cannot talk to node ${node}: connection refused`)),
  });
  const server = serveChannel({
    path: localSocketPath(root),
    mode: 0o666,
    nodeId: 1,
    logger: silentLogger,
    handlers: guardLocal(new Map([...builtinHandlers(1), ...service.localHandlers()]), {
      usersDir,
      clock: systemClock,
      ownerOf: () => undefined,
    }),
  });
  try {
    for (const fanout of ["1", "2", "6", "128"]) {
      const result = await invoke(exec, ["-f", fanout, "--", "echo", "hi"], box.env);
      assert.equal(result.code, 255, result.err);
      assert.equal(result.out, "node 1: hi\n");
      assert.deepEqual(
        result.err.split("\n").filter(Boolean).sort(),
        [2, 3, 4, 5, 6].map((n) =>
          `node ${n}: unreachable: Cannot talk to node ${n}: connection refused`
        ),
        `-f ${fanout}`,
      );
    }
    const gathered = await invoke(exec, [
      "-b",
      "-w",
      "1",
      "--",
      "sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ], box.env);
    assert.equal(gathered.code, 3);
    assert.equal(
      gathered.out,
      "---------------\nnode 1 (1): exit status 3\n---------------\nout\n",
    );
    assert.equal(gathered.err, "node 1: err\n");
  } finally {
    service.close();
    await server.close();
  }
});
