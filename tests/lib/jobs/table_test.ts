import assert from "node:assert/strict";
import { FakeClock } from "../../../lib/base/clock.ts";
import {
  exitStatus,
  JobTable,
  NoSuchJobError,
  OutputLog,
  parseJobRecord,
} from "../../../lib/jobs/table.ts";
import { decodeOutput, encodeOutput, handlesSignal } from "../../../lib/jobs/jobwire.ts";
import { envScript, START_GATE, WRAPPER_ENV } from "../../../lib/jobs/startgate.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

Deno.test("jobs: output chunks carry their stream and byte offsets", () => {
  const log = new OutputLog(new FakeClock());
  log.append(1, bytes("out\n"));
  log.append(2, bytes("err\n"));
  log.append(1, bytes("more"));
  const read = log.readNow(0);
  assert.equal(read.offset, 12);
  assert.deepEqual(
    read.chunks.map((c) => [c.fd, c.offset, text(c.data)]),
    [[1, 0, "out\n"], [2, 4, "err\n"], [1, 8, "more"]],
  );
  assert.equal(read.exit, undefined);
  // From the middle of a chunk: the rest of it, with its own offset.
  assert.deepEqual(log.readNow(6).chunks.map((c) => [c.fd, c.offset, text(c.data)]), [
    [2, 6, "r\n"],
    [1, 8, "more"],
  ]);
});

Deno.test("jobs: reading from the same offset twice gives the same bytes, never more", () => {
  const log = new OutputLog(new FakeClock());
  log.append(1, bytes("abc"));
  const first = log.readNow(0);
  log.append(1, bytes("def"));
  const again = log.readNow(0);
  assert.equal(text(first.chunks[0].data), "abc");
  assert.deepEqual(again.chunks.map((c) => text(c.data)), ["abc", "def"]);
  // Reading on from where the reader stopped: no duplicates.
  const next = log.readNow(first.offset);
  assert.deepEqual(next.chunks.map((c) => text(c.data)), ["def"]);
  assert.equal(next.offset, 6);
  // Bytes before the offset asked from are delivered and dropped.
  assert.throws(() => log.readNow(0), RangeError);
  assert.throws(() => log.readNow(7), RangeError);
  assert.equal(log.buffered, 3);
});

Deno.test("jobs: a read is cut at its limit and goes on from there", () => {
  const log = new OutputLog(new FakeClock());
  log.append(1, bytes("0123456789"));
  const first = log.readNow(0, 4);
  assert.deepEqual([first.offset, text(first.chunks[0].data)], [4, "0123"]);
  const second = log.readNow(first.offset, 100);
  assert.deepEqual([second.offset, text(second.chunks[0].data)], [10, "456789"]);
});

Deno.test("jobs: the long poll wakes as soon as output arrives", async () => {
  const clock = new FakeClock();
  const log = new OutputLog(clock);
  const pending = log.read(0, 20_000);
  let settled = false;
  void pending.then(() => settled = true);
  await Promise.resolve();
  assert.equal(settled, false);
  log.append(2, bytes("late"));
  const read = await pending;
  assert.deepEqual(read.chunks.map((c) => [c.fd, text(c.data)]), [[2, "late"]]);
  assert.equal(read.offset, 4);
});

Deno.test("jobs: the long poll answers with nothing after its timeout", async () => {
  const clock = new FakeClock();
  const log = new OutputLog(clock);
  const pending = log.read(0, 20_000);
  clock.advance(19_999);
  await Promise.resolve();
  clock.advance(1);
  assert.deepEqual(await pending, { offset: 0, chunks: [] });
});

Deno.test("jobs: the exit comes only once all output is read", async () => {
  const clock = new FakeClock();
  const log = new OutputLog(clock);
  log.append(1, bytes("last words"));
  log.finish({ code: 3 });
  assert.throws(() => log.append(1, bytes("x")), RangeError);
  const partial = log.readNow(0, 4);
  assert.equal(partial.exit, undefined);
  const rest = log.readNow(partial.offset);
  assert.deepEqual(rest.exit, { code: 3 });
  assert.equal(text(rest.chunks[0].data), " words");
  // A reader already at the end is answered at once by the exit.
  assert.deepEqual(await log.read(rest.offset, 20_000), {
    offset: 10,
    chunks: [],
    exit: { code: 3 },
  });
});

