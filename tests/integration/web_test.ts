/**
 * The status page's HTTP API on real lab nodes (root only), asked from inside another node: the
 * shapes of /api/nodes, /api/jobs, /api/migrations; 404 for a bad path, 405 with Allow for
 * anything but GET and HEAD; a job started with `om run` on one node and moved with `om migrate`
 * (and a move that fails) seen in the API of ANOTHER node, who asked and how long it took; the
 * event stream sending a change within an information interval; `om status --html` writing the
 * page with the cluster in it. A keyless lab: each page shows its own node's jobs only, the
 * channel refuses `status.jobs`, and nobody is asked anything while nobody watches.
 */
import assert from "node:assert/strict";
import { LAB_HTTP_PORT, planLab } from "../../lib/lab/plan.ts";
import type { Lab } from "../../lib/lab/record.ts";
import { stopDaemon } from "../../lib/lab/daemons.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { sleep } from "../../lib/base/time.ts";
import type { ClusterView, JobView, MoveView, NodeView } from "../../lib/web/model.ts";
import { replay } from "../../lib/web/collector.ts";
import type { ChangeEvent } from "../../lib/web/diff.ts";
import {
  channelRequest,
  manualOnly,
  ROOT,
  runIn,
  startAll,
  startIn,
  stats,
  withLab,
} from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const WEBREQ = new URL("../tools/webreq.ts", import.meta.url).pathname;
const tool = (...args: string[]) => [Deno.execPath(), "run", "-A", "--quiet", WEBREQ, ...args];

/** The page of node `target`, as its address and port. */
const base = (target: number) => `http://10.77.0.${target}:${LAB_HTTP_PORT}`;

/** One request from inside node `from` to node `target`'s page. */
async function request(lab: Lab, from: number, target: number, path: string, method = "GET") {
  const { code, out, err } = await runIn(lab, from, tool(`${base(target)}${path}`, method));
  assert.equal(code, 0, `${method} ${path}: ${out}${err}`);
  return JSON.parse(out) as { status: number; headers: Record<string, string>; body: string };
}

/** GET of an API resource, its JSON. */
async function api<T>(lab: Lab, from: number, target: number, path: string): Promise<T> {
  const answer = await request(lab, from, target, path);
  assert.equal(answer.status, 200, `${path}: ${answer.body}`);
  assert.equal(answer.headers["content-type"], "application/json; charset=utf-8");
  return JSON.parse(answer.body);
}

/** Starts reading node `target`'s event stream from inside node `from` for `ms`. */
function stream(lab: Lab, from: number, target: number, ms: number) {
  const run = startIn(lab, from, tool("--events", String(ms), `${base(target)}/api/events`));
  const lines = () =>
    run.sink.out.split("\n").filter(Boolean).map((line) => JSON.parse(line)) as {
      at: number;
      event: string;
      status: number;
      data: Record<string, unknown>;
    }[];
  return { run, lines };
}

/** Prints 0, 1, ... one a second for `n` seconds. */
const counter = (n: number) => `i=0; while [ $i -lt ${n} ]; do echo $i; i=$((i+1)); sleep 1; done`;

