/**
 * `om discover` on real network namespaces with real multicast (root only): convergence, leave,
 * expiry, relaying, garbage, the pid file, detaching, syslog and signals.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { findNode, type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { killDaemon, signalDaemon, startDaemon, stopDaemon } from "../../lib/lab/daemons.ts";
import { readNodeMap, waitForAgreement } from "../../lib/lab/maps.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { ROOT, runIn, startAll, stats, withLab } from "../tools/labkit.ts";

const ignore = !ROOT;
/** Long intervals: no re-announcement and no node information during a test's checks. */
const QUIET = ["--announce-interval", "30", "--expire-after", "90", "--info-interval", "30"];
const INJECT = new URL("../tools/inject.ts", import.meta.url).pathname;

/** Sends datagrams from inside a node with tests/tools/inject.ts. */
async function inject(lab: Lab, index: number, kind: string, count: number, src?: string) {
  const argv = [Deno.execPath(), "run", "-A", "--quiet", INJECT, kind, String(count)];
  const result = await runIn(lab, index, src ? [...argv, src] : argv);
  assert.equal(result.code, 0, result.err);
  return Number(result.out.trim());
}

async function idsOf(lab: Lab, index: number): Promise<readonly number[]> {
  return (await readNodeMap(lab, index)).ids ?? [];
}

/** Waits until no node but `except` has `id` in its map. */
async function goneEverywhere(lab: Lab, id: number, except: number, timeoutMs: number) {
  const others = lab.record.nodes.map((n) => n.index).filter((i) => i !== except);
  await retryUntil(
    async () => {
      const maps = await Promise.all(others.map((i) => idsOf(lab, i)));
      return maps.every((ids) => !ids.includes(id));
    },
    timeoutMs,
    { what: `node ${id} to leave every map` },
  );
}

const log = (lab: Lab, index: number) =>
  Deno.readTextFile(findNode(lab, index).dir + "/discover.log");

Deno.test({
  name: "discover: 8 nodes converge, and showmap in a node prints its own id first",
  ignore,
  fn: () =>
    withLab("conv", planLab(8), async (lab) => {
      await startAll(lab);
      for (const node of lab.record.nodes) {
        assert.deepEqual(await idsOf(lab, node.index), [1, 2, 3, 4, 5, 6, 7, 8]);
      }
      const shown = await runIn(lab, 5, omCommand(["showmap"]));
      assert.equal(shown.code, 0, shown.err);
      const lines = shown.out.split("\n");
      assert.equal(lines[0], "My Node-Id: 0x0005");
      assert.equal(lines[2], "Base Node-Id Address          Count");
      assert.match(lines[4], /^0x0005 {7}10\.77\.0\.5 {8}1$/);
      assert.equal(lines.filter((l) => l.startsWith("0x")).length, 8);
    }),
});

Deno.test({
  name: "discover: SIGTERM sends a leave that removes the node from every map at once",
  ignore,
  fn: () =>
    withLab("leave", planLab(4), async (lab) => {
      // Long intervals: only the leave message can remove it within the wait below.
      await startAll(lab, QUIET);
      const result = await stopDaemon(lab, 3);
      assert.equal(result?.graceful, true);
      assert.equal(result?.status?.code, 0);
      await goneEverywhere(lab, 3, 3, 2000);
      await retryUntil(async () => (await stats(lab, 1)).left === 1, 2000, { what: "left = 1" });
      // It leaves its own map with only itself, and removes its pid file.
      assert.deepEqual(await idsOf(lab, 3), [3]);
      await assert.rejects(Deno.stat(`${nodeRoot(lab, 3)}/omdiscd.pid`), Deno.errors.NotFound);
      assert.match(await log(lab, 1), /Node 0x0003 at 10\.77\.0\.3 left/);
    }),
});

Deno.test({
  name: "discover: a node killed with -9 expires from every map",
  ignore,
  fn: () =>
    withLab("expire", planLab(4), async (lab) => {
      await startAll(lab, ["--announce-interval", "0.3", "--expire-after", "1.2"]);
      const killedAt = Date.now();
      await killDaemon(lab, 2);
      await goneEverywhere(lab, 2, 2, 5000);
      const took = Date.now() - killedAt;
      assert.ok(took >= 900, `expired after ${took} ms, before the expiry period`);
      await retryUntil(async () => (await stats(lab, 1)).expired === 1, 2000, {
        what: "expired = 1",
      });
      assert.match(await log(lab, 4), /Node 0x0002 at 10\.77\.0\.2 expired/);
      // The others still see each other.
      assert.deepEqual(await idsOf(lab, 1), [1, 3, 4]);
    }),
});

