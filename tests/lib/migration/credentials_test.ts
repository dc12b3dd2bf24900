/**
 * lib/migration/credentials.ts: a restored task's credentials read from /proc status texts, the
 * rule they are held to, the walk over a restored job's tasks (on a /proc of files made here), and,
 * with the real CRIU, a target that restores the images of a root job that mig.begin says is
 * nobody's: the copy is killed while criu left it stopped, and mig.restore fails. Run when CRIU is
 * usable; when OM_REQUIRE_CRIU=1 (scripts/test as root), unusable is a failure.
 */
import assert from "node:assert/strict";
import {
  type CapabilitySets,
  checkRestoredTasks,
  credentialFault,
  type CredentialRule,
  credentialRule,
  parseCredentials,
} from "../../../lib/migration/credentials.ts";
import { encodeFileChunk, FILE_CHUNK } from "../../../lib/migration/files.ts";
import { imageFiles } from "../../../lib/migration/source.ts";
import { criuTest } from "../../tools/criukit.ts";
import { dump } from "../../../lib/criu/run.ts";
import { startJob } from "../../../lib/criu/startjob.ts";
import { readProcess } from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { body, NOBODY, peer, ROOT, targetNode, text } from "./targetnode.ts";

/** A /proc/PID/status as Linux writes it, with these credentials. */
function status(
  options: {
    uid?: string;
    gid?: string;
    groups?: string;
    inh?: string;
    prm?: string;
    eff?: string;
    bnd?: string;
    amb?: string;
  } = {},
): string {
  return [
    "Name:\tsh",
    "Umask:\t0022",
    "State:\tT (stopped)",
    "Tgid:\t4242",
    "Pid:\t4242",
    `Uid:\t${options.uid ?? "65534\t65534\t65534\t65534"}`,
    `Gid:\t${options.gid ?? "65534\t65534\t65534\t65534"}`,
    "FDSize:\t64",
    `Groups:\t${options.groups ?? "65534 "}`,
    "NSpid:\t4242\t1",
    "VmRSS:\t    1024 kB",
    `CapInh:\t${options.inh ?? "0000000000000000"}`,
    `CapPrm:\t${options.prm ?? "0000000000000000"}`,
    `CapEff:\t${options.eff ?? "0000000000000000"}`,
    `CapBnd:\t${options.bnd ?? "000001fffeffffff"}`,
    `CapAmb:\t${options.amb ?? "0000000000000000"}`,
    "NoNewPrivs:\t0",
    "Seccomp:\t0",
    "",
  ].join("\n");
}

/** This machine's daemon: root, every capability but sys_resource (24). */
const DAEMON: CapabilitySets = {
  inh: 0n,
  prm: 0x1fffeffffffn,
  eff: 0x1fffeffffffn,
  bnd: 0x1fffeffffffn,
  amb: 0n,
};
const nobody: CredentialRule = { owner: NOBODY, groups: new Set([65534, 100]), daemon: DAEMON };
const root: CredentialRule = { owner: ROOT, groups: new Set(), daemon: DAEMON };
const fault = (text: string, rule = nobody) => credentialFault(parseCredentials(text), rule);

Deno.test("credentials: /proc status lines read as ids, groups and capability masks", () => {
  assert.deepEqual(
    parseCredentials(status({ uid: "1\t2\t3\t4", groups: "27 100 ", amb: "0000000000000400" })),
    {
      uids: [1, 2, 3, 4],
      gids: [65534, 65534, 65534, 65534],
      groups: [27, 100],
      caps: { inh: 0n, prm: 0n, eff: 0n, bnd: 0x1fffeffffffn, amb: 0x400n },
    },
  );
  // Root with no supplementary groups: "Groups:" and a space.
  assert.deepEqual(parseCredentials(status({ groups: " " })).groups, []);
  assert.throws(
    () => parseCredentials(status().replace(/^CapAmb:.*\n/m, "")),
    new SyntaxError('Cannot read credentials: no "CapAmb:" line'),
  );
  assert.throws(() => parseCredentials(status({ uid: "0\t0\t0" })), /"Uid:" is not four ids/);
  assert.throws(() => parseCredentials(status({ gid: "0 0 0 x" })), /"Gid:" is not four ids/);
  assert.throws(() => parseCredentials(status({ groups: "0,1" })), /"Groups:" is not a list/);
  assert.throws(() => parseCredentials(status({ eff: "-1" })), /"CapEff:" is not a capability/);
  assert.throws(() => parseCredentials("Name:\tsh\n"), SyntaxError);
});

