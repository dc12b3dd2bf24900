/**
 * `om exec` on real lab nodes (PROTOCOL.md §13): refused everywhere by default, with the reason;
 * with exec_allow = * every node runs the command, each line marked with its node, -b gathers,
 * the largest exit status is passed on, a down node is reported, the time limit kills the
 * command's whole process group, a command not found is 127, output past the limit is cut with a
 * marker; only root may ask; a node without the key cannot ask, and a keyless cluster runs
 * nothing; OM_EXEC_ALLOW in `om lab up`'s environment reaches its nodes. Every command run or
 * refused is in the log of the node that ran it, with who asked from where.
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { type Lab, loadLab, nodeRoot } from "../../lib/lab/record.ts";
import { signalDaemon, startDaemon, stopDaemon } from "../../lib/lab/daemons.ts";
import { readNodeMap, waitForAgreement } from "../../lib/lab/maps.ts";
import { destroyLab } from "../../lib/lab/destroy.ts";
import { lookupUser } from "../../lib/base/users.ts";
import { newKeyText } from "../../lib/base/key.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import {
  channelRequest,
  ROOT,
  runIn,
  sh,
  startAll,
  sweep,
  uniqueName,
  withLab,
} from "../tools/labkit.ts";

const user = ROOT ? await lookupUser(65534) : undefined;
const ignore = !ROOT || !user;
const REPO = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** `om exec ARGS...` run as root inside node `index`. */
const omExec = (lab: Lab, index: number, ...args: string[]) =>
  runIn(lab, index, omCommand(["exec", ...args]));

/** The daemon's log of node `index`. */
const logOf = (lab: Lab, index: number) =>
  Deno.readTextFile(`${lab.record.dir}/node${index}/discover.log`);

/** Lets everyone reach `path` (the lab's directories are root's, mode 0700). */
async function reachable(path: string): Promise<void> {
  for (let dir = path; dir !== "/" && dir !== ""; dir = dir.slice(0, dir.lastIndexOf("/"))) {
    const mode = (await Deno.stat(dir)).mode! & 0o7777;
    if ((mode & 0o001) === 0) await Deno.chmod(dir, mode | 0o011);
  }
}

const OFF = 'refused: Cannot run "uname": om exec is off on this node (exec_allow is empty; set ' +
  "exec_allow in its om.conf, OM_EXEC_ALLOW or --exec-allow: names, paths, * for all)";

Deno.test({
  name: "exec: refused on every node by default, with the reason, and logged where refused",
  ignore,
  fn: () =>
    withLab("exoff", planLab(3), async (lab) => {
      await startAll(lab);
      const result = await omExec(lab, 1, "--", "uname", "-n");
      assert.equal(result.code, 255, result.err);
      assert.equal(result.out, "");
      assert.deepEqual(result.err.split("\n").filter(Boolean).sort(), [
        `node 1: ${OFF}`,
        `node 2: ${OFF}`,
        `node 3: ${OFF}`,
      ]);
      assert.match(
        await logOf(lab, 1),
        /exec: refused \["uname","-n"\] asked by root \(uid 0\) on node 1 at the local socket: /,
      );
      for (const index of [2, 3]) {
        assert.match(
          await logOf(lab, index),
          /exec: refused \["uname","-n"\] asked by root \(uid 0\) on node 1 at 10\.77\.0\.1: Cannot run "uname": om exec is off/,
        );
      }
      // -b gathers the three refusals under one header.
      const gathered = await omExec(lab, 2, "-b", "--", "uname", "-n");
      assert.equal(gathered.code, 255);
      assert.equal(gathered.out, `---------------\nnode 1-3 (3): ${OFF}\n---------------\n`);

      // Node 2 allows uname in its om.conf and re-reads it on SIGHUP: only node 2 runs it.
      await Deno.writeTextFile(
        `${lab.record.dir}/node2/om.conf`,
        `key = ${lab.record.key}\nexec_allow = uname\n`,
      );
      await signalDaemon(lab, 2, "SIGHUP");
      const allowed = await retryUntil(
        async () => {
          const result = await omExec(lab, 1, "-w", "2", "--", "uname", "-s");
          return result.code === 0 ? result : undefined;
        },
        10_000,
        { what: "node 2 to take exec_allow = uname" },
      );
      assert.equal(allowed.out, "node 2: Linux\n");
      const still = await omExec(lab, 1, "-w", "2-3", "--", "id", "-u");
      assert.equal(still.code, 255);
      assert.match(
        still.err,
        /^node 2: refused: Cannot run "id": exec_allow on this node does not allow it \(exec_allow = uname\)$/m,
      );
      assert.match(still.err, /^node 3: refused: Cannot run "id": om exec is off on this node/m);
    }),
});