Deno.test({
  name: "discover: through a two-interface relay, joins and leaves cross between networks",
  ignore,
  fn: () =>
    withLab("relay", planLab(5, { nets: 2 }), async (lab) => {
      // Node 1 is on both networks (10.77.0.1 and 10.77.1.1) and relays; 2,4 on net 1; 3,5 on 0.
      await startAll(lab, QUIET);
      const all = [1, 0x0102, 3, 0x0104, 5].sort((a, b) => a - b);
      assert.deepEqual(await idsOf(lab, 3), all);
      assert.deepEqual(await idsOf(lab, 2), all);
      // Node 2 (net 1) leaves; node 3 (net 0) hears it only through the relay.
      await stopDaemon(lab, 2);
      await goneEverywhere(lab, 0x0102, 2, 2000);
      await retryUntil(async () => (await stats(lab, 1)).relayed > 0, 2000, {
        what: "the gateway to have relayed",
      });
      // Nothing circulates: once the burst is over (statistics are written every 250 ms), the
      // gateway's counters stand still.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const before = await stats(lab, 1);
      await new Promise((resolve) => setTimeout(resolve, 800));
      const after = await stats(lab, 1);
      assert.equal(after.relayed, before.relayed);
      assert.equal(after.received, before.received);
    }),
});

Deno.test({
  name: "discover: with two interfaces and -m, only the first talks and the second is an alias",
  ignore,
  fn: () =>
    withLab("alias", [
      {
        index: 1,
        nics: [{ net: 0, address: "10.77.0.1" }, { net: 1, address: "10.77.1.1" }],
        discoverArgs: ["-i", "eth0,eth1", "-m", "1"],
      },
      { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
      { index: 3, nics: [{ net: 1, address: "10.77.1.3" }] },
    ], async (lab) => {
      for (const index of [1, 2]) await startDaemon(lab, index);
      const agreement = await waitForAgreement(lab, { nodes: [1, 2], ids: [1, 2] });
      assert.ok(agreement.agreed, JSON.stringify(agreement.views));
      const view = await readNodeMap(lab, 2);
      assert.deepEqual(
        view.map?.entries.filter((e) => e.base === 1),
        [{ base: 1, address: "10.77.0.1", count: 1 }, { base: 1, address: "10.77.1.1", count: 0 }],
      );
      // eth1 does not talk: a node on net 1 never hears node 1.
      await startDaemon(lab, 3);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(await idsOf(lab, 3), [0x0103]);
      assert.equal((await stats(lab, 1)).relayed, 0);
    }),
});

Deno.test({
  // Keyless: the datagrams of the seed, which anyone may send (a keyed cluster drops them as "auth").
  name: "discover: a flood of malformed datagrams is dropped and counted and changes nothing",
  ignore,
  fn: () =>
    withLab("flood", planLab(3), async (lab) => {
      await startAll(lab, QUIET);
      const mapBefore = await Deno.readFile(`${nodeRoot(lab, 1)}/admin/config`);
      await new Promise((resolve) => setTimeout(resolve, 400)); // statistics settle (250 ms)
      const before = await stats(lab, 1);
      const sent = await inject(lab, 3, "garbage", 12_000);
      // The kernel may drop part of a flood at the socket; every datagram that reaches the
      // daemon must be counted as dropped, by reason, and none accepted.
      const total = (s: { dropped: Record<string, number> }) =>
        Object.values(s.dropped).reduce((a, b) => a + b);
      let last = before;
      await retryUntil(
        async () => {
          const s = await stats(lab, 1);
          const settled = s.received === last.received && s.received > before.received;
          last = s;
          return settled;
        },
        10_000,
        { what: "the flood to be counted", intervalMs: 400 },
      );
      const after = last;
      const received = after.received - before.received;
      assert.ok(received >= Math.min(3000, sent), `only ${received} of ${sent} reached the daemon`);
      assert.equal(after.received, after.accepted + after.own + total(after), "all counted");
      assert.equal(total(after) - total(before), received, "every new datagram dropped");
      assert.equal(after.accepted, before.accepted, "no garbage was accepted");
      for (const reason of ["length", "magic", "type", "source"]) {
        assert.ok(after.dropped[reason] > 100, `dropped for ${reason}: ${after.dropped[reason]}`);
      }
      assert.deepEqual(await Deno.readFile(`${nodeRoot(lab, 1)}/admin/config`), mapBefore);
      // Still alive and listening: a good join from a new address is learnt, its leave heard.
      await inject(lab, 3, "join", 1, "10.77.0.99");
      await retryUntil(async () => (await idsOf(lab, 1)).includes(99), 3000);
      await inject(lab, 3, "leave", 1, "10.77.0.99");
      await retryUntil(async () => !(await idsOf(lab, 1)).includes(99), 3000);
    }, { key: false }),
});

Deno.test({
  name: "discover: an id claimed by a second address is reported and not overwritten",
  ignore,
  fn: () =>
    withLab("conflict", planLab(2), async (lab) => {
      await startAll(lab);
      // 10.78.0.2 has node 2's id (last two octets 0.2).
      await inject(lab, 1, "join", 1, "10.78.0.2");
      await retryUntil(async () => (await stats(lab, 1)).conflicts >= 1, 3000);
      const view = await readNodeMap(lab, 1);
      assert.deepEqual(view.map?.entries.find((e) => e.base === 2)?.address, "10.77.0.2");
      assert.match(await log(lab, 1), /Node id 0x0002 is claimed by 10\.78\.0\.2 but held by/);
    }, { key: false }),
});

Deno.test({
  name: "discover: a second instance on the same state tree refuses to start",
  ignore,
  fn: () =>
    withLab("pid", planLab(1), async (lab) => {
      await startDaemon(lab, 1);
      await retryUntil(() => Deno.stat(`${nodeRoot(lab, 1)}/omdiscd.pid`).then(() => true), 5000);
      const pid = Number((await Deno.readTextFile(`${nodeRoot(lab, 1)}/omdiscd.pid`)).trim());
      assert.equal(pid > 0, true);
      const second = await runIn(lab, 1, omCommand(["discover", "-n"]));
      assert.equal(second.code, 1);
      assert.match(second.err, new RegExp(`another om discover is running \\(pid ${pid}\\)`));
    }),
});

Deno.test({
  name: "discover: without a default route or -i, the original messages and exit 1",
  ignore,
  fn: () =>
    withLab("noroute", planLab(1), async (lab) => {
      const ns = findNode(lab, 1).namespace;
      const del = await new Deno.Command("ip", { args: ["-n", ns, "route", "del", "default"] })
        .output();
      assert.equal(del.code, 0);
      const result = await runIn(lab, 1, omCommand(["discover", "-n"]));
      assert.equal(result.code, 1);
      const lines = result.err.trim().split("\n");
      assert.match(lines[0], /Unable to determine address of default interface\. {2}This may/);
      assert.match(lines[1], /Unable to initialize network\. {2}Exiting\.$/);
      // Naming the interface works without a default route.
      const unknown = await runIn(lab, 1, omCommand(["discover", "-n", "-i", "eth9"]));
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /Unable to determine address of interface eth9/);
    }),
});

