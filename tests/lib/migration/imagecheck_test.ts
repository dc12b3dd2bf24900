/**
 * lib/migration/imagecheck.ts with real CRIU: a real dump of an ordinary job of user nobody (open
 * files, a deleted file it holds open and an unnamed temporary file, which criu dumps as ghosts, a
 * listening abstract socket, a pipe) passes; forged copies of it, patched as a source node could
 * (tests/tools/criuimages.ts), each fail with their reason; and through a target's handlers a
 * forged set-user-ID-root ghost is refused before criu restore runs: nothing is made at its path.
 */
import assert from "node:assert/strict";
import { checkImages } from "../../../lib/migration/imagecheck.ts";
import { criuTest } from "../../tools/criukit.ts";
import { parseLimits } from "../../../lib/migration/imagetasks.ts";
import { tempDir } from "../../tools/tempdir.ts";
import {
  editField,
  encodeFields,
  type Field,
  fieldBytes,
  fieldsOf,
  fieldValue,
  imageFields,
  patchImage,
  setField,
} from "../../tools/criuimages.ts";
import { body, NOBODY, peer, sendImages, targetNode, text } from "./targetnode.ts";
import {
  copyImages,
  dumpNobodyJob,
  forgeries,
  ghostImages,
  NOBODY_RULE,
} from "../../tools/criujob.ts";

const nobody = NOBODY_RULE;

/** Edits the regular file entries (file_entry.reg, 3) of files.img whose name ends `suffix`. */
const editReg = (suffix: string, edit: (reg: Field[]) => Field[]) => (fields: Field[]) => {
  if (!fieldBytes(fields, 3)) return undefined;
  let matches = false;
  const edited = editField(fields, 3, (inner) => {
    matches = new TextDecoder().decode(fieldBytes(inner, 6)).endsWith(suffix);
    return matches ? edit(inner) : inner;
  });
  return matches ? edited : undefined;
};

