import assert from "node:assert/strict";
import {
  decodeTty,
  descendants,
  parseCmdline,
  parseStat,
  parseStatusUid,
  privateMemory,
  readProcess,
  readProcesses,
  readStat,
  statFlags,
} from "../../../lib/base/procs.ts";
import { retryUntil } from "../../../lib/base/retry.ts";

/** A real stat line of an interactive bash (kernel 6.x), fields 1 to 52. */
const BASH =
  "4618 (bash) S 4617 4618 4618 34816 6291 4194560 5373 21467 0 1 12 7 31 20 20 0 1 0 290112 " +
  "9125888 1117 18446744073709551615 94633434529792 94633435443045 140724180453616 0 0 0 " +
  "65536 3670020 1266777851 1 0 0 17 1 0 0 0 0 0 94633435677104 94633435724876 " +
  "94633461940224 140724180458335 140724180458350 140724180458350 140724180459502 0";

/** The same with a name that holds spaces and both parentheses, as prctl(PR_SET_NAME) allows. */
const ODD = BASH.replace("(bash)", "(my (odd) ) job)");

Deno.test("parseStat reads the fields ps needs from a real line", () => {
  assert.deepEqual(parseStat(BASH), {
    pid: 4618,
    comm: "bash",
    state: "S",
    ppid: 4617,
    pgrp: 4618,
    session: 4618,
    ttyNr: 34816,
    tpgid: 6291,
    cpuTicks: 19,
    nice: 0,
    threads: 1,
    startTime: 290112,
  });
});

Deno.test("parseStat takes the name up to the LAST parenthesis", () => {
  const stat = parseStat(ODD);
  assert.equal(stat.comm, "my (odd) ) job");
  assert.equal(stat.state, "S");
  assert.equal(stat.ppid, 4617);
  assert.equal(stat.cpuTicks, 19);
  assert.equal(parseStat("7 () R 1 7 7 0 -1 0 0 0 0 0 250 50 0 0 20 -5 3 0").comm, "");
});

Deno.test("parseStat: a kernel thread and a zombie", () => {
  const kthread = parseStat(
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 3 0 0 18446744073709551615",
  );
  assert.deepEqual([kthread.pid, kthread.ppid, kthread.ttyNr, kthread.tpgid], [2, 0, 0, -1]);
  assert.equal(kthread.startTime, 3);
  const zombie = parseStat(
    "99 (defunct thing) Z 4618 99 4618 34816 6291 4227084 0 0 0 0 1 1 0 0 20 0 1 0",
  );
  assert.equal(zombie.state, "Z");
  assert.equal(zombie.session, 4618);
  assert.equal(zombie.startTime, undefined, "a line cut short before field 22");
});

Deno.test("parseStat rejects what is not a stat line, saying where", () => {
  assert.throws(() => parseStat(""), SyntaxError);
  assert.throws(() => parseStat("12 bash S 1"), /no "\(name\)"/);
  assert.throws(() => parseStat("x (bash) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1"), /no pid/);
  assert.throws(
    () => parseStat("12 (bash) S 1 12 12 0"),
    /5 fields after the name at byte 9, need 18/,
  );
  assert.throws(
    () => parseStat("12 (bash) S 1 12 12 0 -1 0 0 0 0 0 x 0 0 0 20 0 1"),
    /field 14 "x"/,
  );
});

Deno.test("parseCmdline splits on NUL and drops the last terminator", () => {
  assert.deepEqual(parseCmdline("bash\0-l\0"), ["bash", "-l"]);
  assert.deepEqual(parseCmdline("sleep\0\0"), ["sleep", ""]);
  assert.deepEqual(parseCmdline("sshd: alice@pts/0"), ["sshd: alice@pts/0"]);
  assert.deepEqual(parseCmdline(""), []);
});

Deno.test("parseStatusUid takes the effective uid", () => {
  const status = "Name:\tpasswd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\n" +
    "Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
  assert.equal(parseStatusUid(status), 0);
  assert.throws(() => parseStatusUid("Name:\tx\n"), SyntaxError);
  assert.throws(() => parseStatusUid("Uid:\t1000\n"), SyntaxError);
});

Deno.test("decodeTty names terminals as ps does", () => {
  assert.equal(decodeTty(0), "?");
  assert.equal(decodeTty(34816), "pts/0"); // 136:0
  assert.equal(decodeTty((137 << 8) | 44), "pts/300"); // 137:44
  assert.equal(decodeTty((136 << 8) | 44 | (256 << 12)), "pts/300"); // 136:300, wide minor
  assert.equal(decodeTty((4 << 8) | 1), "tty1");
  assert.equal(decodeTty((4 << 8) | 64), "ttyS0");
  assert.equal(decodeTty((5 << 8) | 1), "console");
  assert.equal(decodeTty((204 << 8) | 64), "204:64");
});

Deno.test("statFlags adds priority, session leader, threads and foreground", () => {
  const bash = parseStat(BASH);
  assert.equal(statFlags(bash), "Ss");
  assert.equal(statFlags({ ...bash, pid: 6291, pgrp: 6291, tpgid: 6291 }), "S+");
  assert.equal(statFlags({ ...bash, nice: -20, threads: 4 }), "S<sl");
  assert.equal(statFlags({ ...bash, state: "R", nice: 19, session: 1 }), "RN");
  assert.equal(statFlags({ ...bash, pgrp: -1, tpgid: -1, session: 1 }), "S");
});

