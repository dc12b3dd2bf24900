/**
 * The lab on real namespaces, bridges and cgroups (root only). Every test uses its own lab name
 * and a temporary OM_LAB_DIR, and in `finally` removes its lab and then sweeps anything left
 * with that name, so a failing test leaves no namespace or cgroup behind.
 */
import assert from "node:assert/strict";
import { parse } from "../../lib/cli/parser.ts";
import { captureContext } from "../../lib/cli/context.ts";
import { type NodeSpec, planLab } from "../../lib/lab/plan.ts";
import { findNode, loadLab } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { createLab, LabExistsError } from "../../lib/lab/create.ts";
import { destroyLab } from "../../lib/lab/destroy.ts";
import { isAlive, startDaemon, stopDaemon } from "../../lib/lab/daemons.ts";
import { readNodeMap, waitForAgreement } from "../../lib/lab/maps.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { run, spec } from "../../commands/lab.ts";
import {
  cgroupsOf,
  exists,
  inNode,
  manualOnly,
  namespacesOf,
  ROOT,
  sh,
  sweep,
  uniqueName,
  withLab,
} from "../tools/labkit.ts";

const ignore = !ROOT;
const REPO = new URL("../../", import.meta.url).pathname;
const MCAST = new URL("../tools/mcast.ts", import.meta.url).pathname;
const decoder = new TextDecoder();

Deno.test({
  name: "lab: three nodes with addresses, default route and a bridge, none in the host",
  ignore,
  fn: async () => {
    const hostLinks = (await sh("ip -o link show")).out;
    const hostRoutes = (await sh("ip route show")).out;
    await withLab("a", planLab(3), async (lab) => {
      const { name } = lab.record;
      assert.deepEqual(await namespacesOf(name), [
        `${name}-1`,
        `${name}-2`,
        `${name}-3`,
        `${name}-sw`,
      ]);
      const addresses = await inNode(lab, 2, ["ip", "-4", "-o", "addr", "show"]);
      assert.match(addresses, /\blo\s+inet 127\.0\.0\.1\/8/);
      assert.match(addresses, /\beth0\s+inet 10\.77\.0\.2\/24/);
      assert.match(await inNode(lab, 2, ["ip", "route", "show"]), /^default dev eth0/m);
      const bridge = (await sh(`ip -n ${name}-sw -d link show br0`)).out;
      assert.match(bridge, /mcast_snooping 0/);
      assert.match(bridge, /state UP/);
      const ports = (await sh(`ip -n ${name}-sw -o link show master br0`)).out;
      assert.equal(ports.trim().split("\n").length, 3);
      // The host's own namespace is as it was: no lab interface, no lab route.
      assert.doesNotMatch((await sh("ip -o link show")).out, /\bn[123]e0\b/);
      assert.equal(
        (await sh("ip route show")).out.includes("10.77."),
        hostRoutes.includes("10.77."),
      );
      assert.equal(
        (await sh("ip -o link show")).out.includes(": br0"),
        hostLinks.includes(": br0"),
      );
      // The node's environment.
      const env = await inNode(lab, 3, ["sh", "-c", "echo $OM_ROOT $OM_LAB $OM_LAB_NODE"]);
      assert.equal(env.trim(), `${lab.record.dir}/node3/root ${name} 3`);
    });
  },
});

