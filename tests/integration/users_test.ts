/**
 * Jobs of a user other than root on real lab nodes with real CRIU (root only, as the user
 * `nobody` with a temporary home): the job runs as the user, in its directory, and is listed by
 * its om ps; it starts on another node when asked (-2); its user moves it to another node and
 * home, root moves it again, and every line of its output comes, written as the user, with its
 * exit status; the user may not signal or move root's job (the job unharmed) nor expel, may not start a job where it may not go, and cannot authenticate
 * with a token it did not make (a symbolic link to root's, a path).
 */
import assert from "node:assert/strict";
import { planLab } from "../../lib/lab/plan.ts";
import { findNode, type Lab, nodeRoot } from "../../lib/lab/record.ts";
import { execInNode } from "../../lib/lab/exec.ts";
import { findCriu } from "../../lib/criu/preflight.ts";
import { readJobRecords } from "../../lib/jobs/table.ts";
import { lookupUser } from "../../lib/base/users.ts";
import { readNodeInfo } from "../../lib/state/nodestate.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { inNode, manualOnly, ROOT, runIn, startAll, withLab } from "../tools/labkit.ts";

const criu = findCriu((name) => Deno.env.get(name));
const user = ROOT ? await lookupUser(65534) : undefined;
const ignore = !ROOT || !criu || !user;
const decoder = new TextDecoder();
const encoder = new TextEncoder();
const UID = 65534;
const localreq = new URL("../tools/localreq.ts", import.meta.url).pathname;
const deno = Deno.execPath();

/** The argv that runs `argv` as the user, with HOME set. */
const asUser = (home: string, argv: string[]) => [
  "setpriv",
  `--reuid=${UID}`,
  `--regid=${user!.gid}`,
  "--clear-groups",
  "--",
  "env",
  `HOME=${home}`,
  ...argv,
];

/** Lets everyone reach `path` (the lab's directories are root's, mode 0700). */
async function reachable(path: string): Promise<void> {
  for (let dir = path; dir !== "/" && dir !== ""; dir = dir.slice(0, dir.lastIndexOf("/"))) {
    const mode = (await Deno.stat(dir)).mode! & 0o7777;
    if ((mode & 0o001) === 0) await Deno.chmod(dir, mode | 0o011);
  }
}

/** One request on node 1's local socket as the user (a forged token when given). */
async function request(lab: Lab, home: string, command: string, body: unknown, token?: string) {
  const argv = [deno, "run", "-A", "--quiet", localreq, nodeRoot(lab, 1), command];
  argv.push(JSON.stringify(body), ...(token === undefined ? [] : [token]));
  return await runIn(lab, 1, asUser(home, argv));
}