Deno.test({
  name: "exec: with exec_allow = * every node runs it: lines marked, -b, largest status, " +
    "down node, time limit, not found, output cut, root only",
  ignore,
  fn: () =>
    withLab("exon", planLab(4), async (lab) => {
      await startAll(lab, [], { OM_EXEC_ALLOW: "*" });

      // Each node says who it is and exits with its index: the largest status is 4.
      const said = await omExec(
        lab,
        1,
        "--",
        "sh",
        "-c",
        'n=$(basename "$(dirname "$OM_ROOT")"); echo "I am $n"; echo "second line"; exit ${n#node}',
      );
      assert.equal(said.code, 4, said.err);
      const lines = said.out.split("\n").filter(Boolean);
      assert.equal(lines.length, 8, said.out);
      for (const line of lines) {
        const match = /^node (\d): (?:I am node(\d)|second line)$/.exec(line);
        assert.ok(match, `a line not marked with its node: ${line}`);
        if (match[2]) assert.equal(match[2], match[1], line);
      }
      for (let index = 1; index <= 4; index++) {
        // A node's lines come together, in order.
        assert.ok(
          said.out.includes(`node ${index}: I am node${index}\nnode ${index}: second line\n`),
        );
        assert.match(said.err, new RegExp(`^node ${index}: exit status ${index}$`, "m"));
      }

      // -b: three identical nodes under one header, the odd one under its own.
      const gathered = await omExec(
        lab,
        2,
        "-b",
        "--",
        "sh",
        "-c",
        'echo same; case "$OM_ROOT" in */node3/*) echo odd; exit 5;; esac',
      );
      assert.equal(gathered.code, 5, gathered.err);
      assert.equal(
        gathered.out,
        "---------------\nnode 1-2,4 (3)\n---------------\nsame\n" +
          "---------------\nnode 3 (1): exit status 5\n---------------\nsame\nodd\n",
      );

      // A command not found is 127, as a shell says.
      const missing = await omExec(lab, 1, "-w", "2", "--", "no-such-command-om");
      assert.equal(missing.code, 127);
      assert.equal(missing.err, "node 2: no-such-command-om: command not found (status 127)\n");

      // The time limit kills all the command started on every node, what made a session of its
      // own too (its cgroup); the others' time is kept.
      const started = Date.now();
      const slow = await omExec(
        lab,
        1,
        "-t",
        "1",
        "-w",
        "2-3",
        "--",
        "sh",
        "-c",
        "sleep 31.5 & setsid sleep 31.6 </dev/null >/dev/null 2>&1 & echo started; sleep 31.4",
      );
      const took = Date.now() - started;
      assert.equal(slow.code, 124, slow.err);
      assert.ok(took < 10_000, `took ${took} ms`);
      assert.deepEqual(slow.out.split("\n").filter(Boolean).sort(), [
        "node 2: started",
        "node 3: started",
      ]);
      assert.deepEqual(slow.err.split("\n").filter(Boolean).sort(), [
        "node 2: timed out after 1 s: killed (status 124)",
        "node 3: timed out after 1 s: killed (status 124)",
      ]);
      await retryUntil(
        async () => (await sh("pgrep -f 'sleep 31\\.[456]' || true")).out.trim() === "",
        3000,
        { what: "the background sleeps to be killed with the command" },
      );

      // Huge binary output: cut at 1 MiB with a marker, shown without a control character.
      const binary = await omExec(lab, 3, "-w", "2", "--", "head", "-c", "3000000", "/dev/urandom");
      assert.equal(binary.code, 0, binary.err);
      assert.match(
        binary.out,
        /\nnode 2: \[om exec: output cut at 1 MiB per node: 1951424 more bytes of stdout dropped\]\n$/,
      );
      // deno-lint-ignore no-control-regex
      assert.doesNotMatch(binary.out, /[\x00-\x08\x0b-\x1f\x7f]/);
      assert.ok(binary.out.split("\n").filter(Boolean).every((l) => l.startsWith("node 2: ")));

      // Node 2's log says who asked from where.
      assert.match(
        await logOf(lab, 2),
        /exec: running \["head","-c","3000000","\/dev\/urandom"\] as root, asked by root \(uid 0\) on node 3 at 10\.77\.0\.3, time limit 60000 ms/,
      );
      assert.match(
        await logOf(lab, 2),
        /exec: \["no-such-command-om"\] asked by root \(uid 0\) on node 1 at 10\.77\.0\.1 ended: unstartable \(status 127\)/,
      );

      // Only root may ask.
      const home = await Deno.makeTempDir({ prefix: "om-exec-home-" });
      try {
        await reachable(nodeRoot(lab, 1));
        const nobody = await runIn(lab, 1, [
          "setpriv",
          "--reuid=65534",
          `--regid=${user!.gid}`,
          "--clear-groups",
          "--",
          "env",
          `HOME=${home}`,
          ...omCommand(["exec", "--", "true"]),
        ]);
        assert.equal(nobody.code, 1, nobody.err);
        assert.equal(
          nobody.err,
          'om exec: Cannot run "exec.ask": Operation not permitted (root only)\n',
        );
      } finally {
        await Deno.remove(home, { recursive: true });
      }

      // A node that is down: node 4 leaves; -w 1-4 reports it, the others run.
      await stopDaemon(lab, 4);
      await retryUntil(
        async () => !(await readNodeMap(lab, 1)).ids?.includes(4),
        10_000,
        { what: "node 4 to leave node 1's map" },
      );
      const down = await omExec(lab, 1, "-w", "1-4", "--", "echo", "up");
      assert.equal(down.code, 255, down.err);
      assert.deepEqual(down.out.split("\n").filter(Boolean).sort(), [
        "node 1: up",
        "node 2: up",
        "node 3: up",
      ]);
      assert.equal(down.err, "node 4: down: it is not in the cluster map\n");
      // Without -w, the nodes that are up: all fine.
      const up = await omExec(lab, 1, "-b", "--", "echo", "up");
      assert.equal(up.code, 0, up.err);
      assert.equal(up.out, "---------------\nnode 1-3 (3)\n---------------\nup\n");
    }),
});