Deno.test(criuTest(
  "imagecheck: a real dump of nobody's job passes, and forged copies of it fail",
  async (binary) => {
    await using tmp = await tempDir("imagecheck");
    const images = await dumpNobodyJob(binary, tmp.path);
    const work = `${tmp.path}/work`;

    // What the real dump holds, which shaped the rule.
    const names = (await Array.fromAsync(Deno.readDir(images))).map((entry) => entry.name);
    assert.equal((await ghostImages(images)).length, 2, "the deleted file and the O_TMPFILE one");
    assert.ok(names.some((name) => /^mountpoints-\d+\.img$/.test(name)), names.join(" "));
    // Its files' open flags: never O_CREAT, O_EXCL or O_TRUNC (the kernel drops them), but
    // O_TMPFILE kept (criu drops it itself on restore).
    const flags = (await imageFields(`${images}/files.img`)).flatMap((fields) => {
      const reg = fieldBytes(fields, 3);
      return reg ? [Number(fieldValue(fieldsOf(reg), 2))] : [];
    });
    assert.ok(flags.length > 5);
    assert.ok(flags.every((bits) => (bits & 0o1300) === 0), flags.map((f) => f.toString(8)).join());
    assert.ok(flags.some((bits) => bits & 0o20000000), "the O_TMPFILE file's");
    assert.equal(await checkImages(images, nobody), undefined);
    // A root job's are not checked, a user's are (and this one's pass as nobody's only).
    assert.equal(
      await checkImages(images, { ...nobody, owner: { name: "root", uid: 0, gid: 0 } }),
      undefined,
    );
    assert.match(
      (await checkImages(images, {
        ...nobody,
        owner: { name: "daemon", uid: 1, gid: 1 },
        groups: new Set([1]),
      })) ?? "passed",
      /owned by uid 65534 and gid 65534, not user daemon \(uid 1\)/,
    );

    /** A forged copy of the images: `forge` patches it; the check must fail with `expected`. */
    const refused = forgeries(images, tmp.path);
    const eachGhost = (edit: (fields: Field[]) => Field[]) => async (dir: string) => {
      for (const name of await ghostImages(dir)) {
        await patchImage(`${dir}/${name}`, edit, { count: 1 });
      }
    };
    const core = (edit: (fields: Field[]) => Field[]) => async (dir: string) => {
      await patchImage(`${dir}/core-1.img`, edit);
    };
    const ghostPath = new RegExp(`hold a ghost file "${work}/(ghost|#\\d+)"`);

    await refused(
      "a set-user-ID ghost",
      eachGhost((fields) => setField(fields, 3, 0o104755)),
      new RegExp(
        `${ghostPath.source} with the set-user-ID, set-group-ID or sticky bit \\(mode 0104755\\), ` +
          "which criu would make as root$",
      ),
    );
    await refused(
      "a root-owned ghost",
      eachGhost((fields) => setField(setField(fields, 1, 0), 2, 0)),
      new RegExp(`${ghostPath.source} owned by uid 0 and gid 0, not user nobody \\(uid 65534\\)`),
    );
    await refused(
      "a device ghost",
      eachGhost((fields) => setField(setField(fields, 3, 0o020666), 6, (8 << 20) | 0)),
      new RegExp(
        `hold a ghost character device "${work}/(ghost|#\\d+)" \\(rdev 8:0\\), which criu`,
      ),
    );
    await refused(
      "a set-user-ID root memfd",
      (dir) =>
        patchImage(
          `${dir}/memfd.img`,
          (fields) => setField(setField(setField(fields, 2, 0), 3, 0), 9, 0o104755),
        ),
      /^hold a memfd "om-memfd" with the set-user-ID, set-group-ID or sticky bit \(mode 0104755\)/,
    );
    await refused(
      "a ghost in a directory nobody may not write",
      (dir) =>
        patchImage(
          `${dir}/files.img`,
          editReg("/work/ghost", (reg) => setField(reg, 6, "/etc/om-ghost")),
        ),
      /hold a ghost file "\/etc\/om-ghost", inside \/etc, which user nobody \(uid 65534\) may not write here$/,
    );
    await refused(
      "O_TRUNC on a regular file",
      (dir) =>
        patchImage(
          `${dir}/files.img`,
          editReg("/readme", (reg) => setField(reg, 2, Number(fieldValue(reg, 2)) | 0o1000)),
        ),
      new RegExp(`^open "${tmp.path}/readme" with O_TRUNC, which criu would do as root`),
    );
    await refused(
      "a file nobody may not open for writing",
      (dir) =>
        patchImage(
          `${dir}/files.img`,
          editReg("/readme", (reg) => setField(setField(reg, 6, "/etc/passwd"), 2, 0o100001)),
        ),
      /^open "\/etc\/passwd" for writing, which user nobody \(uid 65534\) may not here$/,
    );
    await refused(
      "a unix socket bound at a path",
      (dir) =>
        patchImage(
          `${dir}/files.img`,
          (fields) =>
            fieldBytes(fields, 16)
              ? editField(fields, 16, (usk) =>
                fieldBytes(usk, 11)?.[0] === 0 ? setField(usk, 11, "/run/om.sock") : usk)
              : undefined,
        ),
      /^hold a unix socket bound at "\/run\/om\.sock", which criu would unlink and bind again as root/,
    );
    const mounts = names.find((name) => name.startsWith("mountpoints-"))!;
    const shm = (fields: Field[]) => new TextDecoder().decode(fieldBytes(fields, 7)) === "/dev/shm";
    await refused(
      "an extra mount of a user's file over /etc/shadow",
      async (dir) => {
        const template = (await imageFields(`${dir}/${mounts}`)).find(shm)!;
        const extra = [[2, 9999], [7, "/etc/shadow"], [8, `${work}/out`], [6, "/"]].reduce(
          (fields, [n, value]) => setField(fields, n as number, value),
          template,
        );
        await patchImage(`${dir}/${mounts}`, () => undefined, { add: [extra] });
      },
      /^hold a mount at "\/etc\/shadow" of "\/", which this node does not have$/,
    );
    await refused(
      "a real mount point bound from a foreign source",
      (dir) =>
        patchImage(
          `${dir}/${mounts}`,
          (fields) => shm(fields) ? setField(fields, 8, `${work}/`) : undefined,
        ),
      new RegExp(`^hold a mount at "/dev/shm" bound from "${work}/", which is not this node's`),
    );
    await refused(
      "a real-time scheduling policy",
      core((fields) => editField(fields, 5, (thread) => setField(setField(thread, 4, 1), 5, 99))),
      /^hold a task \(core-1\.img\) of scheduling policy SCHED_FIFO \(1\), which only a privileged/,
    );
    const nofile = parseLimits(await Deno.readTextFile("/proc/self/limits"))[7];
    await refused(
      "a raised hard limit",
      core((fields) =>
        editField(
          fields,
          3,
          (tc) =>
            editField(tc, 8, (limits) =>
              limits.map((limit, i) =>
                i === 7
                  ? {
                    ...limit,
                    value: encodeFields([
                      { n: 1, wire: 0, value: nofile + 1n },
                      { n: 2, wire: 0, value: nofile + 1n },
                    ]),
                  }
                  : limit
              )),
        )
      ),
      new RegExp(`whose hard RLIMIT_NOFILE is ${nofile + 1n}, above this node's ${nofile}`),
    );
    await refused(
      "oom_score_adj -1000",
      core((fields) => editField(fields, 3, (tc) => setField(tc, 14, -1000))),
      /^hold a task \(core-1\.img\) with oom_score_adj -1000, below 0, which only a privileged/,
    );
    await refused(
      "a login uid of root",
      core((fields) => editField(fields, 3, (tc) => setField(tc, 13, 0))),
      /with login uid 0, neither unset, nor the user's, nor this daemon's/,
    );
    await refused(
      "a security label of its own",
      core((fields) =>
        editField(
          fields,
          5,
          (thread) => editField(thread, 10, (creds) => setField(creds, 15, "unconfined")),
        )
      ),
      /^hold a task \(core-1\.img\) with the security label "unconfined", not this daemon's/,
    );
    await refused(
      "a link remap",
      (dir) => patchImage(`${dir}/remap-fpath.img`, (fields) => setField(fields, 3, 0)),
      /^link ".*" back from another file \(a link remap\), which criu would do as root/,
    );
    await refused(
      "an image criu does not write for a user's job",
      (dir) => Deno.copyFile(`${dir}/files.img`, `${dir}/cgroup.img`),
      /^hold cgroup\.img, which criu 4\.1\.1 does not write for a job of a user$/,
    );
    await refused(
      "a files.img cut short",
      async (dir) => {
        const bytes = await Deno.readFile(`${dir}/files.img`);
        await Deno.writeFile(`${dir}/files.img`, bytes.subarray(0, bytes.length - 3));
      },
      /^cannot be read: Cannot read files\.img: the entry at byte \d+ says \d+ bytes, \d+ left$/,
    );
    await refused(
      "a flag set twice, the second O_TRUNC",
      (dir) =>
        patchImage(
          `${dir}/files.img`,
          editReg("/readme", (reg) => [...reg, { n: 2, wire: 0, value: 0o101000n }]),
        ),
      /^cannot be read: Cannot read files\.img entry \d+'s type 1 entry: field 2 appears 2 times/,
    );
  },
  { root: true },
));