Deno.test({
  name: "web: the API of keyed lab nodes; a job and its moves seen from another node; the stream",
  ignore: !ROOT || !criu,
  fn: () =>
    withLab("web", planLab(3), async (lab) => {
      await manualOnly(lab);
      await startAll(lab, [], { OM_CRIU: criu! });

      // Every node, from node 1's page, asked from node 2.
      const nodes = await retryUntil(
        async () => {
          const all = await api<NodeView[]>(lab, 2, 1, "/api/nodes");
          return all.length === 3 && all.every((n) => n.status === "up" && n.flags) && all;
        },
        10_000,
        { what: "node 1's page to list 3 nodes up" },
      );
      assert.deepEqual(nodes.map((n) => [n.id, n.address, n.self]), [
        [1, "10.77.0.1", true],
        [2, "10.77.0.2", false],
        [3, "10.77.0.3", false],
      ]);
      for (const node of nodes) {
        for (const field of ["cpus", "speed", "load", "mem", "tmem", "util", "loadPerCpu"]) {
          assert.equal(typeof node[field as keyof NodeView], "number", `${field} of ${node.id}`);
        }
        assert.ok(node.cpus >= 1 && node.speed > 0 && node.tmem > 0 && node.mem <= node.tmem);
        assert.deepEqual(node.flags, { stay: true, lstay: false, block: false, quiet: false });
      }

      // Bad paths, other methods, HEAD.
      for (const path of ["/nope", "/api/node", "/api/jobs/1"]) {
        assert.equal((await request(lab, 2, 1, path)).status, 404, path);
      }
      for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
        const refused = await request(lab, 2, 1, "/api/jobs", method);
        assert.equal(refused.status, 405, method);
        assert.equal(refused.headers["allow"], "GET, HEAD");
      }
      const head = await request(lab, 3, 1, "/api/nodes", "HEAD");
      assert.deepEqual([head.status, head.body], [200, ""]);
      const page = await request(lab, 3, 1, "/");
      assert.equal(page.status, 200);
      assert.match(page.body, /<table id="om-nodes">/);

      // A job started on node 2, seen from node 1.
      const job = startIn(lab, 2, omCommand(["run", "--", "sh", "-c", `${counter(120)} # webjob`]));
      try {
        const seen = await retryUntil(
          async () =>
            (await api<JobView[]>(lab, 3, 1, "/api/jobs")).find((j) =>
              j.command.includes("webjob")
            ),
          15_000,
          { what: "node 1's page to list the job started on node 2" },
        );
        assert.deepEqual(
          [seen.home, seen.node, seen.user, seen.uid, seen.migrations, seen.locked, seen.ended],
          [2, 2, "root", 0, 0, false, false],
        );
        assert.equal(seen.key, `2:${seen.pid}`);

        // Moved by a user from node 2 to node 3: node 1 sees where it runs, and the move.
        const moved = await runIn(lab, 2, omCommand(["migrate", String(seen.pid), "3"]));
        assert.equal(moved.code, 0, moved.err);
        const there = await retryUntil(
          async () =>
            (await api<JobView[]>(lab, 3, 1, "/api/jobs")).find((j) =>
              j.pid === seen.pid && j.node === 3
            ),
          10_000,
          { what: "node 1's page to show the job on node 3" },
        );
        assert.equal(there.migrations, 1);
        const move = await retryUntil(
          async () =>
            (await api<MoveView[]>(lab, 3, 1, "/api/migrations")).find((m) =>
              m.pid === seen.pid && m.result === "ok"
            ),
          10_000,
          { what: "node 1's page to list the move" },
        );
        assert.deepEqual(
          [move.home, move.from, move.to, move.by, move.user, move.asker, move.step, move.error],
          [2, 2, 3, "user", "root", null, null, null],
        );
        assert.ok(move.frozenMs !== null && move.totalMs !== null && move.frozenMs <= move.totalMs);
        console.log(`web: the move as node 1 shows it: ${JSON.stringify(move)}`);
        assert.ok(Math.abs(move.at - Date.now()) < 60_000);

        // A move that fails (node 1 takes no guests): result, step and why, on node 3's page.
        assert.equal((await runIn(lab, 1, omCommand(["mosctl", "block"]))).code, 0);
        const refused = await runIn(lab, 2, omCommand(["migrate", String(seen.pid), "1"]));
        assert.notEqual(refused.code, 0);
        const failed = await retryUntil(
          async () =>
            (await api<MoveView[]>(lab, 1, 3, "/api/migrations")).find((m) =>
              m.pid === seen.pid && m.result === "failed"
            ),
          10_000,
          { what: "node 3's page to list the failed move" },
        );
        assert.deepEqual([failed.from, failed.to, failed.by], [3, 1, "user"]);
        assert.equal(failed.step, "target check");
        assert.match(failed.error ?? "", /block|guest/i);
        const flags = await retryUntil(
          async () =>
            (await api<NodeView[]>(lab, 3, 3, "/api/nodes")).find((n) =>
              n.id === 1 && n.flags?.block
            ),
          5000,
          { what: "node 3's page to show node 1 blocked" },
        );
        assert.equal(flags.flags?.block, true);

        // The stream: a snapshot, then a change every interval; a flag set on node 2 arrives
        // within about an interval (1 s: asked at every interval, plus the asking).
        const watching = stream(lab, 3, 1, 6000);
        await retryUntil(() => watching.lines().some((l) => l.event === "snapshot"), 10_000, {
          what: "the stream's snapshot",
        });
        assert.equal(watching.lines()[0].status, 200);
        await sleep(1500);
        const before = Date.now();
        assert.equal((await runIn(lab, 2, omCommand(["mosctl", "lstay"]))).code, 0);
        assert.equal(await watching.run.finish(), 0, watching.run.sink.err);
        const lines = watching.lines();
        const snapshot = lines.find((l) => l.event === "snapshot")!.data as unknown as {
          view: ClusterView;
        };
        const changes = lines.filter((l) => l.event === "change");
        // The page's view: the snapshot (at most an interval old: nodes are asked once an
        // interval at most) with the changes applied.
        const shown = replay(snapshot.view, changes.map((c) => c.data as unknown as ChangeEvent));
        assert.deepEqual(shown.jobs.map((j) => [j.pid, j.node]), [[seen.pid, 3]]);
        assert.deepEqual(shown.moves.map((m) => [m.pid, m.result]), [
          [seen.pid, "failed"],
          [seen.pid, "ok"],
        ]);
        const gaps = changes.slice(1).map((c, i) => c.at - changes[i].at);
        assert.ok(changes.length >= 4, `changes: ${changes.length}`);
        assert.ok(Math.max(...gaps) < 1800, `a change every interval: gaps ${gaps}`);
        const lstay = changes.find((c) =>
          (c.data.nodes as { set?: Partial<NodeView>[] } | undefined)?.set?.some((n) =>
            n.id === 2 && n.flags?.lstay === true
          )
        );
        assert.ok(lstay, "node 2's lstay arrived in a change");
        console.log(`web: node 2's lstay reached the stream after ${lstay.at - before} ms`);
        assert.ok(lstay.at - before < 2500, `${lstay.at - before} ms`);
        // Changes, not the cluster: far smaller than the snapshot.
        const sizes = changes.map((c) => JSON.stringify(c.data).length);
        assert.ok(Math.max(...sizes) < JSON.stringify(snapshot).length / 2, `${sizes}`);

        // om status --html on node 2: the page with the cluster in it.
        const file = `${lab.record.dir}/status.html`;
        const wrote = await runIn(lab, 2, omCommand(["status", "--html", file]));
        assert.equal(wrote.code, 0, wrote.err);
        assert.match(wrote.out, /wrote .*: 3 nodes, 1 job, 2 recent migrations/);
        const html = await Deno.readTextFile(file);
        const data = JSON.parse(
          /<script id="om-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1],
        );
        assert.deepEqual(data.view.jobs.map((j: JobView) => [j.pid, j.node]), [[seen.pid, 3]]);
        assert.ok(data.view.nodes.every((n: NodeView) => n.netIn !== null), "network load known");
        assert.doesNotMatch(html, /\ssrc=|\shref=/);

        // An expel on node 3 sends its guest home: the move says who asked, and which node.
        const expel = await runIn(lab, 3, omCommand(["mosctl", "expel"]));
        assert.equal(expel.code, 0, expel.err);
        const expelled = await retryUntil(
          async () =>
            (await api<MoveView[]>(lab, 1, 1, "/api/migrations")).find((m) =>
              m.by === "expel" && m.result === "ok"
            ),
          10_000,
          { what: "node 1's page to list the expel's move" },
        );
        assert.deepEqual(
          [expelled.pid, expelled.from, expelled.to, expelled.asker, expelled.user],
          [seen.pid, 3, 2, 3, null],
        );
      } finally {
        job.child.kill("SIGTERM");
        await job.finish();
      }
      // The page's counters, in omdiscd.stats.
      const http = (await stats(lab, 1)).http;
      assert.ok(
        http.requests > 10 && http.notFound >= 3 && http.refused >= 4,
        JSON.stringify(http),
      );
    }, { http: LAB_HTTP_PORT }),
});