Deno.test({
  name: "exec: a node without the key cannot ask, nor can a host with another key",
  ignore,
  fn: () =>
    withLab("exkey", planLab(3), async (lab) => {
      // Node 3's configuration names no key: it is no member of the keyed cluster.
      await Deno.writeTextFile(`${lab.record.dir}/node3/om.conf`, "# no key\n");
      for (const node of lab.record.nodes) {
        await startDaemon(lab, node.index, { env: { OM_EXEC_ALLOW: "*" } });
      }
      const agreement = await waitForAgreement(lab, { ids: [1, 2], nodes: [1, 2] });
      assert.ok(agreement.agreed, JSON.stringify(agreement.views));

      // Its own daemon will not ask for it (nor run it itself).
      const keyless = await omExec(lab, 3, "--", "touch", "/tmp/om-exec-pwned");
      assert.equal(keyless.code, 1, keyless.err);
      assert.match(
        keyless.err,
        /^om exec: Cannot ask the nodes to run commands: om exec needs a cluster key \(nothing would prove who asks\)/m,
      );
      // The keyed nodes are not in its map; it is not in theirs.
      const listed = await omExec(lab, 3, "-w", "1-3", "--", "touch", "/tmp/om-exec-pwned");
      assert.equal(listed.code, 255, listed.err);
      assert.match(listed.err, /^node 1: down: it is not in the cluster map$/m);
      assert.match(
        listed.err,
        /^om exec: Cannot ask the nodes to run commands: om exec needs a cluster key/m,
      );
      // Straight to node 1's channel, without the key or with another: refused at the handshake.
      const body = { argv: ["touch", "/tmp/om-exec-pwned"], timeoutMs: 5000, uid: 0, user: "root" };
      const none = await channelRequest(lab, 3, "10.77.0.1", "exec.run", { body });
      assert.equal(none.code, 1);
      assert.match(none.out, /^refused: .*requires the cluster key/m);
      const other = `${lab.record.dir}/other.key`;
      await Deno.writeTextFile(other, newKeyText(), { mode: 0o600 });
      const wrong = await channelRequest(lab, 3, "10.77.0.1", "exec.run", { body, key: other });
      assert.equal(wrong.code, 1);
      assert.match(wrong.out, /^refused: authentication failed/m);
      assert.equal(await Deno.stat("/tmp/om-exec-pwned").then(() => true, () => false), false);
      assert.doesNotMatch(await logOf(lab, 1), /exec: running/);
      // The key holders still ask each other.
      const members = await omExec(lab, 1, "-b", "--", "echo", "ok");
      assert.equal(members.code, 0, members.err);
      assert.equal(members.out, "---------------\nnode 1-2 (2)\n---------------\nok\n");
    }),
});