Deno.test({
  name: "discover: without -n it detaches, logs to syslog, and stops on SIGTERM",
  ignore,
  fn: () =>
    withLab("detach", planLab(2), async (lab) => {
      await startDaemon(lab, 2);
      const socketDir = await Deno.makeTempDir({ prefix: "om-syslog-test-" });
      const socketPath = `${socketDir}/log`;
      const syslog = Deno.listenDatagram({ transport: "unixpacket", path: socketPath });
      try {
        const started = Date.now();
        const result = await runIn(lab, 1, omCommand(["discover", "--announce-interval", "1"]), {
          OM_SYSLOG: socketPath,
        });
        assert.equal(result.code, 0, result.err);
        assert.ok(Date.now() - started < 10_000);
        const pid = Number((await Deno.readTextFile(`${nodeRoot(lab, 1)}/omdiscd.pid`)).trim());
        // Its own session: not the session of the command that started it.
        const stat = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1].split(" ");
        assert.equal(Number(stat[3]), pid, "session id is its own pid");
        const lines: string[] = [];
        await retryUntil(
          async () => {
            const [bytes] = await syslog.receive();
            lines.push(new TextDecoder().decode(bytes));
            return lines.some((l) => l.includes("Node 0x0002 joined"));
          },
          10_000,
          { what: "syslog lines" },
        );
        assert.match(
          lines[0],
          new RegExp(`^<30>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d omdiscd\\[${pid}\\]: `),
        );
        Deno.kill(pid, "SIGTERM");
        await retryUntil(
          () => Deno.stat(`${nodeRoot(lab, 1)}/omdiscd.pid`).then(() => false, () => true),
          5000,
          { what: "the pid file to go" },
        );
        await goneEverywhere(lab, 1, 1, 3000);
      } finally {
        syslog.close();
        await Deno.remove(socketDir, { recursive: true });
      }
    }),
});