Deno.test("credentials: a user's job holds that user's ids and groups, and no capabilities", () => {
  assert.equal(fault(status()), undefined, "nobody's, as setpriv --init-groups starts it");
  assert.equal(fault(status({ groups: "100 65534" })), undefined, "a group nobody is in here");
  assert.equal(fault(status({ groups: "" })), undefined, "fewer groups");
  const who = "user nobody (uid 65534, gid 65534)";
  // Images that claim root, all of it or any one id.
  assert.equal(
    fault(status({ uid: "0\t0\t0\t0", gid: "0\t0\t0\t0", prm: "000001fffeffffff" })),
    `it runs as uids 0 0 0 0, not as ${who}`,
  );
  for (
    const uid of ["0\t65534\t65534\t65534", "65534\t65534\t0\t65534", "65534\t65534\t65534\t0"]
  ) {
    assert.match(fault(status({ uid }))!, /^it runs as uids .*, not as user nobody/, uid);
  }
  assert.equal(
    fault(status({ gid: "65534\t0\t65534\t65534" })),
    `it runs as gids 65534 0 65534 65534, not as ${who}`,
  );
  assert.equal(
    fault(status({ groups: "65534 42" })),
    `it is in group 42, which ${who} is not in here`,
  );
  // One capability, in any set but the bounding one, is one too many.
  assert.equal(
    fault(status({ eff: "0000000000200000" })),
    `its CapEff holds sys_admin, and a job of ${who} has none`,
  );
  assert.equal(
    fault(status({ prm: "0000000000000081" })),
    `its CapPrm holds chown, setuid, and a job of ${who} has none`,
  );
  assert.equal(
    fault(status({ amb: "000000000000003f" })),
    `its CapAmb holds chown, dac_override, dac_read_search and 3 more, and a job of ${who} has none`,
  );
  assert.equal(
    fault(status({ inh: "0000000000080000" })),
    `its CapInh holds sys_ptrace, which a job of ${who} here does not`,
  );
  assert.equal(
    fault(status({ inh: "0000000000080000" }), { ...nobody, daemon: { ...DAEMON, inh: 0x80000n } }),
    undefined,
    "what this daemon hands on to its jobs",
  );
  // More than this daemon has, in the bounding set too: sys_resource (24) and a bit beyond 40.
  assert.equal(
    fault(status({ bnd: "000001ffffffffff" })),
    "its CapBnd holds sys_resource, which no job here has",
  );
  assert.equal(
    fault(status({ bnd: "000081fffeffffff" })),
    "its CapBnd holds capabilities 0x800000000000, which no job here has",
  );
});

Deno.test("credentials: a root job may hold root's, and no more than this daemon", () => {
  const rootTask = {
    uid: "0\t0\t0\t0",
    gid: "0\t0\t0\t0",
    groups: " ",
    prm: "000001fffeffffff",
    eff: "000001fffeffffff",
  };
  assert.equal(fault(status(rootTask), root), undefined);
  // A root job's child that became another user is still the job's.
  assert.equal(fault(status(), root), undefined);
  assert.equal(
    fault(status({ ...rootTask, eff: "000001ffffffffff" }), root),
    "its CapEff holds sys_resource, which no job here has",
  );
});

Deno.test("credentials: the rule of a user's job names its groups here and this daemon's sets", async () => {
  const self = status({ uid: "0\t0\t0\t0", prm: "000001fffeffffff", eff: "000001fffeffffff" });
  const rule = await credentialRule(NOBODY, self);
  assert.ok(rule.groups.has(65534), [...rule.groups].join(" "));
  assert.equal(rule.daemon.bnd, 0x1fffeffffffn);
  assert.deepEqual(
    [...(await credentialRule(ROOT, self)).groups],
    [],
    "root's job: none looked up",
  );
});

/** This node's user namespace in the fake /proc (`ns/user`'s link text). */
const HOST_NS = "user:[4026531837]";

