/**
 * om's page receiver for real on loopback, behind the page link's listener (no CRIU needed): the
 * commands of CRIU's page-server protocol are made here byte by byte, and the images it writes
 * are checked byte by byte. tests/lib/criu/run_test.ts checks it against `criu page-server` itself,
 * with a real dump, and restores a job from its images.
 */
import assert from "node:assert/strict";
import {
  pageReservation,
  receiverArgs,
  RESERVE_MAX_TASKS,
  reservedBytes,
  reserverArgs,
  spliceSyscall,
  WARM_LIMIT_MS,
} from "../../../lib/migration/pagereceiver.ts";
import {
  ADD,
  ADD_F,
  CLOSE,
  command,
  concat,
  feed,
  LAZY,
  OPEN2,
  PARENT,
  PRESENT,
  task,
} from "../../tools/sealedpages.ts";
import { tempDir } from "../../tools/tempdir.ts";

/** `count` pages of `fill`. */
const pagesOf = (count: number, fill: number) => new Uint8Array(count * 4096).fill(fill);

/** A protobuf varint. */
function varint(value: bigint): number[] {
  const out: number[] = [];
  while (value >= 0x80n) {
    out.push(Number(value & 0x7fn) | 0x80);
    value >>= 7n;
  }
  return [...out, Number(value)];
}

/** A pagemap image as CRIU writes it: magics, head, entries (vaddr, nr_pages, flags). */
function pagemap(pagesId: number, entries: [bigint, number, number][]) {
  const message = (bytes: number[]) => {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, bytes.length, true);
    return concat(length, new Uint8Array(bytes));
  };
  const magics = new Uint8Array(8);
  new DataView(magics.buffer).setUint32(0, 0x54564319, true);
  new DataView(magics.buffer).setUint32(4, 0x56084025, true);
  return concat(
    magics,
    message([0x08, ...varint(BigInt(pagesId))]),
    ...entries.map(([vaddr, pages, flags]) =>
      message([0x08, ...varint(vaddr), 0x10, ...varint(BigInt(pages)), 0x20, flags])
    ),
  );
}

/** Feeds `stream` to a receiver writing into `dir`: its exit code, its answers, its log. */
async function receive(dir: string, stream: Uint8Array) {
  const args = receiverArgs({ imagesDir: dir, logFile: `${dir}/page-server.log` });
  assert.ok(args, "this machine's splice(2) number is known");
  const { code, answers } = await feed(args, stream, dir);
  const log = await Deno.readTextFile(`${dir}/page-server.log`).catch(() => "");
  return { code, answers, log };
}

async function inDir(fn: (dir: string) => Promise<void>) {
  await using tmp = await tempDir("pagereceiver");
  const dir = tmp.path;
  await fn(dir);
}