Deno.test({
  name: "lab: multicast crosses the bridge, and not into another network",
  ignore,
  fn: async () => {
    const nodes: NodeSpec[] = [
      { index: 1, nics: [{ net: 0, address: "10.77.0.1" }] },
      { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
      { index: 3, nics: [{ net: 1, address: "10.77.1.3" }] },
    ];
    await withLab("m", nodes, async (lab) => {
      const deno = (args: string[]) => [Deno.execPath(), "run", "-A", "--unstable-net", ...args];
      const receive = async (index: number, address: string, timeoutMs: number) => {
        const receiver = execInNode(
          lab,
          index,
          deno([MCAST, "recv", "239.192.79.99", "20399", address, String(timeoutMs)]),
          { stdout: "piped", stderr: "inherit" },
        );
        const reader = receiver.stdout.pipeThrough(new TextDecoderStream()).getReader();
        assert.equal((await reader.read()).value?.trim(), "listening");
        return { receiver, reader };
      };
      const near = await receive(2, "10.77.0.2", 5000);
      const far = await receive(3, "10.77.1.3", 1500);
      const sender = execInNode(
        lab,
        1,
        deno([MCAST, "send", "239.192.79.99", "20399", "10.77.0.1", "hello", "50"]),
        { stdout: "null", stderr: "inherit" },
      );
      let heard = "";
      for (;;) {
        const { value, done } = await near.reader.read();
        if (done) break;
        heard += value;
      }
      assert.equal(heard.trim(), "hello from 10.77.0.1");
      assert.equal((await near.receiver.status).code, 0);
      let farHeard = "";
      for (;;) {
        const { value, done } = await far.reader.read();
        if (done) break;
        farHeard += value;
      }
      assert.equal(farHeard.trim(), "timeout");
      assert.equal((await far.receiver.status).code, 1);
      await sender.status;
    });
  },
});

Deno.test({
  name: "lab: processes of a node run in its cgroups, with the limits asked for",
  ignore,
  fn: async () => {
    await withLab("c", planLab(2), async (lab) => {
      const node = lab.record.nodes[1];
      assert.ok(node.cgroups.cpu && node.cgroups.memory, "cgroup v1 cpu and memory mounted");
      const script = 'echo $$; cat "$OM_CGROUP_CPU/cgroup.procs"; echo -; ' +
        'cat "$OM_CGROUP_MEMORY/cgroup.procs"';
      const [self, ...listed] = (await inNode(lab, 2, ["sh", "-c", script])).trim().split("\n");
      const cpu = listed.slice(0, listed.indexOf("-"));
      const memory = listed.slice(listed.indexOf("-") + 1);
      // The shell, and the cat it started; nothing else (the groups are the node's own).
      assert.ok(cpu.includes(self) && memory.includes(self), `${self} in ${listed}`);
      assert.equal(cpu.length, 2);
      assert.equal(
        (await Deno.readTextFile(`${node.cgroups.cpu}/cpu.cfs_quota_us`)).trim(),
        String(
          Number(await Deno.readTextFile(`${node.cgroups.cpu}/cpu.cfs_period_us`)) / 2,
        ),
      );
      assert.equal(
        (await Deno.readTextFile(`${node.cgroups.memory}/memory.limit_in_bytes`)).trim(),
        String(64 * 1024 * 1024),
      );
      const own = await Deno.readTextFile("/proc/self/cgroup");
      const inside = await inNode(lab, 2, ["cat", "/proc/self/cgroup"]);
      assert.notEqual(inside, own);
      assert.match(inside, new RegExp(`:cpu[^:]*:.*/${lab.record.name}/node2$`, "m"));
    }, { cpus: 0.5, memory: 64 * 1024 * 1024 });
  },
});

Deno.test({
  name: "lab: the CLI makes a lab, runs in it, lists it and removes all of it",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("cli");
    const ctx = () => captureContext({ OM_LAB_DIR: dir, PATH: Deno.env.get("PATH") ?? "" });
    const om = (args: string[]) => run(parse(spec, args), ctx());
    try {
      const upCtx = ctx();
      assert.equal(await run(parse(spec, ["up", "3", "--name", name, "--no-wait"]), upCtx), 0);
      assert.equal(
        upCtx.stdout(),
        `lab ${name}: 3 nodes up, daemons started (not waiting for the maps)\n`,
      );
      const lab = (await loadLab(dir, name))!;
      assert.equal(lab.record.nodes.length, 3);
      const pids = lab.record.nodes.map((n) => n.daemon!.pid);
      const agreement = await waitForAgreement(lab, { timeoutMs: 20000 });
      assert.ok(agreement.agreed, JSON.stringify(agreement.views));

      // A second up of the same lab is refused and changes nothing.
      const again = ctx();
      assert.equal(await run(parse(spec, ["up", "2", "--name", name]), again), 1);
      assert.match(again.stderr(), /it exists \(3 nodes/);

      const statusCtx = ctx();
      assert.equal(await run(parse(spec, ["status", "--name", name, "--json"]), statusCtx), 0);
      const status = JSON.parse(statusCtx.stdout());
      assert.deepEqual(
        status.nodes.map((n: { alive: boolean; mapNodes: number }) => [n.alive, n.mapNodes]),
        [[true, 3], [true, 3], [true, 3]],
      );
      const table = ctx();
      assert.equal(await run(parse(spec, ["status", "--name", name]), table), 0);
      assert.match(
        table.stdout(),
        new RegExp(`^2 +${name}-2 +eth0=10\\.77\\.0\\.2/24 +\\d+ alive +3 of 3$`, "m"),
      );

      // exec, as a separate om: exit status, signal as 128+n, the node's state tree.
      const exec = async (command: string) =>
        await new Deno.Command(`${REPO}om`, {
          args: ["lab", "exec", "2", "--name", name, "--", "sh", "-c", command],
          env: { OM_LAB_DIR: dir },
          stdout: "piped",
          stderr: "inherit",
        }).output();
      assert.equal((await exec("exit 7")).code, 7);
      assert.equal((await exec("kill -TERM $$")).code, 143);
      const showmap = await exec(`${REPO}om showmap`);
      assert.equal(showmap.code, 0);
      assert.match(decoder.decode(showmap.stdout), /^My Node-Id: 0x0002$/m);

      const downCtx = ctx();
      assert.equal(await run(parse(spec, ["down", "--name", name]), downCtx), 0);
      assert.equal(downCtx.stdout(), `lab ${name}: removed (3 nodes)\n`);
      assert.deepEqual(await namespacesOf(name), []);
      assert.deepEqual(await cgroupsOf(name), []);
      assert.equal(await exists(`${dir}/${name}`), false);
      for (const [i, pid] of pids.entries()) {
        assert.equal(await isAlive(lab.record.nodes[i].daemon!), false, `daemon pid ${pid}`);
      }

      const missing = ctx();
      assert.equal(await run(parse(spec, ["down", "--name", name]), missing), 1);
      assert.match(missing.stderr(), /Cannot find lab ".*" in .*: no such lab/);
      assert.equal(await om(["status", "--name", name]), 1);
    } finally {
      const lab = await loadLab(dir, name).catch(() => undefined);
      if (lab) await destroyLab(lab, { graceMs: 1000 }).catch(() => {});
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "lab: a namespace of the same name that the lab did not make is left alone",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("f");
    try {
      // Already there before: creation is refused, the stranger survives, nothing is left.
      assert.equal((await sh(`ip netns add ${name}-2`)).code, 0);
      await assert.rejects(createLab({ name, dir, nodes: planLab(3) }), LabExistsError);
      assert.deepEqual(await namespacesOf(name), [`${name}-2`]);
      assert.equal(await exists(`${dir}/${name}`), false);
      assert.deepEqual(await cgroupsOf(name), []);
      await sh(`ip netns delete ${name}-2`);

      // Replaced after: destroy removes the lab's own and keeps the stranger.
      const lab = await createLab({ name, dir, nodes: planLab(3) });
      await sh(`ip netns delete ${name}-3 && ip netns add ${name}-3`);
      await destroyLab(lab);
      assert.deepEqual(await namespacesOf(name), [`${name}-3`]);
      assert.equal(await exists(`${dir}/${name}`), false);
    } finally {
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "lab: a build that fails half way removes what it made",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("h");
    const bin = `${dir}/bin`;
    const path = Deno.env.get("PATH") ?? "";
    const realIp = (await sh("command -v ip")).out.trim();
    try {
      // An ip that fails when asked to configure node 2, after the rest was made.
      await Deno.mkdir(bin);
      await Deno.writeTextFile(
        `${bin}/ip`,
        `#!/bin/sh\n[ "$1 $2" = "-n ${name}-2" ] && { echo "injected failure" >&2; exit 1; }\n` +
          `exec ${realIp} "$@"\n`,
      );
      await Deno.chmod(`${bin}/ip`, 0o755);
      Deno.env.set("PATH", `${bin}:${path}`);
      await assert.rejects(
        createLab({ name, dir, nodes: planLab(3) }),
        /injected failure/,
      );
      Deno.env.set("PATH", path);
      assert.deepEqual(await namespacesOf(name), []);
      assert.deepEqual(await cgroupsOf(name), []);
      assert.equal(await exists(`${dir}/${name}`), false);
    } finally {
      Deno.env.set("PATH", path);
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "lab: two networks joined by a relay node agree; daemons stop on SIGTERM",
  ignore,
  fn: async () => {
    const nodes: NodeSpec[] = [
      {
        index: 1,
        nics: [{ net: 0, address: "10.77.0.1" }, { net: 1, address: "10.77.1.1" }],
        discoverArgs: ["-i", "eth0,eth1"],
      },
      { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
      { index: 3, nics: [{ net: 1, address: "10.77.1.3" }] },
    ];
    await withLab("r", nodes, async (lab) => {
      for (const node of lab.record.nodes) {
        await startDaemon(lab, node.index, { args: ["--announce-interval", "1"] });
      }
      const agreement = await waitForAgreement(lab, { timeoutMs: 20000 });
      assert.ok(agreement.agreed, JSON.stringify(agreement.views));
      assert.deepEqual(agreement.expected, [1, 2, 0x0103]);
      const stopped = await stopDaemon(lab, 3);
      assert.equal(stopped?.graceful, true);
      assert.equal(lab.record.nodes[2].daemon, undefined);
      assert.equal(stopped?.status?.code, 0);
    });
  },
});

Deno.test({
  name: "lab: a two-interface node with -m 1 is one node and an alias in the others' maps",
  ignore,
  fn: async () => {
    const nodes: NodeSpec[] = [
      {
        index: 1,
        nics: [{ net: 0, address: "10.77.0.1" }, { net: 1, address: "10.77.1.1" }],
        discoverArgs: ["-i", "eth0,eth1", "-m", "1"],
      },
      { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
    ];
    await withLab("t", nodes, async (lab) => {
      for (const node of lab.record.nodes) await startDaemon(lab, node.index);
      const agreement = await waitForAgreement(lab, { timeoutMs: 20000 });
      assert.ok(agreement.agreed, JSON.stringify(agreement.views));
      const view = await readNodeMap(lab, 2);
      assert.deepEqual(view.ids, [1, 2]);
      assert.equal(view.aliases, 1);
    });
  },
});

/** `om` as the lab's next steps spell it, run from this process's directory. */
const OM_WORD = `${Deno.cwd()}/om` === `${REPO}om` ? "./om" : `${REPO}om`;

Deno.test({
  name: "lab: up gives every node the OM_CRIU it was given, as given, and says what to try next",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("crg");
    const given = "/given/criu";
    const ctx = captureContext({
      OM_LAB_DIR: dir,
      PATH: Deno.env.get("PATH") ?? "",
      OM_CRIU: given,
    });
    try {
      assert.equal(await run(parse(spec, ["up", "2", "--name", name]), ctx), 0, ctx.stderr());
      const lab = (await loadLab(dir, name))!;
      assert.equal(lab.record.criu, given);
      // The daemon's own environment, and a command's in a node.
      for (const node of lab.record.nodes) {
        const environ = await Deno.readTextFile(`/proc/${node.daemon!.pid}/environ`);
        assert.ok(environ.split("\0").includes(`OM_CRIU=${given}`), `daemon of node ${node.index}`);
      }
      assert.equal((await inNode(lab, 2, ["sh", "-c", "echo $OM_CRIU"])).trim(), given);
      const exec = `${OM_WORD} lab exec 1 --name ${name} --`;
      // Every node serves its status page; up says where node 1's is.
      assert.equal(lab.record.http, 20380);
      assert.match(
        await Deno.readTextFile(lab.record.nodes[1].config),
        /^http = 10\.77\.0\.2:20380$/m,
      );
      assert.match(ctx.stdout(), /^status page: http:\/\/10\.77\.0\.1:20380\/ /m);
      assert.ok(
        ctx.stdout().endsWith(
          `cluster key: ${lab.record.key} (named by every node's om.conf)\n` +
            "\n" +
            "Try next:\n" +
            `  ${exec} ${OM_WORD} run -- sh -c 'echo job $OM_JOB; i=0; while sleep 1; do ` +
            "i=$((i+1)); echo $i; done'\n" +
            "      a job on node 1: it prints its PID, then counts (Ctrl-C ends it)\n" +
            `  ${exec} ${OM_WORD} migrate PID 2\n` +
            `      from another terminal: moves it to node 2, counting on (${exec} ${OM_WORD} ps ` +
            "lists it)\n" +
            `  ${exec} ${OM_WORD} stress\n` +
            "      the stress test: jobs that move between the nodes and must compute the right " +
            "answer\n",
        ),
        ctx.stdout(),
      );
      assert.equal(ctx.stderr(), "");
    } finally {
      const lab = await loadLab(dir, name).catch(() => undefined);
      if (lab) await destroyLab(lab, { graceMs: 1000 }).catch(() => {});
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "lab: without OM_CRIU, up takes scripts/install-criu's CRIU and a job moves; ps lists it once",
  // The test machine's CRIU (scripts/test provides one as root): without it, this cannot pass.
  ignore: ignore || !findCriu((name) => Deno.env.get(name)),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("crs");
    const path = "/usr/sbin:/usr/bin:/sbin:/bin";
    const ctx = captureContext({ OM_LAB_DIR: dir, PATH: path });
    let job: ReturnType<typeof execInNode> | undefined;
    try {
      const script = await new Deno.Command("sh", {
        args: [`${REPO}scripts/install-criu`],
        env: { OM_CRIU: "", PATH: path },
        stdout: "piped",
        stderr: "null",
      }).output();
      assert.equal(script.code, 0, "scripts/install-criu provides a CRIU here");
      const installed = decoder.decode(script.stdout).trim().split("\n").at(-1);

      assert.equal(await run(parse(spec, ["up", "3", "--name", name]), ctx), 0, ctx.stderr());
      const lab = (await loadLab(dir, name))!;
      assert.equal(lab.record.criu, installed);
      await manualOnly(lab);

      // om doctor in a node: everything essential is there; the node's own daemon, ports, CRIU.
      const doctor = await execInNode(lab, 3, [`${REPO}om`, "doctor", "--json"], {
        stdout: "piped",
        stderr: "piped",
      }).output();
      const report = JSON.parse(decoder.decode(doctor.stdout));
      assert.equal(doctor.code, 0, decoder.decode(doctor.stdout));
      const by = Object.fromEntries(
        report.checks.map((c: { name: string; status: string; found: string }) => [c.name, c]),
      );
      const daemon = findNode(lab, 3).daemon!.pid;
      for (const check of ["daemon", "udp-port", "tcp-port", "multicast", "key", "criu", "tools"]) {
        assert.equal(by[check].status, "ok", `${check}: ${by[check].found}`);
      }
      assert.equal(by.daemon.found, `om discover runs (pid ${daemon})`);
      assert.equal(by["tcp-port"].found, `TCP 20302 is held by om discover (pid ${daemon})`);
      assert.match(by.multicast.found, /on eth0 \(10\.77\.0\.3\); route default dev eth0$/);
      assert.match(by.criu.found, new RegExp(` at ${installed} \\(the daemon's OM_CRIU\\): `));
      assert.match(by.cgroups.found, /^a lab node: /);
      const om = (index: number, ...args: string[]) =>
        execInNode(lab, index, [`${REPO}om`, ...args], { stdout: "piped", stderr: "piped" })
          .output();

      job = execInNode(lab, 1, [
        `${REPO}om`,
        "run",
        "--",
        "sh",
        "-c",
        "echo job $OM_JOB; i=0; while sleep 0.1; do i=$((i+1)); echo $i; done",
      ], { stdout: "piped", stderr: "inherit" });
      const reader = job.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!/^job \d+\n/.test(seen)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      const pid = Number(/^job (\d+)/.exec(seen)?.[1]);
      assert.ok(pid > 0, `the job said its PID: ${seen}`);

      const moved = await om(1, "migrate", String(pid), "2");
      assert.equal(moved.code, 0, decoder.decode(moved.stderr));
      // Right after the move: one row for the job, on node 2, none for the copy it left.
      const ps = await om(1, "ps", "--json", String(pid));
      assert.equal(ps.code, 0, decoder.decode(ps.stderr));
      const rows = JSON.parse(decoder.decode(ps.stdout));
      assert.deepEqual(rows.map((r: { pid: number; node: number }) => [r.pid, r.node]), [[pid, 2]]);
      // It counts on from node 2: more lines reach home.
      const before = seen.length;
      while (seen.length < before + 20) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      assert.ok(seen.length >= before + 20, "the moved job's output goes on arriving at home");
      reader.releaseLock();
      job.kill("SIGINT");
      assert.equal((await job.status).code, 130);
      job.stdout.cancel().catch(() => {});
      job = undefined;
    } finally {
      try {
        job?.kill("SIGKILL");
      } catch { /* ended */ }
      const lab = await loadLab(dir, name).catch(() => undefined);
      if (lab) await destroyLab(lab, { graceMs: 1000 }).catch(() => {});
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