/** A fake proc directory: one process per entry, plus files that are not processes. */
async function fakeProc(processes: { stat: string; uid: number; cmdline: string }[]) {
  const dir = await Deno.makeTempDir({ prefix: "om-procs-" });
  await Deno.writeTextFile(`${dir}/uptime`, "1.00 1.00\n");
  await Deno.mkdir(`${dir}/self`);
  for (const p of processes) {
    const pid = p.stat.slice(0, p.stat.indexOf(" "));
    await Deno.mkdir(`${dir}/${pid}`);
    await Deno.writeTextFile(`${dir}/${pid}/stat`, p.stat + "\n");
    await Deno.writeTextFile(`${dir}/${pid}/status`, `Name:\tx\nUid:\t${p.uid}\t${p.uid}\t0\t0\n`);
    await Deno.writeTextFile(`${dir}/${pid}/cmdline`, p.cmdline);
  }
  return dir;
}

Deno.test("readProcesses reads every process of a proc tree, ascending, skipping the gone", async () => {
  const dir = await fakeProc([
    { stat: ODD, uid: 1000, cmdline: "" },
    { stat: BASH.replace(/^4618/, "12"), uid: 0, cmdline: "bash\0-l\0" },
  ]);
  try {
    const all = await readProcesses(dir);
    assert.deepEqual(all.map((p) => [p.pid, p.uid, p.comm, p.argv]), [
      [12, 0, "bash", ["bash", "-l"]],
      [4618, 1000, "my (odd) ) job", []],
    ]);
    const some = await readProcesses(dir, { pids: [4618, 999999, 4618] });
    assert.deepEqual(some.map((p) => p.pid), [4618]);
    assert.equal(await readProcess(dir, 3), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readProcess reads this very test process from /proc", async () => {
  const self = await readProcess("/proc", Deno.pid);
  assert.ok(self);
  assert.equal(self.pid, Deno.pid);
  assert.equal(self.uid, Deno.uid());
  assert.match(self.argv[0], /deno/);
  assert.ok(self.argv.includes("test"));
  assert.ok(self.threads >= 1);
});

Deno.test("readStat reads one process's stat, start time included", async () => {
  const self = await readStat(Deno.pid);
  assert.equal(self.pid, Deno.pid);
  assert.ok(Number.isInteger(self.startTime) && self.startTime! > 0);
  const again = await readStat(Deno.pid, "/proc");
  assert.equal(again.startTime, self.startTime, "a process's start time does not change");
  const dir = await fakeProc([{ stat: BASH, uid: 0, cmdline: "" }]);
  try {
    assert.equal((await readStat(4618, dir)).startTime, 290112);
    await assert.rejects(readStat(3, dir), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("descendants lists children and grandchildren, parents first", async () => {
  const child = new Deno.Command("sh", {
    args: ["-c", "sleep 30 & sh -c 'sleep 30 & wait' & wait"],
    stdout: "null",
  }).spawn();
  let below: number[] = [];
  try {
    // sh: a sleep, and a sh with its own sleep.
    below = await retryUntil(
      async () => {
        const pids = await descendants(child.pid);
        return pids.length === 3 ? pids : undefined;
      },
      5000,
      { what: "three processes below the shell", intervalMs: 10 },
    );
    const names = await Promise.all(
      below.map(async (pid) => (await readProcess("/proc", pid))?.argv.join(" ")),
    );
    assert.deepEqual(names.toSorted(), ["sh -c sleep 30 & wait", "sleep 30", "sleep 30"]);
    const inner = below[names.indexOf("sh -c sleep 30 & wait")];
    const own = await descendants(inner);
    assert.equal(own.length, 1);
    assert.equal(names[below.indexOf(own[0])], "sleep 30", "the inner shell's sleep");
    assert.ok(below.indexOf(inner) < below.indexOf(own[0]), "a parent comes before its child");
  } finally {
    for (const pid of [child.pid, ...below]) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await child.status;
  }
  assert.deepEqual(await descendants(999_999_999), [], "no such process: nothing below it");
});

Deno.test("privateMemory: anonymous and swapped bytes of a tree, by PID in its namespace", async () => {
  const proc = await Deno.makeTempDir({ prefix: "om-procs-" });
  try {
    const status = (nspid: string, rssAnon: number, swap?: number) =>
      `Name:\tperl\nNSpid:\t${nspid}\nVmRSS:\t99999 kB\nRssAnon:\t   ${rssAnon} kB\n` +
      `RssFile:\t    1000 kB\n${swap === undefined ? "" : `VmSwap:\t    ${swap} kB\n`}`;
    const write = async (pid: number, text: string | undefined, children = "") => {
      await Deno.mkdir(`${proc}/${pid}/task/${pid}`, { recursive: true });
      await Deno.writeTextFile(`${proc}/${pid}/task/${pid}/children`, children);
      if (text !== undefined) await Deno.writeTextFile(`${proc}/${pid}/status`, text);
    };
    // The job's PID 1 (host 500) with two children; 503 ended while read (no status).
    await write(500, status("500\t1", 8192, 1024), "501 503 ");
    await write(501, status("501\t2", 4), "502");
    await write(502, status("502\t3", 0, 0));
    await write(503, undefined);
    assert.deepEqual(await privateMemory(500, proc), {
      1: 9216 * 1024,
      2: 4096,
      3: 0,
    });
    assert.deepEqual(await privateMemory(999, proc), {}, "no such process");
  } finally {
    await Deno.remove(proc, { recursive: true });
  }
});