Deno.test("jobs: the exit wakes a waiting reader", async () => {
  const log = new OutputLog(new FakeClock());
  const pending = log.read(0, 20_000);
  log.finish({ signal: "SIGINT" });
  assert.deepEqual(await pending, { offset: 0, chunks: [], exit: { signal: "SIGINT" } });
});

Deno.test("jobs: output above the high-water mark waits for the reader", async () => {
  const log = new OutputLog(new FakeClock(), { highWater: 8 });
  log.append(1, bytes("12345678"));
  let room = false;
  const waiting = log.room().then(() => room = true);
  await Promise.resolve();
  assert.equal(room, false);
  log.readNow(0);
  assert.equal(room, false, "reading does not pass the bytes yet");
  log.readNow(8);
  await waiting;
  assert.equal(room, true);
});

Deno.test("jobs: a user's jobs wait together at their output budget; other users' and root's do not", async () => {
  const table = new JobTable(new FakeClock(), { userOutput: 10 });
  const job = (id: number, uid: number) =>
    table.add({ id, home: 1, node: 1, command: ["x"], uid }).output;
  const [a, b, other, root] = [job(1, 1000), job(2, 1000), job(3, 1001), job(4, 0)];
  const settled = async (promise: Promise<void>) => {
    let done = false;
    void promise.then(() => done = true);
    for (let i = 0; i < 5; i++) await Promise.resolve();
    return done;
  };
  a.append(1, bytes("123456"));
  b.append(1, bytes("7890"));
  // Each job is far below its own high water; together they hold their user's budget.
  const bWaits = b.room();
  assert.equal(await settled(bWaits), false);
  assert.equal(await settled(a.room()), false);
  assert.equal(table.stats.outputWaits, 2);
  // Another user's job, and root's (no budget), go on.
  other.append(1, bytes("12345"));
  assert.equal(await settled(other.room()), true);
  root.append(1, bytes("x".repeat(100)));
  assert.equal(await settled(root.room()), true);
  // A reader takes job 1's output: the user's jobs go on.
  a.readNow(6);
  assert.equal(await settled(bWaits), true);
  // A job that leaves the table gives its unread bytes back.
  b.append(1, bytes("123456"));
  assert.equal(await settled(a.room()), false);
  table.remove(2);
  assert.equal(await settled(a.room()), true);
  assert.equal(table.countOf(1000), 1);
  assert.equal(table.countOf(1001), 1);
});

Deno.test("jobs: an ended job whose output is being read is kept past the keep time", () => {
  const clock = new FakeClock();
  const table = new JobTable(clock, { keepEndedMs: 60_000 });
  const { output } = table.add({ id: 9, home: 1, node: 1, command: ["x"] });
  output.append(1, bytes("0123456789"));
  table.finish(9, { code: 0 });
  clock.advance(50_000);
  output.readNow(0, 4);
  clock.advance(50_000);
  assert.deepEqual(table.expire(), [], "read 50 s ago");
  clock.advance(10_000);
  assert.deepEqual(table.expire(), [9]);
});

Deno.test("jobs: exit statuses are the code, or 128 plus the signal's number", () => {
  assert.equal(exitStatus({ code: 3 }), 3);
  assert.equal(exitStatus({ signal: "SIGINT" }), 130);
  assert.equal(exitStatus({ signal: "SIGTERM" }), 143);
  assert.equal(exitStatus({ signal: "SIGKILL" }), 137);
});

Deno.test("jobs: the table finds, lists, forgets and expires jobs", () => {
  const clock = new FakeClock();
  const table = new JobTable(clock, { keepEndedMs: 60_000 });
  table.add({ id: 100, home: 7, node: 7, command: ["sleep", "1"] });
  table.add({ id: 200, home: 7, node: 7, command: ["true"] });
  assert.throws(() => table.add({ id: 100, home: 7, node: 7, command: [] }), RangeError);
  assert.equal(table.get(100).started, clock.now());
  assert.throws(
    () => table.get(5),
    (e: Error) => e instanceof NoSuchJobError && e.message === "no job 5 on this node",
  );
  table.finish(200, { code: 0 });
  clock.advance(59_999);
  assert.deepEqual(table.expire(), []);
  clock.advance(1);
  assert.deepEqual(table.expire(), [200]);
  assert.deepEqual(table.list().map((j) => j.id), [100]);
  assert.equal(table.remove(100), true);
  assert.equal(table.remove(100), false);
});