Deno.test({
  name: "exec: a keyless cluster runs nothing, even with exec_allow = *",
  ignore,
  fn: () =>
    withLab("exnokey", planLab(2), async (lab) => {
      await startAll(lab, [], { OM_EXEC_ALLOW: "*" });
      const asked = await omExec(lab, 1, "--", "true");
      assert.equal(asked.code, 1);
      assert.match(
        asked.err,
        /^om exec: Cannot ask the nodes to run commands: om exec needs a cluster key/,
      );
      const body = { argv: ["true"], timeoutMs: 5000, uid: 0, user: "root" };
      const direct = await channelRequest(lab, 2, "10.77.0.1", "exec.run", { body });
      assert.equal(direct.code, 1);
      assert.match(direct.out, /Cannot run "exec\.run" on this node: om exec needs a cluster key/);
      assert.doesNotMatch(await logOf(lab, 1), /exec: running/);
    }, { key: false }),
});

Deno.test({
  name: "exec: OM_EXEC_ALLOW in om lab up's environment reaches its nodes",
  ignore,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-lab-test-" });
    const name = uniqueName("exup");
    const om = (args: string[], env: Record<string, string> = {}) =>
      new Deno.Command(`${REPO}om`, {
        args,
        env: { OM_LAB_DIR: dir, ...env },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const decoder = new TextDecoder();
    try {
      const up = await om(["lab", "up", "2", "--name", name], { OM_EXEC_ALLOW: "echo" });
      assert.equal(up.code, 0, decoder.decode(up.stderr));
      const run = async (...args: string[]) => {
        const output = await om([
          "lab",
          "exec",
          "1",
          "--name",
          name,
          "--",
          `${REPO}om`,
          "exec",
          ...args,
        ]);
        return {
          code: output.code,
          out: decoder.decode(output.stdout),
          err: decoder.decode(output.stderr),
        };
      };
      const echo = await run("-b", "--", "echo", "hello");
      assert.equal(echo.code, 0, echo.err);
      assert.equal(echo.out, "---------------\nnode 1-2 (2)\n---------------\nhello\n");
      const other = await run("-b", "--", "true");
      assert.equal(other.code, 255);
      assert.equal(
        other.out,
        '---------------\nnode 1-2 (2): refused: Cannot run "true": exec_allow on this node does ' +
          "not allow it (exec_allow = echo)\n---------------\n",
      );
    } finally {
      const lab = await loadLab(dir, name).catch(() => undefined);
      if (lab) await destroyLab(lab, { graceMs: 1000 }).catch(() => {});
      await sweep(name);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
