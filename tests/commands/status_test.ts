/**
 * `om status` in-process: the terminal summary (mosctl status's), its usage mistakes, and
 * `--html` against a stand-in for om discover's local socket (the real one is
 * tests/integration/web_test.ts's).
 */
import assert from "node:assert/strict";
import type { ClusterMap } from "../../lib/state/hpcmap.ts";
import { type NodeInfo, writeNodeInfo } from "../../lib/state/nodestate.ts";
import { writeMap } from "../../lib/state/tree.ts";
import { jsonBytes } from "../../lib/base/json.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { serveChannel } from "../../lib/channel/server.ts";
import { invoke, sandbox } from "../tools/sandbox.ts";
import { run, spec } from "../../commands/status.ts";
import { job, move, view } from "../lib/web/fixtures.ts";

const MAP: ClusterMap = {
  gateways: 0,
  entries: [
    { base: 1, address: "10.77.0.1", count: 1 },
    { base: 2, address: "10.77.0.2", count: 1 },
  ],
};
const SELF: NodeInfo = {
  id: 1,
  status: "up",
  load: 40,
  speed: 10000,
  cpus: 2,
  mem: 1024 ** 3,
  rmem: 1024 ** 3,
  tmem: 2 * 1024 ** 3,
  util: 20,
};

const status = (argv: string[], env: Record<string, string>) => invoke({ spec, run }, argv, env);

Deno.test("status: this node's summary, as mosctl status prints it, and as JSON", async () => {
  await using box = await sandbox("status");
  await writeMap(box.paths, 1, MAP);
  await writeNodeInfo(box.paths.nodes, SELF);
  const { code, out, err } = await status([], box.env);
  assert.equal(err, "");
  assert.equal(code, 0);
  assert.match(out, /^This is om node #1 \(0x0001\) at 10.77.0.1\n/);
  assert.match(out, /^flags: {7}nostay nolstay noblock noquiet mfs$/m);
  assert.match(out, /^cluster: {5}2 nodes in the map, 1 up, 1 down$/m);
  const json = JSON.parse((await status(["--json"], box.env)).out);
  assert.equal(json.id, 1);
  assert.equal(json.node.load, 40);
  assert.equal(JSON.parse((await status(["1", "--json"], box.env)).out).id, 1);
});

Deno.test("status: usage mistakes exit 2", async () => {
  await using box = await sandbox("status");
  for (
    const [argv, said] of [
      [["--html", "/tmp/x", "3"], /Cannot use "3" with --html/],
      [["--html", "/tmp/x", "--json"], /Cannot use --json with --html/],
      [["1", "2"], /one ID at most/],
      [["nodeX"], /as a node id/],
    ] as const
  ) {
    const { code, err } = await status([...argv], box.env);
    assert.equal(code, 2, argv.join(" "));
    assert.match(err, said);
  }
});

Deno.test("status --html: without om discover, it says so", async () => {
  await using box = await sandbox("status");
  const { code, err } = await status(["--html", `${box.dir}/page.html`], box.env);
  assert.equal(code, 1);
  assert.equal(
    err,
    `om status: Cannot reach om discover at ${box.dir}/root/omdiscd.sock: is it running?\n`,
  );
});

Deno.test("status --html: the daemon's view and history, written as the page", async () => {
  await using box = await sandbox("status");
  await Deno.mkdir(`${box.dir}/root/users`, { recursive: true });
  const data = {
    view: view({ jobs: [job(1, 10), job(2, 20)], moves: [move(1, 1)] }),
    history: { t: [1], nodes: { "1": [40] } },
  };
  let asked = 0;
  // A stand-in for om discover's local socket: auth, and status.cluster.
  const server = serveChannel({
    path: `${box.dir}/root/omdiscd.sock`,
    nodeId: 1,
    logger: silentLogger,
    handlers: new Map([
      ["auth", () => Promise.resolve(jsonBytes({ uid: 0 }))],
      ["status.cluster", () => {
        asked++;
        return Promise.resolve(jsonBytes(data));
      }],
    ]),
  });
  try {
    const file = `${box.dir}/page.html`;
    const written = await status(["--html", file], box.env);
    assert.deepEqual(written, {
      code: 0,
      out: `om status: wrote ${file}: 3 nodes, 2 jobs, 1 recent migration\n`,
      err: "",
    });
    const html = await Deno.readTextFile(file);
    const inlined = /<script id="om-data" type="application\/json">(.*?)<\/script>/s.exec(html);
    assert.deepEqual(JSON.parse(inlined![1]), data);
    const printed = await status(["--html", "-"], box.env);
    assert.equal(printed.out, html, "- writes the same page to standard output");
    assert.equal(asked, 2);
  } finally {
    await server.close();
  }
});