Deno.test("jobs: job records parse, and anything else is not one", () => {
  const record = {
    pid: 5,
    node: 1,
    home: 1,
    command: ["a", "b"],
    started: 12,
    policy: { lock: true, kind: "io" as const, decay: "fast" as const },
    migrations: 2,
    uid: 1000,
  };
  assert.deepEqual(parseJobRecord(JSON.stringify(record)), record);
  // A record without policy, count or user (an older om) reads with the defaults: root's.
  const { policy: _, migrations: __, uid: ___, ...old } = record;
  assert.deepEqual(parseJobRecord(JSON.stringify(old)), {
    ...old,
    policy: { lock: false, decay: "slow" },
    migrations: 0,
    uid: 0,
  });
  assert.equal(parseJobRecord(JSON.stringify({ ...record, uid: -1 }))?.uid, 0);
  assert.equal(
    parseJobRecord(JSON.stringify({ ...record, policy: { lock: 1, decay: "slow" } }))?.policy
      .lock,
    false,
  );
  assert.equal(parseJobRecord("{"), undefined);
  assert.equal(parseJobRecord(JSON.stringify({ ...record, command: [1] })), undefined);
  assert.equal(parseJobRecord(JSON.stringify({ ...record, pid: "5" })), undefined);
});

Deno.test("deputy: job.output replies carry the chunks in base64, binary-safe", () => {
  const data = new Uint8Array(256).map((_, i) => i);
  const reply = encodeOutput({
    offset: 256,
    chunks: [{ fd: 2, offset: 0, data }],
    exit: { code: 1 },
  });
  assert.equal(reply.chunks[0].data.slice(0, 8), "AAECAwQF");
  const back = decodeOutput(JSON.parse(JSON.stringify(reply)));
  assert.deepEqual(back.chunks[0].data, data);
  assert.deepEqual(back.exit, { code: 1 });
});

Deno.test("deputy: a signal counts as handled when caught or ignored", () => {
  // SIGINT is bit 1 (value 2), SIGTERM bit 14 (0x4000), SIGHUP bit 0.
  const status = "SigIgn:\t0000000000000001\nSigCgt:\t0000000000000002\n";
  assert.equal(handlesSignal(status, 1), true);
  assert.equal(handlesSignal(status, 2), true);
  assert.equal(handlesSignal(status, 15), false);
  assert.equal(handlesSignal("SigIgn:\t0\nSigCgt:\t0000000000004000\n", 15), true);
});

Deno.test("deputy: the environment block is its length, then shell-quoted exports; bad names are skipped", () => {
  assert.equal(
    envScript({ A: "it's", "B.C": "no", EMPTY: "" }),
    "35\nexport A='it'\\''s'\nexport EMPTY=''\n",
  );
});

Deno.test("deputy: the start gate enters the directory, takes the environment, then the id", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        START_GATE,
        "om-job",
        dir,
        "sh",
        "-c",
        'printf "%s|%s|%s|%s|%s|" "$(pwd)" "$A" "$OM_JOB" "$PATH" "${LD_PRELOAD-unset}"; cat',
      ],
      cwd: "/",
      env: { ...WRAPPER_ENV },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const env = { A: "two\nlines 'quoted' $HOME", PATH: "/usr/bin:/bin" };
    await writer.write(new TextEncoder().encode(`${envScript(env)}42\nrest of stdin`));
    await writer.close();
    const output = await child.output();
    assert.equal(
      new TextDecoder().decode(output.stdout),
      `${dir}|two\nlines 'quoted' $HOME|42|/usr/bin:/bin|unset|rest of stdin`,
    );
    // A directory it may not enter (none): it says so and exits 125.
    const refused = await new Deno.Command("sh", {
      args: ["-c", START_GATE, "om-job", `${dir}/none`, "true"],
      stdin: "null",
      stderr: "piped",
    }).output();
    assert.equal(refused.code, 125);
    assert.match(new TextDecoder().decode(refused.stderr), /Cannot start in ".*\/none"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