Deno.test({
  name: "discover: SIGUSR2 toggles debug output, SIGHUP re-reads the configuration",
  ignore,
  fn: () =>
    withLab("signals", planLab(2), async (lab) => {
      await startAll(lab);
      await signalDaemon(lab, 1, "SIGUSR2");
      await retryUntil(async () => /Full debug output on/.test(await log(lab, 1)), 3000);
      await inject(lab, 2, "garbage", 2);
      await retryUntil(
        async () => /debug: Dropped datagram from 10\.77\.0\.2:\d+ on eth0/.test(await log(lab, 1)),
        3000,
        { what: "a debug line for the dropped datagram" },
      );
      await signalDaemon(lab, 1, "SIGUSR2");
      await retryUntil(async () => /Full debug output off/.test(await log(lab, 1)), 3000);
      // SIGHUP: a bad configuration is refused and the old one kept; a good one is applied.
      const config = findNode(lab, 1).config;
      await Deno.writeTextFile(config, "announce_interval = soon\n");
      await signalDaemon(lab, 1, "SIGHUP");
      await retryUntil(
        async () =>
          /SIGHUP: configuration kept: .*announce_interval "soon"/.test(await log(lab, 1)),
        3000,
      );
      await Deno.writeTextFile(config, "announce_interval = 0.2\nexpire_after = 1\n");
      await signalDaemon(lab, 1, "SIGHUP");
      await retryUntil(async () => /SIGHUP: configuration re-read/.test(await log(lab, 1)), 3000);
      const sent = (await stats(lab, 1)).sent;
      await retryUntil(async () => (await stats(lab, 1)).sent >= sent + 3, 3000, {
        what: "announcements at the new interval",
      });
    }),
});

Deno.test({
  name: "discover: on an openMosix kernel (a fake /proc/hpc) the map goes to /proc/hpc/admin",
  ignore,
  fn: () =>
    withLab("kernel", planLab(2), async (lab) => {
      const proc = await Deno.makeTempDir({ prefix: "om-fake-proc-" });
      try {
        await Deno.mkdir(`${proc}/hpc/admin`, { recursive: true });
        await startDaemon(lab, 1, { env: { OM_PROC: proc } });
        await startDaemon(lab, 2);
        await retryUntil(
          async () => {
            const config = await Deno.readFile(`${proc}/hpc/admin/config`).catch(() => undefined);
            return config?.length === 8 + 2 * 8;
          },
          10_000,
          { what: "the kernel's config to hold two nodes" },
        );
        assert.deepEqual(
          await Deno.readFile(`${proc}/hpc/admin/mospe`),
          new Uint8Array([0, 0, 0, 1]),
        );
        // Nothing in the userland state tree's admin files: the kernel holds the map.
        await assert.rejects(Deno.stat(`${nodeRoot(lab, 1)}/admin/config`), Deno.errors.NotFound);
        const shown = await runIn(lab, 1, omCommand(["showmap"]), { OM_PROC: proc });
        assert.match(shown.out, /^My Node-Id: 0x0001\n/);
        assert.match(await log(lab, 1), /Notified kernel to activate openMosix/);
      } finally {
        await Deno.remove(proc, { recursive: true });
      }
    }),
});

Deno.test({
  name: "discover: --alpha writes the seed's om_config and om_mospe files",
  ignore,
  fn: () =>
    withLab("alpha", planLab(2), async (lab) => {
      // The seed's files are /tmp/om_config and /tmp/om_mospe; OM_ALPHA_DIR moves them here so
      // that the host's /tmp is not touched (resolveStatePaths' default is tested in unit tests).
      const alphaDir = await Deno.makeTempDir({ prefix: "om-alpha-" });
      try {
        await startDaemon(lab, 1, { args: ["--alpha"], env: { OM_ALPHA_DIR: alphaDir } });
        await startDaemon(lab, 2);
        await retryUntil(
          async () => {
            const config = await Deno.readFile(`${alphaDir}/om_config`).catch(() => undefined);
            return config?.length === 8 + 2 * 8;
          },
          10_000,
          { what: "the ALPHA map to hold two nodes" },
        );
        assert.deepEqual(await Deno.readFile(`${alphaDir}/om_mospe`), new Uint8Array([0, 0, 0, 1]));
        await assert.rejects(Deno.stat(`${nodeRoot(lab, 1)}/admin/config`), Deno.errors.NotFound);
        const shown = await runIn(lab, 1, omCommand(["showmap", "--alpha"]), {
          OM_ALPHA_DIR: alphaDir,
        });
        assert.match(shown.out, /^My Node-Id: 0x0001\n/);
        assert.match(await log(lab, 1), /Simulated notification to activate openMosix/);
      } finally {
        await Deno.remove(alphaDir, { recursive: true });
      }
    }),
});
