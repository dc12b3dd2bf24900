import assert from "node:assert/strict";
import {
  defaultSelection,
  formatCpuTime,
  jobPlacement,
  type Placement,
  psRows,
  renderPs,
  run,
  spec,
} from "../../commands/ps.ts";
import { readProcesses } from "../../lib/base/procs.ts";
import { DEFAULT_POLICY } from "../../lib/jobs/table.ts";
import { invoke, sandbox as shared } from "../tools/sandbox.ts";
import { writeMap } from "../../lib/state/tree.ts";

const HEADER = "  PID TTY NODE STAT TIME COMMAND\n";
const ME = Deno.uid() ?? 0;
const SOMEONE = ME + 1;

/** stat lines: init (no terminal), a login shell on tty1, a job of another user, a kernel thread. */
const PROCESSES = [
  {
    stat: "1 (systemd) S 0 1 1 0 -1 4194560 0 0 0 0 51200 100 0 0 20 0 1 0 3",
    uid: 0,
    cmdline: "/sbin/init\0splash\0",
  },
  {
    stat: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 3",
    uid: 0,
    cmdline: "",
  },
  {
    stat: "731 (bash) S 1 731 731 1025 802 4194560 0 0 0 0 9 3 0 0 20 0 1 0 9",
    uid: ME,
    cmdline: "-bash\0",
  },
  {
    stat: "802 (my (odd) job) R 731 802 731 1025 802 4194560 0 0 0 0 360000 2 0 0 30 10 1 0 9",
    uid: ME,
    cmdline: "./job\0--name\0two\nlines\0",
  },
  {
    stat: "900 (sleep) S 1 900 900 34816 900 4194560 0 0 0 0 0 0 0 0 20 0 1 0 9",
    uid: SOMEONE,
    cmdline: "sleep\x00600\x00",
  },
];

const ps = (argv: string[], env: Record<string, string>) => invoke({ spec, run }, argv, env);