/**
 * A /proc of files: each process its `task/<tid>/status`, `task/<tid>/children` and `ns/user` (a
 * link to HOST_NS, or to `userns`).
 */
async function fakeProc(
  dir: string,
  processes: Record<
    number,
    { threads?: Record<number, string>; children?: number[]; userns?: string }
  >,
) {
  for (const [pid, process] of Object.entries(processes)) {
    await Deno.mkdir(`${dir}/${pid}/ns`, { recursive: true });
    await Deno.symlink(process.userns ?? HOST_NS, `${dir}/${pid}/ns/user`);
    const threads = process.threads ?? { [pid]: status() };
    for (const [tid, text] of Object.entries(threads)) {
      await Deno.mkdir(`${dir}/${pid}/task/${tid}`, { recursive: true });
      await Deno.writeTextFile(`${dir}/${pid}/task/${tid}/status`, text);
      await Deno.writeTextFile(
        `${dir}/${pid}/task/${tid}/children`,
        tid === pid ? (process.children ?? []).map((child) => `${child} `).join("") : "",
      );
    }
  }
}

Deno.test("credentials: every thread of every task below the waiter is checked, none of the waiter", async () => {
  await using tmp = await tempDir("credentials");
  const proc = tmp.path;
  // The waiter (root's perl) 100; the job's PID 1 200 with a thread 201; its child 300; 300's 400.
  await fakeProc(proc, {
    100: { threads: { 100: status({ uid: "0\t0\t0\t0" }) }, children: [200] },
    200: { threads: { 200: status(), 201: status() }, children: [300] },
    300: { children: [400] },
    400: {},
  });
  const restored = { waiter: 100, pid: 200 };
  assert.deepEqual(
    await checkRestoredTasks(restored, nobody, { procDir: proc, userNamespace: HOST_NS }),
    { threads: 4 },
  );
  // A thread that is root, a grandchild that is: each found, and named.
  await Deno.writeTextFile(
    `${proc}/200/task/201/status`,
    status({ uid: "65534\t0\t65534\t65534" }),
  );
  assert.deepEqual(
    await checkRestoredTasks(restored, nobody, { procDir: proc, userNamespace: HOST_NS }),
    {
      threads: 2,
      fault: "task 200 (thread 201): it runs as uids 65534 0 65534 65534, not as user nobody " +
        "(uid 65534, gid 65534)",
    },
  );
  await Deno.writeTextFile(`${proc}/200/task/201/status`, status());
  await Deno.writeTextFile(`${proc}/400/task/400/status`, status({ eff: "0000000000000001" }));
  assert.match(
    (await checkRestoredTasks(restored, nobody, { procDir: proc, userNamespace: HOST_NS })).fault!,
    /^task 400: its CapEff holds chown/,
  );
  // A task that cannot be read is no pass.
  await Deno.writeTextFile(`${proc}/400/task/400/status`, "Name:\tsh\n");
  assert.match(
    (await checkRestoredTasks(restored, nobody, { procDir: proc, userNamespace: HOST_NS })).fault!,
    /^task 400: Cannot read credentials: no "\w+:" line/,
  );
  assert.deepEqual(
    await checkRestoredTasks({ waiter: 100, pid: 999 }, nobody, {
      procDir: proc,
      userNamespace: HOST_NS,
    }),
    {
      threads: 0,
      fault: "task 999: its threads cannot be read",
    },
  );
  // The PID 1 criu named, also when it is not below the waiter (a stand-in's).
  await Deno.writeTextFile(`${proc}/100/task/100/children`, "");
  await Deno.writeTextFile(`${proc}/400/task/400/status`, status());
  assert.deepEqual(
    await checkRestoredTasks(restored, nobody, { procDir: proc, userNamespace: HOST_NS }),
    { threads: 4 },
  );
});

