/**
 * lib/migration/restoredfiles.ts: the mode rule, and real processes of user nobody in the state a
 * forged restore would leave them: holding descriptors root opened for them (as criu does), a
 * working directory they could not enter; and a mapping through a made-up /proc tree.
 */
import assert from "node:assert/strict";
import {
  checkRestoredFiles,
  descriptorNeed,
  directoriesAbove,
  grants,
  mappedFile,
  Need,
} from "../../../lib/migration/restoredfiles.ts";
import type { CredentialRule } from "../../../lib/migration/credentials.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { readProcess } from "../../../lib/base/procs.ts";
import { criuTest } from "../../tools/criukit.ts";
import { AS_NOBODY, dumpAsNobody } from "../../tools/criujob.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { body, NOBODY, peer, sendImages, targetNode, text } from "./targetnode.ts";

const ROOT = Deno.uid() === 0;
const NONE = { inh: 0n, prm: 0n, eff: 0n, bnd: 0n, amb: 0n };
const nobody: CredentialRule = {
  owner: { name: "nobody", uid: 65534, gid: 65534 },
  groups: new Set([65534]),
  daemon: NONE,
};

Deno.test("restoredfiles: the class the kernel picks decides, owner first", () => {
  const user = { uid: 1000, gid: 100, groups: new Set([100, 27]) };
  assert.ok(grants({ mode: 0o600, uid: 1000, gid: 0 }, user, Need.read | Need.write));
  // The owner's bits alone count for the owner, even when others' grant more.
  assert.ok(!grants({ mode: 0o077, uid: 1000, gid: 0 }, user, Need.read));
  assert.ok(grants({ mode: 0o640, uid: 0, gid: 27 }, user, Need.read));
  assert.ok(!grants({ mode: 0o640, uid: 0, gid: 27 }, user, Need.write));
  assert.ok(!grants({ mode: 0o640, uid: 0, gid: 42 }, user, Need.read), "shadow's way");
  assert.ok(grants({ mode: 0o604, uid: 0, gid: 42 }, user, Need.read));
  assert.ok(grants({ mode: 0o711, uid: 0, gid: 0 }, user, Need.search));
  assert.ok(!grants({ mode: 0o700, uid: 0, gid: 0 }, user, Need.search));
  assert.ok(grants({ mode: 0o000, uid: 0, gid: 0 }, user, 0), "O_PATH needs nothing");
});

Deno.test("restoredfiles: what a descriptor needs, a mapping needs, and the directories above", () => {
  assert.equal(descriptorNeed(0o100000), Need.read);
  assert.equal(descriptorNeed(0o100001), Need.write);
  assert.equal(descriptorNeed(0o102002), Need.read | Need.write);
  assert.equal(descriptorNeed(0o10000000), 0);
  assert.deepEqual(mappedFile("7f00-7f10 r--p 00000000 08:01 1234 /usr/lib/libc.so.6"), {
    range: "7f00-7f10",
    need: Need.read,
    path: "/usr/lib/libc.so.6",
    shared: false,
  });
  assert.equal(mappedFile("7f00-7f10 rw-s 00000000 08:01 99 /etc/passwd")?.need, 6);
  // A non-PIE program's mappings: maps pads them with zeros, map_files does not.
  assert.equal(
    mappedFile("00400000-0041f000 r--p 00000000 08:01 12 /usr/bin/python3.11")?.range,
    "400000-41f000",
  );
  assert.equal(mappedFile("7f00-7f10 rw-p 00000000 08:01 99 /etc/passwd")?.need, Need.read);
  assert.equal(mappedFile("7f00-7f10 rw-p 00000000 00:00 0 [heap]"), undefined);
  assert.equal(mappedFile("7f00-7f10 rw-p 00000000 00:00 0"), undefined);
  assert.deepEqual(directoriesAbove("/a/b/c"), ["/", "/a", "/a/b"]);
  assert.deepEqual(directoriesAbove("/c"), ["/"]);
});