/** A sandbox whose /proc holds PROCESSES. */
async function sandbox() {
  const box = await shared("ps");
  for (const p of PROCESSES) {
    const pid = p.stat.slice(0, p.stat.indexOf(" "));
    const dir = `${box.env.OM_PROC}/${pid}`;
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/stat`, p.stat + "\n");
    await Deno.writeTextFile(`${dir}/status`, `Uid:\t${p.uid}\t${p.uid}\t0\t0\n`);
    await Deno.writeTextFile(`${dir}/cmdline`, p.cmdline);
  }
  return box;
}

Deno.test("ps lists the user's processes that have a terminal, under mps's header exactly", async () => {
  await using box = await sandbox();
  assert.deepEqual(await ps([], box.env), {
    code: 0,
    out: "  PID TTY NODE STAT TIME COMMAND\n" +
      "  731 tty1    0 Ss   0:00 -bash\n" +
      "  802 tty1    0 RN+  1:00:00 ./job --name two?lines\n",
    err: "",
  });
});

Deno.test("ps -a lists every process; a wider TTY pushes its row along, the header stays", async () => {
  await using box = await sandbox();
  const { code, out } = await ps(["-a"], box.env);
  assert.equal(code, 0);
  assert.equal(
    out,
    "  PID TTY NODE STAT TIME COMMAND\n" +
      "    1 ?      0 Ss   8:33 /sbin/init splash\n" +
      "    2 ?      0 S    0:00 [kthreadd]\n" +
      "  731 tty1    0 Ss   0:00 -bash\n" +
      "  802 tty1    0 RN+  1:00:00 ./job --name two?lines\n" +
      "  900 pts/0    0 Ss+  0:00 sleep 600\n",
  );
  assert.deepEqual(await ps(["--all"], box.env), { code, out, err: "" });
});

Deno.test("ps PID... lists just those, whoever owns them, and exits 1 when none exists", async () => {
  await using box = await sandbox();
  assert.deepEqual(await ps(["2", "1"], box.env), {
    code: 0,
    out: HEADER + "    1 ?      0 Ss   8:33 /sbin/init splash\n" +
      "    2 ?      0 S    0:00 [kthreadd]\n",
    err: "",
  });
  assert.deepEqual(await ps(["4242"], box.env), { code: 1, out: HEADER, err: "" });
  const bad = await ps(["12x"], box.env);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /Cannot use "12x" as a PID/);
});

Deno.test("ps --json gives the same rows as objects", async () => {
  await using box = await sandbox();
  const { code, out, err } = await ps(["--json", "802", "2"], box.env);
  assert.equal(code, 0);
  assert.equal(err, "");
  assert.deepEqual(JSON.parse(out), [
    {
      pid: 2,
      ppid: 0,
      uid: 0,
      node: 0,
      home: 0,
      tty: "?",
      stat: "S",
      time: 0.03,
      command: "[kthreadd]",
    },
    {
      pid: 802,
      ppid: 731,
      uid: ME,
      node: 0,
      home: 0,
      tty: "tty1",
      stat: "RN+",
      time: 3600.02,
      command: "./job --name two\nlines",
    },
  ]);
  assert.deepEqual(await ps(["--json", "4242"], box.env), { code: 1, out: "[]\n", err: "" });
});

Deno.test("ps shows this very test process, running here", async () => {
  const { code, out } = await ps([String(Deno.pid)], {
    OM_PROC: "/proc",
    OM_CONFIG: "/dev/null",
  });
  assert.equal(code, 0);
  const [header, row, ...rest] = out.split("\n");
  assert.match(header, /^ {2}PID TTY +NODE STAT +TIME COMMAND$/);
  assert.deepEqual(rest, [""]);
  const [pid, tty, node, stat, time, ...command] = row.trim().split(/\s+/);
  assert.equal(Number(pid), Deno.pid);
  assert.match(tty, /^(\?|pts\/\d+|tty\w+|console)$/);
  assert.equal(node, "0");
  assert.match(stat, /^[RS]/);
  assert.match(time, /^\d+:\d\d$/);
  assert.match(command[0], /deno/);
  assert.ok(command.includes("test"));

  const json = await ps(["--json", String(Deno.pid)], { OM_PROC: "/proc", OM_CONFIG: "/dev/null" });
  const [self] = JSON.parse(json.out);
  assert.equal(self.pid, Deno.pid);
  assert.equal(self.node, 0);
  assert.equal(self.home, 0);
  assert.equal(self.uid, ME);
  assert.equal(typeof self.time, "number");
});

Deno.test("a row's node comes from the placement it is given", async () => {
  await using box = await sandbox();
  const processes = await readProcesses(`${box.dir}/proc`, { pids: [731, 900] });
  const elsewhere = (p: { pid: number }): Placement =>
    p.pid === 900 ? { node: 2780, home: 0 } : { node: 0, home: 0 };
  const rows = psRows(processes, elsewhere);
  assert.deepEqual(rows.map((r) => [r.pid, r.node, r.home]), [[731, 0, 0], [900, 2780, 0]]);
  assert.equal(
    renderPs(rows),
    "  PID TTY NODE STAT TIME COMMAND\n" +
      "  731 tty1    0 Ss   0:00 -bash\n" +
      "  900 pts/0 2780 Ss+  0:00 sleep 600\n",
  );
  assert.equal(renderPs(rows, { width: 20 }).split("\n")[2], "  900 pts/0 2780 Ss+");
});

Deno.test("formatCpuTime: M:SS, then H:MM:SS from an hour on", () => {
  assert.equal(formatCpuTime(0), "0:00");
  assert.equal(formatCpuTime(59.99), "0:59");
  assert.equal(formatCpuTime(61), "1:01");
  assert.equal(formatCpuTime(3599), "59:59");
  assert.equal(formatCpuTime(3600), "1:00:00");
  assert.equal(formatCpuTime(100 * 3600 + 62), "100:01:02");
});

const LOCKED = { lock: true, kind: "cpu", decay: "fast" } as const;

Deno.test("ps: a job's PID 1 gets its job's node and home; a job elsewhere gets a row", () => {
  const jobs = [
    {
      pid: 802,
      node: 5,
      home: 5,
      command: ["./job"],
      started: 1,
      policy: LOCKED,
      migrations: 0,
      uid: 0,
    },
    {
      pid: 900,
      node: 9,
      home: 5,
      command: ["far", "away"],
      started: 2,
      policy: DEFAULT_POLICY,
      migrations: 2,
      uid: 1000,
    },
  ];
  const { placement, elsewhere } = jobPlacement(jobs, 5);
  const here = { pid: 802 } as Parameters<typeof placement>[0];
  const other = { pid: 731 } as Parameters<typeof placement>[0];
  assert.deepEqual(placement(here), {
    node: 0,
    home: 0,
    job: { policy: LOCKED, migrations: 0 },
  });
  assert.deepEqual(placement(other), { node: 0, home: 0 });
  assert.deepEqual(
    elsewhere.map((r) => [r.pid, r.node, r.home, r.command, r.policy, r.migrations]),
    [[900, 9, 0, "far away", DEFAULT_POLICY, 2]],
  );
  // On node 9, the same job is a guest: it runs here (0), its home is 5.
  assert.deepEqual(
    jobPlacement(jobs, 9).elsewhere.map((r) => [r.pid, r.node, r.home]),
    [[900, 0, 5]],
  );
  // A job without a terminal is still one of "your processes".
  const select = defaultSelection(ME, new Set([802]));
  assert.equal(select({ pid: 802, uid: ME, ttyNr: 0 } as Parameters<typeof select>[0]), true);
  assert.equal(select({ pid: 803, uid: ME, ttyNr: 0 } as Parameters<typeof select>[0]), false);
});

/**
 * A sandbox at home node 1 right after job 1234 moved to node 2: the job's record says node 2,
 * and its old local copy is still in /proc with the given stat state (Z: killed, not yet reaped;
 * T: left stopped by the dump), or a later process reuses its PID.
 */
async function movedJob(state: string, comm = "sh", cmdline = "") {
  const box = await sandbox();
  const dir = `${box.env.OM_PROC}/1234`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/stat`,
    `1234 (${comm}) ${state} 1 1234 1234 0 -1 4194560 0 0 0 0 250 10 0 0 20 0 1 0 77\n`,
  );
  await Deno.writeTextFile(`${dir}/status`, `Uid:\t${ME}\t${ME}\t0\t0\n`);
  await Deno.writeTextFile(`${dir}/cmdline`, cmdline);
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [
      { base: 1, address: "10.77.0.1", count: 1 },
      { base: 2, address: "10.77.0.2", count: 1 },
    ],
  });
  await Deno.mkdir(`${box.env.OM_ROOT}/jobs`, { recursive: true });
  await Deno.writeTextFile(
    `${box.env.OM_ROOT}/jobs/1234`,
    JSON.stringify({
      pid: 1234,
      node: 2,
      home: 1,
      command: ["sh", "-c", "work"],
      started: 1,
      policy: DEFAULT_POLICY,
      migrations: 1,
      uid: ME,
    }),
  );
  return box;
}