Deno.test("pagereceiver: two tasks' pages become the images criu page-server would write", () =>
  inDir(async (dir) => {
    const a = 0x7f12_3456_0000n, b = 0x5555_0000_1000n;
    // 300 pages: more than one 1 MiB splice.
    const { code, answers, log } = await receive(
      dir,
      concat(
        command(OPEN2, 0, 0, 0n, task(1)),
        command(ADD_F, PRESENT, 300, a, task(1)),
        pagesOf(300, 0xa1),
        command(ADD_F, LAZY, 16, a + 300n * 4096n, task(1)),
        command(ADD_F, PRESENT | LAZY, 2, b, task(1)),
        pagesOf(2, 0xa2),
        command(OPEN2, 0, 0, 0n, task(7)),
        command(ADD, 0, 1, b, task(7)),
        pagesOf(1, 0xb1),
        command(CLOSE, 0, 0, 0n, 0n),
      ),
    );
    assert.equal(code, 0, log);
    // No parent images for either task, then the close's 32-bit 0.
    assert.deepEqual(answers, [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(
      await Deno.readFile(`${dir}/pagemap-1.img`),
      pagemap(65537, [[a, 300, PRESENT], [a + 300n * 4096n, 16, LAZY], [b, 2, PRESENT | LAZY]]),
    );
    assert.deepEqual(
      await Deno.readFile(`${dir}/pages-65537.img`),
      concat(pagesOf(300, 0xa1), pagesOf(2, 0xa2)),
    );
    assert.deepEqual(await Deno.readFile(`${dir}/pagemap-7.img`), pagemap(65538, [[b, 1, 4]]));
    assert.deepEqual(await Deno.readFile(`${dir}/pages-65538.img`), pagesOf(1, 0xb1));
    assert.equal((await Deno.stat(`${dir}/pages-65537.img`)).mode! & 0o777, 0o600);
    assert.match(log, /om page receiver: 303 pages in 2 images\n$/);
  }));

Deno.test("pagereceiver: a shared memory's pagemap has its own name", () =>
  inDir(async (dir) => {
    const shmem = 42n << 8n | 2n;
    const { code, log } = await receive(
      dir,
      concat(
        command(OPEN2, 0, 0, 0n, shmem),
        command(ADD_F, PRESENT, 1, 0n, shmem),
        pagesOf(1, 7),
        command(CLOSE, 0, 0, 0n, 0n),
      ),
    );
    assert.equal(code, 0, log);
    assert.deepEqual(
      await Deno.readFile(`${dir}/pagemap-shmem-42.img`),
      pagemap(65537, [[0n, 1, 4]]),
    );
  }));

Deno.test("pagereceiver: what it does not take fails it, with an Error line in its log", async () => {
  const opened = command(OPEN2, 0, 0, 0n, task(1));
  const cases: [string, Uint8Array, RegExp][] = [
    ["a lazy-pages request", concat(opened, command(7, 0, 1, 0n, task(1))), /command 7 is not/],
    [
      "a hole in a parent image",
      concat(opened, command(ADD_F, PARENT, 4, 0n, task(1))),
      /a hole in a parent image, and there is none/,
    ],
    ["pages before an open", command(ADD_F, PRESENT, 1, 0n, task(1)), /not opened/],
    ["an unknown image type", command(OPEN2, 0, 0, 0n, 9n), /no image of type 9/],
    [
      "a link that ends in the pages",
      concat(opened, command(ADD_F, PRESENT, 4, 0n, task(1)), pagesOf(1, 1)),
      /ended in the pages/,
    ],
    ["a link that ends before the close", opened, /ended before the dump closed it/],
  ];
  for (const [what, stream, message] of cases) {
    await inDir(async (dir) => {
      const { code, log } = await receive(dir, stream);
      assert.equal(code, 1, `${what}: exit code`);
      assert.match(log, /^Error: om page receiver: /m, what);
      assert.match(log, message, what);
    });
  }
});

Deno.test("pagereceiver: splice(2)'s number per architecture; none known, no receiver", () => {
  assert.equal(spliceSyscall("x86_64"), 275);
  assert.equal(spliceSyscall("aarch64"), 76);
  assert.equal(spliceSyscall("riscv64"), undefined);
  assert.equal(receiverArgs({ imagesDir: "/d", logFile: "/d/l" }, "riscv64"), undefined);
  assert.deepEqual(receiverArgs({ imagesDir: "/d", logFile: "/d/l" }, "x86_64")?.slice(3), [
    "275",
    "/d",
    "/d/l",
  ]);
});

Deno.test("pagereceiver: the reserver's command; memory warmed only within a third of what is available", () => {
  const bytes = { 1: 3 << 20, 7: 1 << 20 };
  const args = (memAvailable: number, arch = "x86_64") =>
    reserverArgs({ imagesDir: "/d", bytes, memAvailable }, arch);
  assert.deepEqual(args(12 << 20)?.slice(3), [
    "285",
    "9",
    "/d",
    String(4 << 20),
    String(WARM_LIMIT_MS),
    "1=3145728",
    "7=1048576",
  ]);
  assert.equal(args((12 << 20) - 1)?.[6], "0", "not within a third: no warm-up");
  assert.deepEqual(args(8 << 20, "aarch64")?.slice(3, 5), ["47", "222"]);
  assert.equal(args(8 << 20, "riscv64"), undefined, "the system call numbers not known");
  assert.equal(reserverArgs({ imagesDir: "/d", bytes: {}, memAvailable: 1 << 30 }), undefined);
});

/** Runs the reserver's command; its exit code, stdout and stderr. */
async function reserve(args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(args[0], { args: args.slice(1) })
    .output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

Deno.test("pagereceiver: the reserver allocates each task's room, mode 0600, and warms", () =>
  inDir(async (dir) => {
    const args = reserverArgs({
      imagesDir: dir,
      bytes: { 1: 2 << 20, 3: 1 << 20 },
      memAvailable: 1 << 30,
    })!;
    const { code, out, err } = await reserve(args);
    assert.equal(code, 0, err);
    assert.equal(out, `warmed ${3 << 20}\n`);
    for (const [id, size] of [[1, 2 << 20], [3, 1 << 20]]) {
      const stat = await Deno.stat(`${dir}/reserve-${id}`);
      assert.equal(stat.size, size, `reserve-${id}'s size`);
      assert.ok(stat.blocks! * 512 >= size, `reserve-${id}'s blocks are allocated`);
      assert.equal(stat.mode! & 0o777, 0o600);
    }
  }));

Deno.test("pagereceiver: the reserver's warm-up stops at its time limit", () =>
  inDir(async (dir) => {
    // 1 GiB to warm within 1 ms: no 64 MiB chunk, or a few (the limit is checked before each, on
    // a clock of 10 ms ticks), never all 16.
    const args = reserverArgs({ imagesDir: dir, bytes: { 1: 2 ** 30 }, memAvailable: 2 ** 35 })!;
    args[7] = "1";
    args[8] = "1=4096";
    const { code, out, err } = await reserve(args);
    assert.equal(code, 0, err);
    const warmed = Number(/^warmed (\d+)\n$/.exec(out)?.[1]);
    assert.ok(warmed >= 0 && warmed <= 256 << 20, out);
  }));

Deno.test("pagereceiver: a failed receiver leaves no reservation, and cuts the one it took", () =>
  inDir(async (dir) => {
    const made = await reserve(
      reserverArgs({ imagesDir: dir, bytes: { 1: 1 << 20, 2: 1 << 20 }, memAvailable: 0 })!,
    );
    assert.equal(made.code, 0, made.err);
    // Task 1's open takes reserve-1; the link ends before its first entry's pages.
    const { code } = await receive(
      dir,
      concat(command(OPEN2, 0, 0, 0n, task(1)), command(ADD_F, PRESENT, 2, 0n, task(1))),
    );
    assert.equal(code, 1);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(names, ["page-server.log", "pagemap-1.img", "pages-65537.img"]);
    assert.equal((await Deno.stat(`${dir}/pages-65537.img`)).size, 0, "cut to what it wrote");
  }));

Deno.test("pagereceiver: a reservation is the tasks of 1 MiB and more, the 1024 largest", async () => {
  await using tmp = await tempDir("proc");
  const proc = tmp.path;
  /** Process `pid`, PID `nspid` in the job, with `kb` of RssAnon and `children`. */
  const task = async (pid: number, nspid: number, kb: number, children: number[] = []) => {
    await Deno.mkdir(`${proc}/${pid}/task/${pid}`, { recursive: true });
    await Deno.writeTextFile(`${proc}/${pid}/task/${pid}/children`, children.join(" "));
    await Deno.writeTextFile(
      `${proc}/${pid}/status`,
      `NSpid:\t${pid}\t${nspid}\nRssAnon:\t${kb} kB\nVmSwap:\t0 kB\n`,
    );
  };
  // 1030 children of 1 MiB + i KiB, one of 1023 KiB, under a PID 1 of 4 MiB.
  const children = Array.from({ length: 1031 }, (_, i) => 1001 + i);
  await task(1000, 1, 4096, children);
  for (const [i, pid] of children.entries()) await task(pid, i + 2, i === 0 ? 1023 : 1024 + i);
  const reserve = (await pageReservation(1000, proc))!;
  assert.equal(Object.keys(reserve).length, RESERVE_MAX_TASKS);
  assert.equal(reserve[1], 4 << 20, "PID 1, by its id in the job");
  assert.equal(reserve[2], undefined, "less than 1 MiB");
  assert.equal(reserve[3], undefined, "the smallest left out");
  assert.equal(reserve[9], undefined, "the smallest left out");
  assert.equal(reserve[10], (1024 + 8) * 1024, "the largest 1024 kept");
  assert.equal(reservedBytes(reserve), Object.values(reserve).reduce((a, b) => a + b));
  await task(2000, 1, 1023);
  assert.equal(await pageReservation(2000, proc), undefined, "nothing to reserve");
});

Deno.test("pagereceiver: the close removes the reservations no open took, whatever the directory's name", () =>
  inDir(async (parent) => {
    // A name perl's glob would split at the space: it once took "<parent>/a" for a pattern.
    const dir = `${parent}/a b [x]*`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(`${parent}/a`, "not the receiver's");
    const made = await reserve(
      reserverArgs({ imagesDir: dir, bytes: { 1: 1 << 20, 3: 1 << 20 }, memAvailable: 0 })!,
    );
    assert.equal(made.code, 0, made.err);
    const { code, log } = await receive(
      dir,
      concat(
        command(OPEN2, 0, 0, 0n, task(1)),
        command(ADD_F, PRESENT, 1, 0n, task(1)),
        pagesOf(1, 5),
        command(CLOSE, 0, 0, 0n, 0n),
      ),
    );
    assert.equal(code, 0, log);
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.deepEqual(names, ["page-server.log", "pagemap-1.img", "pages-65537.img"]);
    assert.deepEqual(await Deno.readFile(`${dir}/pages-65537.img`), pagesOf(1, 5));
    assert.equal(await Deno.readTextFile(`${parent}/a`), "not the receiver's");
  }));