Deno.test(criuTest(
  "imagecheck: a forged set-user-ID-root ghost is refused before criu restore runs",
  async (binary) => {
    await using tmp = await tempDir("imagecheck-target");
    await Deno.chmod(tmp.path, 0o755);
    const base = `${tmp.path}/job`;
    await Deno.mkdir(base);
    const images = await dumpNobodyJob(binary, base);
    const work = `${base}/work`;
    const { handlers } = targetNode(`${tmp.path}/node`, { criu: binary });
    /** Sends the images in `dir` to the target as job `id` and asks for its restore. */
    const move = (id: number, dir: string) =>
      sendImages(handlers, { id, user: NOBODY, dir, command: ["perl"] });
    const workFiles = async () =>
      (await Array.fromAsync(Deno.readDir(work))).map((entry) => entry.name).sort();
    assert.deepEqual(await workFiles(), ["fifo", "out"], "the job's deleted files are gone");

    // The review's C2: the ghost made set-user-ID root.
    const forged = `${tmp.path}/forged`;
    await copyImages(images, forged);
    for (const name of await ghostImages(forged)) {
      await patchImage(
        `${forged}/${name}`,
        (fields) => setField(setField(setField(fields, 1, 0), 2, 0), 3, 0o104755),
        { count: 1 },
      );
    }
    await assert.rejects(move(84, forged), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(
          `^Cannot restore job 84 as user nobody: its images hold a ghost file "${work}/` +
            '(ghost|#\\d+)" with the set-user-ID, set-group-ID or sticky bit \\(mode 0104755\\), ' +
            "which criu would make as root; nothing was restored$",
        ),
      );
      return true;
    });
    // Nothing at the ghost's path or beside it, and criu never ran (it leaves its log first).
    assert.deepEqual(await workFiles(), ["fifo", "out"]);
    await assert.rejects(
      Deno.stat(`${tmp.path}/node/migrations/84-in/restore.log`),
      Deno.errors.NotFound,
    );
    await handlers.get("mig.abort")!(body({ id: 84 }), peer);

    // The same images unforged: restored (stopped, waiting for the commit), then dropped.
    const restored = JSON.parse(text(await move(85, images)));
    assert.ok(restored.ms > 0);
    await handlers.get("mig.abort")!(body({ id: 85 }), peer);
  },
  { root: true },
));
