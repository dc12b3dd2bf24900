/**
 * lib/migration/imagekinds.ts (through imagecheck.ts's checkImages) with real CRIU: a real dump of
 * nobody's job (tests/tools/criujob.ts: with a socket pair and a packet queued in it, a FIFO of
 * its own holding data, a pipe) passes; copies forged as the second review did (/work/review2's
 * forge.py) each fail with their reason: file descriptors in flight, packets and peers no task
 * holds, magic links of /proc, ghost links, FIFOs and terminals not the user's, netlink groups,
 * socket options, inotify, the inventory (and its namespaces), low, locked and huge mappings, oversized pipes, alarm
 * timers.
 */
import assert from "node:assert/strict";
import { checkImages } from "../../../lib/migration/imagecheck.ts";
import { mappingKindFault } from "../../../lib/migration/imagekinds.ts";
import { IMG_COMMON_MAGIC, MAGIC } from "../../../lib/criu/images.ts";
import { criuTest } from "../../tools/criukit.ts";
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
import {
  copyImages,
  dumpNobodyJob,
  forgeries,
  ghostImages,
  NOBODY_RULE,
} from "../../tools/criujob.ts";

const nobody = NOBODY_RULE;

const LIMITS = { mmapMinAddr: 4096, wmemMax: 212992, rmemMax: 212992, pipeMaxSize: 1048576 };

Deno.test("imagekinds: mappings below 64 KiB or mmap_min_addr, locked or huge, are refused", () => {
  const map = (start: bigint, flags = 0x22) => ({ start, flags, shmid: 0n, status: 0x201 });
  assert.equal(mappingKindFault(map(0x10000n), LIMITS), undefined);
  assert.equal(mappingKindFault(map(0xffffffffff600000n), LIMITS), undefined);
  assert.equal(mappingKindFault(map(0x1000n), LIMITS), "hold a mapping at 0x1000, below 0x10000");
  assert.equal(
    mappingKindFault(map(0x10000n), { ...LIMITS, mmapMinAddr: 0x20000 }),
    "hold a mapping at 0x10000, below 0x20000",
  );
  assert.match(mappingKindFault(map(0x10000n, 0x2022), LIMITS)!, /locked in memory/);
  assert.match(mappingKindFault(map(0x10000n, 0x40022), LIMITS)!, /of huge pages/);
});

/** An image's 8 header bytes for `magic`. */
function header(magic: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, IMG_COMMON_MAGIC, true);
  view.setUint32(4, magic, true);
  return bytes;
}

/** Appends an entry followed by raw `data` to image `path` (made with `magic` when absent). */
async function appendData(path: string, magic: number, fields: Field[], data: Uint8Array) {
  const old = await Deno.readFile(path).catch(() => header(magic));
  const entry = encodeFields(fields);
  const size = new Uint8Array(4);
  new DataView(size.buffer).setUint32(0, entry.length, true);
  await Deno.writeFile(path, new Uint8Array([...old, ...size, ...entry, ...data]));
}

const v = (n: number, value: number | bigint): Field => ({ n, wire: 0, value: BigInt(value) });
const b = (n: number, value: Uint8Array | string): Field => ({
  n,
  wire: 2,
  value: typeof value === "string" ? new TextEncoder().encode(value) : value,
});