/** A process of user nobody, started by root with `setup` run first (as root: its redirections). */
async function asNobody(
  setup: string,
  fn: (pid: number) => Promise<void>,
  command = "sleep 30",
) {
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `${setup}; exec setpriv --reuid=65534 --regid=65534 --clear-groups ${command}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    await retryUntil(
      async () => (await Deno.readTextFile(`/proc/${child.pid}/status`)).includes("\t65534\t"),
      5000,
      { what: "the process to be nobody's", intervalMs: 10 },
    );
    await fn(child.pid);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

Deno.test({
  name: "restoredfiles: a user's process holding what root opened for it is found out",
  ignore: !ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "om-restoredfiles-" });
    try {
      await Deno.chmod(dir, 0o755);
      const closed = `${dir}/closed`;
      await Deno.mkdir(closed, { mode: 0o700 });
      await Deno.writeTextFile(`${closed}/readable`, "inside a closed directory\n");
      await Deno.chmod(`${closed}/readable`, 0o644);
      await Deno.writeTextFile(`${dir}/roots`, "root's, readable by all\n");
      await Deno.chmod(`${dir}/roots`, 0o644);

      // Only what the user could have had itself: passes.
      await asNobody(
        `cd ${dir}; exec 3</dev/null 4>/dev/null 5<${dir}/roots 6</etc/passwd`,
        async (pid) => {
          assert.equal(await checkRestoredFiles([pid], nobody), undefined);
          // A root job is not checked; the same process passes as anything.
          assert.equal(
            await checkRestoredFiles([pid], { ...nobody, owner: { name: "root", uid: 0, gid: 0 } }),
            undefined,
          );
        },
      );
      const cases: [string, RegExp][] = [
        [
          "exec 3</etc/shadow",
          /^task \d+: its descriptor 3 is \/etc\/shadow, for reading, which user nobody \(uid 65534\) may not open here$/,
        ],
        [
          `exec 7>>${dir}/roots`,
          new RegExp(
            `^task \\d+: its descriptor 7 is ${dir}/roots, for writing, which user nobody`,
          ),
        ],
        [
          `exec 4<>${dir}/roots`,
          new RegExp(`its descriptor 4 is ${dir}/roots, for reading and writing, which`),
        ],
        [
          `exec 5<${closed}/readable`,
          new RegExp(
            `its descriptor 5 is ${closed}/readable, inside ${closed}, which user nobody \\(uid 65534\\) may not search here$`,
          ),
        ],
        [
          `cd ${closed}`,
          new RegExp(
            `^task \\d+: its working directory is ${closed}, for search, which user nobody`,
          ),
        ],
      ];
      for (const [setup, expected] of cases) {
        await asNobody(setup, async (pid) => {
          const fault = await checkRestoredFiles([pid], nobody);
          assert.match(fault ?? "no fault", expected, setup);
        });
      }
      // A program that is not position-independent (mapped at 0x400000): its mappings are found
      // in map_files under their unpadded names, and pass.
      const nonPie = ["/usr/bin/python3.11", "/usr/bin/python3"].find((p) => {
        try {
          const head = Deno.readFileSync(p).subarray(0, 18);
          return head[16] === 2; // e_type ET_EXEC, not ET_DYN
        } catch {
          return false;
        }
      });
      if (nonPie) {
        await asNobody("cd /", async (pid) => {
          await retryUntil(
            async () => (await Deno.readTextFile(`/proc/${pid}/maps`)).includes(nonPie),
            5000,
            { what: "the program mapped" },
          );
          assert.equal(await checkRestoredFiles([pid], nobody), undefined);
        }, `${nonPie} -c "import time; time.sleep(30)"`);
      }
      // A descriptor of a file since deleted is still checked by its mode.
      await Deno.writeTextFile(`${dir}/secret`, "root only\n");
      await Deno.chmod(`${dir}/secret`, 0o600);
      await asNobody(`exec 3<${dir}/secret; rm ${dir}/secret`, async (pid) => {
        assert.match(
          (await checkRestoredFiles([pid], nobody)) ?? "no fault",
          new RegExp(`its descriptor 3 is ${dir}/secret \\(deleted\\), for reading`),
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "restoredfiles: a shared writable mapping of a file the user may only read is found out",
  ignore: !ROOT,
  fn: async () => {
    const proc = await Deno.makeTempDir({ prefix: "om-restoredfiles-proc-" });
    try {
      const task = `${proc}/300`;
      await Deno.mkdir(`${task}/fd`, { recursive: true });
      await Deno.mkdir(`${task}/map_files`);
      await Deno.symlink("/", `${task}/root`);
      await Deno.symlink("/tmp", `${task}/cwd`);
      await Deno.symlink("/etc/passwd", `${task}/map_files/7f00-7f10`);
      const line = (perms: string) => `7f00-7f10 ${perms} 00000000 08:01 99 /etc/passwd\n`;
      const flags = (vm: string) => `Size: 64 kB\nVmFlags: ${vm}\n`;
      await Deno.writeTextFile(`${task}/smaps`, line("r--s") + flags("rd sh mr me ms"));
      assert.equal(await checkRestoredFiles([300], nobody, { procDir: proc }), undefined);
      // Read-only now, but its file was opened for writing: mprotect could make it writable.
      await Deno.writeTextFile(`${task}/smaps`, line("r--s") + flags("rd sh mr mw me ms"));
      assert.match(
        (await checkRestoredFiles([300], nobody, { procDir: proc }))!,
        /its mapping is \/etc\/passwd, for reading and writing/,
      );
      // A private mapping may be written: the file is not.
      await Deno.writeTextFile(`${task}/smaps`, line("rw-p") + flags("rd wr mr mw me ac"));
      assert.equal(await checkRestoredFiles([300], nobody, { procDir: proc }), undefined);
      await Deno.writeTextFile(`${task}/smaps`, line("rw-s") + flags("rd wr sh mr mw me ms"));
      assert.equal(
        await checkRestoredFiles([300], nobody, { procDir: proc }),
        "task 300: its mapping is /etc/passwd, for reading and writing, which user nobody " +
          "(uid 65534) may not open here",
      );
      // A task whose tree cannot be read is no pass.
      await Deno.remove(`${task}/smaps`);
      assert.equal(
        await checkRestoredFiles([300], nobody, { procDir: proc }),
        "task 300: its mappings cannot be read",
      );
      await Deno.remove(`${task}/root`);
      await Deno.symlink("/srv/jail", `${task}/root`);
      assert.equal(
        await checkRestoredFiles([300], nobody, { procDir: proc }),
        "task 300: its root directory is /srv/jail, not /",
      );
    } finally {
      await Deno.remove(proc, { recursive: true });
    }
  },
});

Deno.test(criuTest(
  "restoredfiles: nobody's job whose images hold /etc/shadow open is killed before it runs",
  async (binary) => {
    await using tmp = await tempDir("restoredfiles");
    await Deno.chmod(tmp.path, 0o755);
    const { handlers } = targetNode(`${tmp.path}/node`, { criu: binary });
    /** Dumps a job of nobody's, started by root after `setup`, and restores it as nobody's. */
    const moveAsNobody = async (id: number, setup: string) => {
      // Root opens what `setup` says, then becomes nobody, as om starts a user's job; dumped as
      // nobody's job is.
      const images = `${tmp.path}/images-${id}`;
      await dumpAsNobody(binary!, `${setup}; ${AS_NOBODY} sleep 60`, images);
      return sendImages(handlers, { id, user: NOBODY, dir: images, command: ["sleep"] });
    };

    // Holding a file nobody may not read: refused before criu opens it, by the images' check
    // (lib/migration/imagecheck.ts), which sees the same in files.img; the check of the restored
    // copy's descriptors above stays behind it for what a path could be swapped to meanwhile.
    await assert.rejects(moveAsNobody(81, "exec 3</etc/shadow"), (error: Error) => {
      assert.match(
        error.message,
        /^Cannot restore job 81 as user nobody: its images open "\/etc\/shadow" for reading, which user nobody \(uid 65534\) may not here; nothing was restored$/,
      );
      return true;
    });
    await handlers.get("mig.abort")!(body({ id: 81 }), peer);
    // The same job without it: restored, stopped, waiting for the commit; dropped by mig.abort.
    const restored = JSON.parse(text(await moveAsNobody(82, "exec 3</etc/passwd")));
    assert.ok(restored.ms > 0);
    const pid = Number(
      (await Deno.readTextFile(`${tmp.path}/node/migrations/82-in/restore.pid`)).trim(),
    );
    assert.match((await readProcess("/proc", pid))!.state, /^[Tt]$/, "stopped, as criu left it");
    await handlers.get("mig.abort")!(body({ id: 82 }), peer);
  },
  { root: true },
));