Deno.test("ps: a moved job is one row, not also its dead or stopped copy at home", async () => {
  for (const state of ["Z", "T"]) {
    await using box = await movedJob(state);
    const json = await ps(["--json"], box.env);
    assert.equal(json.code, 0);
    const rows = JSON.parse(json.out).filter((r: { pid: number }) => r.pid === 1234);
    assert.deepEqual(
      rows.map((r: { node: number; home: number; command: string }) => [r.node, r.home, r.command]),
      [[2, 0, "sh -c work"]],
      `old copy in state ${state}`,
    );
    // Asked for by PID, and with -a: the same one row.
    assert.deepEqual(await ps(["1234"], box.env), {
      code: 0,
      out: HEADER + " 1234 ?      2 -    0:00 sh -c work\n",
      err: "",
    });
    const all = (await ps(["-a"], box.env)).out.split("\n");
    assert.deepEqual(all.filter((line) => /^ *1234 /.test(line)), [
      " 1234 ?      2 -    0:00 sh -c work",
    ]);
  }
});

Deno.test("ps: a later process that reuses a moved job's PID is listed as itself", async () => {
  await using box = await movedJob("R", "other", "other\0");
  const { out } = await ps(["1234"], box.env);
  assert.equal(
    out,
    HEADER + " 1234 ?      0 Rs   0:02 other\n" + " 1234 ?      2 -    0:00 sh -c work\n",
  );
});