Deno.test({
  name: "users: a user's job runs as it, is its own, others' are not, and moves as it",
  ignore,
  fn: async () => {
    const home = await Deno.makeTempDir({ prefix: "om-user-home-" });
    try {
      await Deno.chown(home, UID, user!.gid);
      await withLab("usr", planLab(2), async (lab) => {
        await manualOnly(lab);
        await startAll(lab, [], { OM_CRIU: criu! });
        await reachable(nodeRoot(lab, 1));
        assert.equal((await Deno.lstat(`${nodeRoot(lab, 1)}/users`)).mode! & 0o7777, 0o1733);
        // The images of migrations (the jobs' memory, written 0644 by CRIU) stay root's.
        const images = await runIn(lab, 1, asUser(home, ["ls", `${nodeRoot(lab, 1)}/migrations`]));
        assert.notEqual(images.code, 0, "the user lists migrations/");
        const om = (...args: string[]) => asUser(home, omCommand(args));

        // The job runs as the user, in its directory, with its environment.
        const said = await execInNode(lab, 1, om("run", "sh", "-c", "id -u; pwd; echo $HOME"), {
          cwd: home,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(decoder.decode(said.stdout), `${UID}\n${home}\n${home}\n`);
        assert.equal(said.code, 0, decoder.decode(said.stderr));

        // Started on node 2 (moved from its start gate, as the user): node 2's network, its uid,
        // its directory, its exit status.
        await retryUntil(
          async () => (await readNodeInfo(`${nodeRoot(lab, 1)}/nodes`, 2))?.status === "up",
          20_000,
          { what: "node 1 to see node 2 up" },
        );
        const addresses = "ip -4 -o addr show | awk '{print $4}' | sort";
        const placed = await execInNode(
          lab,
          1,
          om("run", "-2", "sh", "-c", `${addresses}; id -u; pwd; exit 3`),
          { cwd: home, stdout: "piped", stderr: "piped" },
        ).output();
        const two = await inNode(lab, 2, ["sh", "-c", addresses]);
        assert.equal(placed.code, 3, decoder.decode(placed.stderr));
        assert.equal(decoder.decode(placed.stdout), `${two}${UID}\n${home}\n`);

        // Moved to node 2 and home by the user, then to node 2 by root: every line, its uid.
        const child = execInNode(
          lab,
          1,
          asUser(home, [
            "env",
            "OM_TEST_SECRET=s3cret",
            ...omCommand([
              "run",
              "sh",
              "-c",
              'echo "$OM_TEST_SECRET"; while read w; do echo "$w $(id -u)"; done; exit 5',
            ]),
          ]),
          { cwd: home, stdin: "piped", stdout: "piped", stderr: "piped" },
        );
        let out = "";
        const reading = (async () => {
          for await (const c of child.stdout) out += decoder.decode(c, { stream: true });
        })();
        const stderr = new Response(child.stderr).text();
        const stdin = child.stdin.getWriter();
        const say = async (word: string) => {
          await stdin.write(encoder.encode(`${word}\n`));
          await retryUntil(() => out.includes(`${word} ${UID}\n`), 10_000, {
            what: `"${word} ${UID}" from the job`,
          });
        };
        const job = await retryUntil(
          async () =>
            (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) =>
              j.command.some((a) => a.includes("read w"))
            ),
          10_000,
          { what: "the user's job" },
        );
        assert.equal(job.uid, UID);
        await say("a");
        // The user's environment reaches the job, never the wrappers that run as root.
        const ppid =
          (await Deno.readTextFile(`/proc/${job.pid}/status`)).match(/^PPid:\s+(\d+)/m)![1];
        const wrapper = await Deno.readTextFile(`/proc/${ppid}/environ`);
        assert.ok(!wrapper.includes("OM_TEST_SECRET"), `unshare's environment: ${wrapper}`);
        // Its user may move it, and so may root: to node 2 and home by the user, then to node 2
        // by root. CRIU runs as the user there (lib/criu/jobuser.ts asJobUser); every line still comes.
        for (
          const [argv, node, word] of [
            [om("migrate", String(job.pid), "2"), 2, "there-user"],
            [om("migrate", String(job.pid), "home"), 1, "home-user"],
            [omCommand(["migrate", String(job.pid), "2"]), 2, "there-root"],
          ] as const
        ) {
          const moved = await runIn(lab, 1, [...argv]);
          assert.equal(moved.code, 0, moved.err);
          assert.match(moved.out, new RegExp(`^job ${job.pid}: node \\d+ -> node ${node}: frozen`));
          const record = (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) =>
            j.pid === job.pid
          );
          assert.equal(record?.node, node);
          await say(word);
        }

        // Root's job: the user may neither move nor signal it, and it goes on.
        const rootJob = execInNode(lab, 1, omCommand(["run", "sleep", "300"]), {
          stdout: "null",
          stderr: "piped",
        });
        const sleeper = await retryUntil(
          async () =>
            (await readJobRecords(`${nodeRoot(lab, 1)}/jobs`)).find((j) =>
              j.command[0] === "sleep"
            ),
          10_000,
          { what: "root's job" },
        );
        assert.equal(sleeper.uid, 0);
        const refused = await runIn(lab, 1, om("migrate", String(sleeper.pid), "2"));
        assert.equal(refused.code, 1);
        assert.equal(
          refused.err,
          `om migrate: Cannot migrate job ${sleeper.pid}: Operation not permitted ` +
            `(it belongs to user root)\n`,
        );
        const signal = await request(lab, home, "job.signal", {
          id: sleeper.pid,
          signal: "SIGKILL",
        });
        assert.equal(signal.code, 1);
        assert.match(signal.out, /Cannot signal job \d+: Operation not permitted \(it belongs/);
        const expel = await request(lab, home, "node.expel", {});
        assert.match(expel.out, /Operation not permitted \(root only\)/);
        assert.ok((await Deno.stat(`/proc/${sleeper.pid}`)).isDirectory, "root's job lives");
        // Node 2 takes no root jobs from other nodes (root_guests = no, re-read on SIGHUP): root
        // may not send its job there, which goes on here; the user's job still moves there.
        const node2 = findNode(lab, 2);
        await Deno.writeTextFile(node2.config, "root_guests = no\n", { append: true });
        const log2 = `${node2.dir}/discover.log`;
        const reread =
          (await Deno.readTextFile(log2)).split("SIGHUP: configuration re-read").length;
        Deno.kill(node2.daemon!.pid, "SIGHUP");
        await retryUntil(
          async () =>
            (await Deno.readTextFile(log2)).split("SIGHUP: configuration re-read").length > reread,
          10_000,
          { what: "node 2 to re-read its configuration" },
        );
        const kept = await runIn(lab, 1, omCommand(["migrate", String(sleeper.pid), "2"]));
        assert.equal(kept.code, 1, kept.out);
        assert.match(
          kept.err,
          /node 2 takes no root jobs from other nodes \(root_guests = no\); the job goes on at node 1/,
        );
        assert.ok((await Deno.stat(`/proc/${sleeper.pid}`)).isDirectory, "root's job lives on");
        for (
          const [to, node, word] of [["home", 1, "home-again"], ["2", 2, "there-again"]] as const
        ) {
          const moved = await runIn(lab, 1, om("migrate", String(job.pid), to));
          assert.equal(moved.code, 0, moved.err);
          assert.match(moved.out, new RegExp(`node \\d+ -> node ${node}: frozen`));
          await say(word);
        }
        // om ps: the user's own job by default (as ps does), root's with -a.
        const pids = async (...args: string[]) => {
          const ps = await runIn(lab, 1, om("ps", "--json", ...args));
          assert.equal(ps.code, 0, ps.err);
          return JSON.parse(ps.out).map((r: { pid: number }) => r.pid) as number[];
        };
        assert.ok((await pids()).includes(job.pid), "the user's job in its om ps");
        assert.ok((await pids("-a")).includes(sleeper.pid), "root's job in om ps -a");

        // Forgeries: a symbolic link to a fresh token of root's, and a path.
        const name = "0123456789abcdef0123456789abcdef";
        const forged = `${home}/../om-root-token-${Deno.pid}`;
        await Deno.writeTextFile(forged, name, { mode: 0o600 });
        try {
          const link = await runIn(
            lab,
            1,
            asUser(home, ["ln", "-s", forged, `${nodeRoot(lab, 1)}/users/${name}`]),
          );
          assert.equal(link.code, 0, link.err);
          const viaLink = await request(lab, home, "job.list", {}, name);
          assert.match(viaLink.out, /^error: Cannot accept token "[0-9a-f]+": a symbolic link/);
          const viaPath = await request(lab, home, "job.list", {}, `../om-root-token-${Deno.pid}`);
          assert.match(viaPath.out, /^error: Cannot accept token .*: not a token/);
        } finally {
          await Deno.remove(forged).catch(() => {});
        }

        // A directory the user may not enter: refused there, as the user.
        const closed = await Deno.makeTempDir({ prefix: "om-root-only-" });
        try {
          const there = await execInNode(lab, 1, om("run", "true"), {
            cwd: closed,
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(there.code, 125);
          assert.match(decoder.decode(there.stderr), /Cannot start in ".*om-root-only-.*"/);
        } finally {
          await Deno.remove(closed);
        }

        // Root's job ends; the user's, on node 2, reads end of file and exits 5.
        const stop = await runIn(lab, 1, [
          deno,
          "run",
          "-A",
          "--quiet",
          localreq,
          nodeRoot(lab, 1),
          "job.signal",
          JSON.stringify({ id: sleeper.pid, signal: "SIGTERM" }),
        ]);
        assert.equal(stop.code, 0, stop.out);
        await rootJob.output();
        await stdin.close();
        const status = await child.status;
        await reading;
        assert.equal(
          out,
          `s3cret\na ${UID}\nthere-user ${UID}\nhome-user ${UID}\nthere-root ${UID}\n` +
            `home-again ${UID}\nthere-again ${UID}\n`,
          await stderr,
        );
        assert.equal(status.code, 5, await stderr);
      });
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});