Deno.test({
  name: "web: a keyless lab: own jobs only, status.jobs refused, nobody asked while nobody watches",
  ignore: !ROOT,
  fn: () =>
    withLab("webk", planLab(2), async (lab) => {
      await startAll(lab);
      const job = startIn(lab, 2, omCommand(["run", "--", "sh", "-c", `${counter(60)} # keyless`]));
      try {
        const own = await retryUntil(
          async () =>
            (await api<JobView[]>(lab, 1, 2, "/api/jobs")).find((j) =>
              j.command.includes("keyless")
            ),
          10_000,
          { what: "node 2's page to list its job" },
        );
        assert.equal(own.home, 2);
        assert.deepEqual(await api<JobView[]>(lab, 2, 1, "/api/jobs"), [], "node 1 sees none");
        const nodes = await retryUntil(
          async () => {
            const all = await api<NodeView[]>(lab, 2, 1, "/api/nodes");
            return all.length === 2 && all[1].flags && all;
          },
          10_000,
          { what: "node 1's page to know node 2's flags" },
        );
        assert.deepEqual(nodes.map((n) => [n.id, n.status]), [[1, "up"], [2, "up"]]);
        const page = await request(lab, 2, 1, "/");
        assert.equal(page.status, 200);

        // Over the channel: flags and counters for anyone the channel admits, jobs for nobody.
        const jobs = await channelRequest(lab, 1, "10.77.0.2", "status.jobs");
        assert.equal(jobs.code, 1);
        assert.match(jobs.out, /shown only to holders of the cluster key/);
        const node = await channelRequest(lab, 1, "10.77.0.2", "status.node");
        assert.equal(node.code, 0, node.out);
        assert.deepEqual(Object.keys(JSON.parse(node.out)), ["flags", "net"]);

        // Nobody watches node 1's page: node 2 is asked nothing by it. A watcher: asked once an
        // interval (three commands), no more.
        await sleep(2000);
        const quiet = (await stats(lab, 2)).channel.requests;
        await sleep(3000);
        assert.equal((await stats(lab, 2)).channel.requests, quiet, "asked while nobody watched");
        const watching = stream(lab, 2, 1, 4000);
        assert.equal(await watching.run.finish(), 0, watching.run.sink.err);
        // The counters are written once an interval: read them once they no longer change (as
        // nobody asks node 2 while nobody watches, above, they do settle).
        let settled = (await stats(lab, 2)).channel.requests;
        for (let round = 0; round < 8; round++) {
          await sleep(1500);
          const now = (await stats(lab, 2)).channel.requests;
          if (now === settled) break;
          settled = now;
        }
        const asked = settled - quiet;
        console.log(`web: node 2 answered ${asked} requests for 4 s of watching`);
        // At least two intervals' worth, at most six (4 s, and the stream's start and end).
        assert.ok(asked >= 2 * 3 && asked <= 6 * 3, `${asked} requests`);
      } finally {
        job.child.kill("SIGTERM");
        await job.finish();
      }

      // A stopped node turns down on the other's page.
      await stopDaemon(lab, 2);
      const down = await retryUntil(
        async () =>
          (await api<NodeView[]>(lab, 1, 1, "/api/nodes")).find((n) =>
            n.id === 2 && n.status === "down"
          ),
        10_000,
        { what: "node 2 down on node 1's page" },
      );
      assert.deepEqual([down.load, down.inMap, down.netIn], [0, false, null]);
    }, { key: false, http: LAB_HTTP_PORT }),
});