Deno.test(criuTest(
  "credentials: a root job's images restored for user nobody are killed before they run",
  async (binary) => {
    await using tmp = await tempDir("credentials");
    const ran = `${tmp.path}/ran`;
    // Root's job, which writes its first line after 2 s: dumped (and so ended) long before.
    const job = await startJob(["sh", "-c", `sleep 2; echo first > ${ran}; sleep 60`], {
      stdout: "null",
      stderr: "null",
    });
    const images = `${tmp.path}/images`;
    await Deno.mkdir(images);
    try {
      await dump({ binary: binary!, now: () => performance.now() }, {
        pid: job.pid,
        imagesDir: images,
      });
    } finally {
      try {
        Deno.kill(job.pid, "SIGKILL");
      } catch { /* the dump ended it */ }
      await job.process.status;
    }
    const files = await imageFiles(images);
    const { handlers } = targetNode(`${tmp.path}/node`, { criu: binary });
    const restoreAs = async (user: typeof ROOT) => {
      const begin = { id: 77, home: 1, user, files, command: ["sh"], fds: [null, null, null] };
      await handlers.get("mig.begin")!(body(begin), peer);
      for (const [name, size] of Object.entries(files)) {
        const bytes = await Deno.readFile(`${images}/${name}`);
        for (let offset = 0; offset < size; offset += FILE_CHUNK) {
          const data = bytes.subarray(offset, offset + FILE_CHUNK);
          await handlers.get("mig.file")!(encodeFileChunk({ id: 77, name, offset }, data), peer);
        }
        if (size === 0) {
          await handlers.get("mig.file")!(
            encodeFileChunk({ id: 77, name, offset: 0 }, bytes),
            peer,
          );
        }
      }
      return handlers.get("mig.restore")!(body({ id: 77 }), peer);
    };
    const gone = (pid: number) =>
      retryUntil(
        async () => {
          const process = await readProcess("/proc", pid);
          return process === undefined || "ZX".includes(process.state);
        },
        5000,
        { what: `process ${pid} to be gone` },
      );
    const pidfile = `${tmp.path}/node/migrations/77-in/restore.pid`;

    // Recorded as nobody's, restored as the root it was: killed, and the move fails.
    let copy = 0;
    await assert.rejects(restoreAs(NOBODY), (error: Error) => {
      assert.match(
        error.message,
        /^Cannot restore job 77 as user nobody: task (\d+): it runs as uids 0 0 0 0, not as user nobody \(uid 65534, gid 65534\); the copy was killed before it ran$/,
      );
      copy = Number(/task (\d+)/.exec(error.message)![1]);
      return true;
    });
    assert.equal(Number((await Deno.readTextFile(pidfile)).trim()), copy, "its PID 1");
    await gone(copy);
    await assert.rejects(
      handlers.get("mig.commit")!(body({ id: 77 }), peer),
      /job 77 was not restored here, or was dropped/,
    );
    await handlers.get("mig.abort")!(body({ id: 77 }), peer);

    // The same images as root's job: restored, stopped, waiting for the commit (so they were
    // restorable, and only the check refused them); dropped by mig.abort.
    const restored = JSON.parse(text(await restoreAs(ROOT)));
    assert.ok(restored.ms > 0);
    const pid = Number((await Deno.readTextFile(pidfile)).trim());
    assert.match((await readProcess("/proc", pid))!.state, /^[Tt]$/, "stopped, as criu left it");
    await handlers.get("mig.abort")!(body({ id: 77 }), peer);
    await gone(pid);
    // Past the job's 2 s: no copy ever ran the line after its sleep.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(await Deno.stat(ran).then(() => true, () => false), false, "it never wrote");
  },
));

Deno.test("credentials: a user's job with a user namespace of its own is not let run", async () => {
  await using tmp = await tempDir("credentials");
  const proc = tmp.path;
  // The images' uid_map could map host root inside: uid 65534 and no capabilities here prove
  // nothing about what the task may do once it execs in its own namespace.
  await fakeProc(proc, {
    100: { threads: { 100: status({ uid: "0\t0\t0\t0" }) }, children: [200] },
    200: { children: [300] },
    300: { userns: "user:[4026532999]" },
  });
  const restored = { waiter: 100, pid: 200 };
  const options = { procDir: proc, userNamespace: HOST_NS };
  assert.equal(
    (await checkRestoredTasks(restored, nobody, options)).fault,
    "task 300: it is in a user namespace of its own (user:[4026532999]), which a job of user " +
      "nobody may not bring",
  );
  // A root job may have one: it could make one anyway.
  const rootRule = { ...nobody, owner: ROOT };
  assert.equal((await checkRestoredTasks(restored, rootRule, options)).fault, undefined);
});