Deno.test(criuTest(
  "imagekinds: a real dump of nobody's job passes, forged kinds fail",
  async (binary) => {
    await using tmp = await tempDir("imagekinds");
    const images = await dumpNobodyJob(binary, tmp.path);
    const work = `${tmp.path}/work`;
    const files = await imageFields(`${images}/files.img`);
    const names = (await Array.fromAsync(Deno.readDir(images))).map((entry) => entry.name);
    // What the real dump holds, which the forgeries start from.
    assert.ok(names.includes("sk-queues.img"), names.join(" "));
    assert.ok(names.includes("fifo-data.img"), names.join(" "));
    const unix = files.flatMap((fields) => {
      const inner = fieldBytes(fields, 16);
      return inner ? [fieldsOf(inner)] : [];
    });
    const paired = unix.filter((fields) => fieldValue(fields, 8));
    assert.equal(paired.length, 2, "the socket pair");
    const pairId = Number(fieldValue(paired[0], 1));
    const regId = (suffix: string) =>
      Number(fieldValue(
        files.map((fields) => fieldsOf(fieldBytes(fields, 3) ?? new Uint8Array()))
          .find((reg) => new TextDecoder().decode(fieldBytes(reg, 6)).endsWith(suffix))!,
        1,
      ));
    assert.equal(await checkImages(images, nobody), undefined);

    const refused = forgeries(images, tmp.path);
    const editFiles = (edit: (fields: Field[]) => Field[] | undefined) => (dir: string) =>
      patchImage(`${dir}/files.img`, edit);
    const editReg = (suffix: string, edit: (reg: Field[]) => Field[]) =>
      editFiles((fields) => {
        const reg = fieldBytes(fields, 3);
        if (!reg || !new TextDecoder().decode(fieldBytes(fieldsOf(reg), 6)).endsWith(suffix)) {
          return undefined;
        }
        return editField(fields, 3, edit);
      });
    const editUnix = (which: (usk: Field[]) => boolean, edit: (usk: Field[]) => Field[]) =>
      editFiles((fields) =>
        fieldBytes(fields, 16) && which(fieldsOf(fieldBytes(fields, 16)!))
          ? editField(fields, 16, edit)
          : undefined
      );
    const listening = (usk: Field[]) => fieldBytes(usk, 11)?.[0] === 0;
    const addFile = (type: number, field: number, inner: Field[]) => (dir: string) =>
      patchImage(`${dir}/files.img`, () => undefined, {
        add: [[v(1, type), v(2, 9999), b(field, encodeFields([v(1, 9999), ...inner]))]],
      });

    // 1. Packets in flight.
    await refused(
      "a queued packet carrying a descriptor of a root-only file",
      (dir) =>
        appendData(
          `${dir}/sk-queues.img`,
          MAGIC.skQueues,
          [v(1, pairId), v(2, 4), b(4, encodeFields([v(1, 1), v(2, regId("/readme"))]))],
          new TextEncoder().encode("file"),
        ),
      /^hold a queued packet carrying file descriptors \(SCM_RIGHTS\), which criu would open as root/,
    );
    await refused(
      "a packet queued to a socket no task holds",
      (dir) =>
        appendData(
          `${dir}/sk-queues.img`,
          MAGIC.skQueues,
          [v(1, 4242), v(2, 2)],
          new Uint8Array(2),
        ),
      /^hold a packet queued to socket 4242, which no task of the job holds$/,
    );
    // 2. Magic links of /proc and ghost links.
    for (const path of ["/proc/self/root/etc/passwd", "/proc/1/task/1/cwd", "/proc/self/fd/3"]) {
      await refused(
        `a file through ${path}`,
        editReg("/readme", (reg) => setField(reg, 6, path)),
        new RegExp(`^name "${path}", through a magic link of /proc, which criu would follow`),
      );
    }
    await refused(
      "a ghost symbolic link",
      async (dir) => {
        for (const name of await ghostImages(dir)) {
          await patchImage(
            `${dir}/${name}`,
            (fields) => setField(setField(fields, 3, 0o120777), 11, "/etc/shadow"),
            { count: 1 },
          );
        }
      },
      /^hold a ghost symbolic link ".*", which criu would make as root and open through/,
    );
    // 3. FIFOs and terminals.
    await refused(
      "a FIFO of root's",
      async (dir) => {
        await Deno.chown(`${work}/fifo`, 0, 0);
        await Deno.chmod(`${work}/fifo`, 0o666);
        void dir;
      },
      new RegExp(
        `^open the FIFO "${work}/fifo", which is not one of user nobody \\(uid 65534\\)'s`,
      ),
    );
    await Deno.chown(`${work}/fifo`, 65534, 65534);
    await Deno.chmod(`${work}/fifo`, 0o600);
    await refused(
      "a FIFO's file made a regular file",
      editReg("/work/fifo", (reg) => setField(reg, 6, `${tmp.path}/readme`)),
      new RegExp(`^open "${tmp.path}/readme" as a FIFO, which is not one here`),
    );
    await refused(
      "a FIFO opened with O_PATH",
      editReg("/work/fifo", (reg) => setField(reg, 2, 0o10000000)),
      /as a FIFO, which is not one here or is opened with O_PATH$/,
    );
    await refused(
      "a console",
      async (dir) => {
        const entry = encodeFields([v(1, 1), v(2, 2), v(3, 0), v(8, 0x500001)]);
        const size = new Uint8Array(4);
        new DataView(size.buffer).setUint32(0, entry.length, true);
        const bytes = new Uint8Array([...header(MAGIC.ttyInfo), ...size, ...entry]);
        await Deno.writeFile(`${dir}/tty-info.img`, bytes);
      },
      /^hold a terminal of type 2 \(console, VT, serial\.\.\.\), not a pseudo-terminal$/,
    );
    // 4. Unix socket peers and criu's own flags.
    await refused(
      "a socket connected to a peer the images lack",
      editUnix((usk) => Boolean(fieldValue(usk, 8)), (usk) => setField(usk, 8, 0x7ee0001)),
      /^hold unix socket \d+ connected to socket \d+, which the images lack/,
    );
    await refused(
      "a socket connected to a named peer no task holds",
      async (dir) => {
        await addFile(5, 16, [
          v(2, 0x7ee0001),
          v(3, 1),
          v(4, 10),
          v(5, 0),
          v(6, 0),
          v(7, 0),
          v(8, 0),
          b(11, "\0victim"),
        ])(dir);
        await editUnix(listening, (usk) => setField(setField(usk, 4, 1), 8, 0x7ee0001))(dir);
      },
      /^hold unix socket \d+ connected to socket \d+, which no task of the job holds$/,
    );
    await refused(
      "USK_EXTERN",
      editUnix(listening, (usk) => setField(usk, 6, 1)),
      /^hold unix socket \d+ with criu's flags 0x1 \(external, service or callback\)/,
    );
    // 6. Netlink.
    const netlink = (family: number) =>
      addFile(13, 7, [
        v(2, 77),
        v(3, family),
        v(4, 7),
        v(6, 0),
        v(7, 0),
        v(8, 1),
        v(9, 0),
        v(10, 0),
      ]);
    await refused(
      "a netlink socket of NETLINK_CONNECTOR (11) in a group",
      netlink(11),
      /^hold a netlink socket of family 11 in multicast groups, which criu would join as root$/,
    );
    const route = `${tmp.path}/route`;
    await copyImages(images, route);
    await netlink(0)(route);
    assert.equal(await checkImages(route, nobody), undefined, "a ROUTE socket may join groups");
    // 7. Socket options.
    for (
      const [option, field, value, expected] of [
        ["SO_MARK", 10, 51820, /with SO_MARK 51820, which only a privileged task may set$/],
        ["SO_PRIORITY", 8, 7, /with SO_PRIORITY 7, above 6/],
        ["SO_REUSEPORT", 17, 1, /with SO_REUSEPORT, which criu would set as root/],
        ["SO_SNDBUF", 1, 0x10000000, /with a send buffer of 268435456 bytes, above twice/],
        ["SO_RCVBUF", 2, 0x10000000, /with a receive buffer of 268435456 bytes, above twice/],
      ] as const
    ) {
      await refused(
        option,
        editUnix(listening, (usk) => editField(usk, 10, (opts) => setField(opts, field, value))),
        new RegExp(`^hold unix socket \\d+ ${expected.source}`),
      );
    }
    // 8. inotify.
    await refused(
      "an inotify descriptor",
      addFile(8, 13, []),
      /^hold an inotify descriptor, whose watches criu would place as root/,
    );
    // 5. The inventory.
    const inventory = (edit: (fields: Field[]) => Field[]) => async (dir: string) => {
      const bytes = await Deno.readFile(`${dir}/inventory.img`);
      const size = new DataView(bytes.buffer, 4, 4).getUint32(0, true);
      const entry = encodeFields(edit(fieldsOf(bytes.subarray(8, 8 + size))));
      const out = new Uint8Array(8 + entry.length);
      out.set(bytes.subarray(0, 4));
      new DataView(out.buffer).setUint32(4, entry.length, true);
      out.set(entry, 8);
      await Deno.writeFile(`${dir}/inventory.img`, out);
    };
    await refused(
      "an nftables run id that is a command",
      inventory((fields) => setField(setField(fields, 11, 1), 13, "x;reset quotas")),
      /^give a dump run id "x;reset quotas", not a plain one$/,
    );
    await refused(
      "a plugin",
      inventory((fields) => editField(fields, 12, () => [b(12, "amdgpu_plugin")])),
      /^name criu plugins, which om does not run$/,
    );
    await refused(
      "tcp_close",
      inventory((fields) => setField(fields, 10, 1)),
      /^ask criu to close TCP connections/,
    );
    await refused(
      "another image version",
      inventory((fields) => setField(fields, 1, 1)),
      /^say image version 1, not 2/,
    );
    await refused(
      "a net namespace of its own, by the inventory",
      inventory((fields) => editField(fields, 3, (ids) => setField(ids, 6, 999))),
      /^give a task \(ids-1\.img\) a net namespace other than the host's \(root_ids\)$/,
    );
    // At a restore's gate inventory.img is a FIFO criu reads: the held inventory is checked, and
    // the FIFO never opened (an open would wait for a writer).
    const gated = async (dir: string) => {
      await Deno.rename(`${dir}/inventory.img`, `${dir}/inventory.img.held`);
      await new Deno.Command("mkfifo", { args: [`${dir}/inventory.img`] }).output();
    };
    const atGate = `${tmp.path}/gated`;
    await copyImages(images, atGate);
    await gated(atGate);
    assert.equal(await checkImages(atGate, nobody), undefined, "gated, unforged");
    await refused(
      "a forged inventory held at the gate",
      async (dir) => {
        await inventory((fields) => setField(fields, 13, "x;y"))(dir);
        await gated(dir);
      },
      /^give a dump run id "x;y", not a plain one$/,
    );
    await refused(
      "a gate with no held inventory",
      async (dir) => {
        await gated(dir);
        await Deno.remove(`${dir}/inventory.img.held`);
      },
      /^lack their inventory \(inventory\.img\.held\) at the restore's gate$/,
    );
    // 9. Mappings.
    const vma = (start: bigint, flags: number) =>
      encodeFields([
        v(1, start),
        v(2, start + 0x1000n),
        v(3, 0),
        v(4, 0),
        v(5, 3),
        v(6, flags),
        v(7, 0x201),
        v(8, -1n),
      ]);
    const addVma = (start: bigint, flags: number) => (dir: string) =>
      patchImage(`${dir}/mm-1.img`, (fields) => {
        const first = fields.findIndex((field) => field.n === 14);
        return [...fields.slice(0, first), b(14, vma(start, flags)), ...fields.slice(first)];
      });
    await refused("a page at 0", addVma(0n, 0x22), /^hold a mapping at 0x0, below 0x10000$/);
    await refused(
      "MAP_LOCKED",
      addVma(0x100000000n, 0x2022),
      /^hold a mapping at 0x100000000 locked in memory \(MAP_LOCKED\)$/,
    );
    // 10. Alarm timers and pipes.
    await refused(
      "a timerfd of CLOCK_BOOTTIME_ALARM",
      addFile(17, 12, [v(2, 0), v(4, 9)]),
      /^hold a timerfd of an alarm clock \(9\), which only a task with CAP_WAKE_ALARM may have$/,
    );

    await refused(
      "a pipe larger than pipe-max-size",
      (dir) =>
        appendData(
          `${dir}/pipes-data.img`,
          MAGIC.pipesData,
          [v(1, 4242), v(2, 0), v(3, 1 << 30)],
          new Uint8Array(),
        ),
      /^hold a pipe of 1073741824 bytes \(pipes-data\.img\), above this node's fs\.pipe-max-size/,
    );
  },
  { root: true },
));
