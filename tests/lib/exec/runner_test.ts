/** The runner on real processes: no shell, the fixed environment, the time limit, the limit. */
import assert from "node:assert/strict";
import { systemClock } from "../../../lib/base/clock.ts";
import { resolveCommand, runCommand } from "../../../lib/exec/runner.ts";
import { retryUntil } from "../../../lib/base/retry.ts";
import { commandCgroup, ownCgroupDir, sweepStale } from "../../../lib/exec/cgroup.ts";
import { readProcess } from "../../../lib/base/procs.ts";

const ROOT = Deno.uid() === 0;

/** The cgroups below this process's own whose names start with `prefix`. */
async function cgroupsNamed(prefix: string): Promise<string[]> {
  const dir = await ownCgroupDir();
  const names: string[] = [];
  if (dir === undefined) return names;
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isDirectory && entry.name.startsWith(prefix)) names.push(entry.name);
  }
  return names.sort();
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const run = (argv: string[], options: Partial<Parameters<typeof runCommand>[1]> = {}) =>
  runCommand(argv, { timeoutMs: 10_000, clock: systemClock, ...options });

/** True while a process with this pid runs (a zombie counts as ended). */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

Deno.test("runner: argv without a shell, in /, stdin closed, the fixed environment", async () => {
  const result = await run([
    "sh",
    "-c",
    'echo "$1 $(pwd) $HOME $USER $PATH $OM_ROOT"; env | sort | cut -d= -f1 | tr "\\n" " "; ' +
    'read line; echo "read $?" >&2; exit 3',
    "sh",
    "a b;$(x)",
  ], { env: { OM_ROOT: "/r" } });
  assert.deepEqual(result.outcome, { kind: "exited", code: 3 });
  const [first, names] = text(result.stdout).split("\n");
  assert.equal(
    first,
    "a b;$(x) / /root root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /r",
  );
  // Nothing of the daemon's own environment.
  assert.deepEqual(names.trim().split(" ").filter((n) => !["PWD", "SHLVL", "_"].includes(n)), [
    "HOME",
    "LANG",
    "LOGNAME",
    "OM_ROOT",
    "PATH",
    "USER",
  ]);
  assert.equal(text(result.stderr), "read 1\n", "stdin is at its end at once");
  assert.deepEqual(result.dropped, { stdout: 0, stderr: 0 });
});

Deno.test("runner: not found is 127, not executable 126, as a shell says; nothing starts", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/plain`, "echo hi\n", { mode: 0o644 });
    const cases: [string, number, string][] = [
      ["no-such-command-om", 127, "no-such-command-om: command not found"],
      [`${dir}/missing`, 127, `${dir}/missing: No such file or directory`],
      [`${dir}/plain`, 126, `${dir}/plain: Permission denied`],
      [dir, 126, `${dir}: Is a directory`],
    ];
    for (const [name, code, reason] of cases) {
      const result = await run([name]);
      assert.deepEqual(result.outcome, { kind: "unstartable", code, reason });
    }
    // A bare name is looked up in the fixed PATH, never elsewhere.
    await Deno.writeTextFile(`${dir}/mine`, "#!/bin/sh\necho mine\n", { mode: 0o755 });
    assert.equal((await run(["mine"])).outcome.kind, "unstartable");
    assert.deepEqual(await resolveCommand("mine", `/nonexistent:${dir}`), { path: `${dir}/mine` });
    assert.equal(text((await run([`${dir}/mine`])).stdout), "mine\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runner: a signal's end, 128+N", async () => {
  const result = await run(["sh", "-c", "kill -TERM $$"]);
  assert.deepEqual(result.outcome, { kind: "signal", signal: "SIGTERM", code: 143 });
});

Deno.test("runner: at the time limit the whole process group is killed", async () => {
  const started = Date.now();
  const result = await run(
    ["sh", "-c", "sleep 60 & echo $!; echo started; sleep 60; echo never"],
    { timeoutMs: 700 },
  );
  const took = Date.now() - started;
  assert.deepEqual(result.outcome, { kind: "timeout", afterMs: 700 });
  const [child, said] = text(result.stdout).split("\n");
  assert.equal(said, "started");
  assert.ok(took >= 700 && took < 5000, `took ${took} ms`);
  assert.ok(result.ms >= 700);
  // The background sleep was in the group: it is gone too.
  await retryUntil(async () => !await alive(Number(child)), 3000, { what: `pid ${child} to end` });
});

Deno.test({
  name: "runner: at the time limit what left the group goes too (its cgroup); its cgroup goes",
  ignore: !ROOT || !await ownCgroupDir(),
  fn: async () => {
    const groups = async () => await cgroupsNamed(`om-exec-${Deno.pid}-`);
    const before = await groups();
    // A session of its own (setsid) and a daemon's double fork, both out of the process group.
    const result = await run(
      [
        "sh",
        "-c",
        "setsid sleep 61 </dev/null >/dev/null 2>&1 & echo $!; " +
        "(sh -c 'sleep 62 </dev/null >/dev/null 2>&1 & echo $!' &) ; sleep 0.2; sleep 60",
      ],
      { timeoutMs: 700 },
    );
    assert.deepEqual(result.outcome, { kind: "timeout", afterMs: 700 });
    const pids = text(result.stdout).trim().split("\n").map(Number);
    assert.equal(pids.length, 2, text(result.stdout));
    for (const pid of pids) {
      await retryUntil(async () => !await alive(pid), 3000, { what: `pid ${pid} to end` });
    }
    assert.deepEqual(await groups(), before, "the command's cgroup is removed");
  },
});

Deno.test({
  name: "runner: what a command leaves running on purpose stays, out of its cgroup",
  ignore: !ROOT || !await ownCgroupDir(),
  fn: async () => {
    const result = await run(["sh", "-c", "setsid sleep 63 </dev/null >/dev/null 2>&1 & echo $!"]);
    assert.deepEqual(result.outcome, { kind: "exited", code: 0 });
    const pid = Number(text(result.stdout).trim());
    try {
      assert.ok(await alive(pid), "the service it started runs on");
      // It is back in the daemon's group, and the command's group is gone.
      const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n").find((l) =>
        l.startsWith("0::")
      );
      const its = (await Deno.readTextFile(`/proc/${pid}/cgroup`)).split("\n").find((l) =>
        l.startsWith("0::")
      );
      assert.equal(its, own);
      assert.deepEqual(await cgroupsNamed(`om-exec-${Deno.pid}-`), []);
    } finally {
      Deno.kill(pid, "SIGKILL");
    }
  },
});

/** The unified hierarchy's mount point (this process's group directory less its path). */
async function cgroupMount(): Promise<string> {
  const dir = (await ownCgroupDir())!;
  const own = (await Deno.readTextFile("/proc/self/cgroup")).split("\n").find((l) =>
    l.startsWith("0::")
  )!.slice(3);
  return own === "/" ? dir : dir.slice(0, dir.length - own.length);
}

/** sh that makes a group below its own, enters it, and starts a sleep in its own session. */
const nested = (mount: string, sleep: string) =>
  `d=${mount}$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir "$d/inner" && ` +
  `echo $$ > "$d/inner/cgroup.procs" || exit 9; setsid sleep ${sleep} </dev/null >/dev/null 2>&1 & ` +
  "echo $!";

Deno.test({
  name:
    "runner: groups a command made below its own: removed at once, what they hold kept or killed",
  ignore: !ROOT || !await ownCgroupDir(),
  fn: async () => {
    const mount = await cgroupMount();
    const started = Date.now();
    const ended = await run(["sh", "-c", nested(mount, "65")]);
    assert.deepEqual(ended.outcome, { kind: "exited", code: 0 }, text(ended.stderr));
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    const kept = Number(text(ended.stdout).trim());
    try {
      assert.ok(await alive(kept), "what it left running on purpose runs on");
      assert.deepEqual(await cgroupsNamed(`om-exec-${Deno.pid}-`), []);
    } finally {
      Deno.kill(kept, "SIGKILL");
    }
    const limited = await run(["sh", "-c", `${nested(mount, "66")}; sleep 60`], {
      timeoutMs: 500,
    });
    assert.deepEqual(limited.outcome, { kind: "timeout", afterMs: 500 });
    const killed = Number(text(limited.stdout).trim());
    await retryUntil(async () => !await alive(killed), 3000, { what: `pid ${killed} to end` });
    assert.deepEqual(await cgroupsNamed(`om-exec-${Deno.pid}-`), []);
  },
});

Deno.test({
  name: "runner: a dead daemon's groups are killed and removed; a live one's are not",
  ignore: !ROOT || !await ownCgroupDir(),
  fn: async () => {
    const parent = (await ownCgroupDir())!;
    const own = await readProcess("/proc", Deno.pid);
    // A PID no process has (above the kernel's pid_max), and this process with its start time.
    const dead = `${parent === "/" ? "" : parent}/om-exec-4194304-1-1`;
    const live = `${parent === "/" ? "" : parent}/om-exec-${Deno.pid}-${own!.startTime}-999`;
    await Deno.mkdir(dead);
    await Deno.mkdir(live);
    const sleeper = new Deno.Command("sh", {
      args: ["-c", `echo $$ > ${dead}/cgroup.procs && exec sleep 67`],
    }).spawn();
    try {
      await retryUntil(
        async () => (await Deno.readTextFile(`${dead}/cgroup.procs`)).trim() !== "",
        3000,
      );
      await sweepStale(parent);
      assert.equal((await sleeper.status).signal, "SIGKILL", "what the dead daemon left is killed");
      await assert.rejects(Deno.stat(dead), Deno.errors.NotFound);
      assert.ok(await Deno.stat(live), "a live daemon's group stays");
    } finally {
      try {
        sleeper.kill("SIGKILL");
      } catch { /* gone */ }
      await Deno.remove(live).catch(() => {});
      await Deno.remove(dead).catch(() => {});
    }
  },
});

Deno.test("runner: a directory that is not a cgroup is none: the process group alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A /proc/self whose unified hierarchy is a plain directory.
    await Deno.mkdir(`${dir}/self`);
    await Deno.mkdir(`${dir}/cg`);
    await Deno.writeTextFile(`${dir}/self/cgroup`, "0::/\n");
    await Deno.writeTextFile(
      `${dir}/self/mountinfo`,
      `40 30 0:35 / ${dir}/cg rw,nosuid - cgroup2 cgroup2 rw\n`,
    );
    assert.equal(await ownCgroupDir({ self: `${dir}/self` }), `${dir}/cg`);
    assert.equal(await commandCgroup({ self: `${dir}/self` }), undefined);
    assert.deepEqual([...Deno.readDirSync(`${dir}/cg`)], [], "nothing left in it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runner: without a cgroup the process group alone is killed at the time limit", async () => {
  const result = await run(["sh", "-c", "sleep 60 & echo $!; sleep 60"], {
    timeoutMs: 500,
    cgroup: () => Promise.resolve(undefined),
  });
  assert.deepEqual(result.outcome, { kind: "timeout", afterMs: 500 });
  const child = Number(text(result.stdout).trim());
  await retryUntil(async () => !await alive(child), 3000, { what: `pid ${child} to end` });
});

Deno.test("runner: a cgroup the command cannot enter: it does not start, and says why", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await run(["sh", "-c", "echo ran"], {
      cgroup: () =>
        Promise.resolve({
          path: `${dir}/missing`,
          kill: () => Promise.resolve(),
          release: () => Promise.resolve(),
        }),
    });
    assert.equal(text(result.stdout), "");
    assert.match(
      text(result.stderr),
      /^Cannot enter the command's cgroup .*missing\/cgroup.procs: /,
    );
    assert.notEqual(result.outcome.kind === "exited" && result.outcome.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runner: output past the limit is dropped and counted; the pipes are drained", async () => {
  const result = await run(
    ["sh", "-c", "head -c 300000 /dev/zero; head -c 5000 /dev/zero >&2; echo done"],
    { outputLimit: 100_000 },
  );
  assert.deepEqual(result.outcome, { kind: "exited", code: 0 }, "the command was not blocked");
  assert.equal(result.stdout.length + result.stderr.length, 100_000);
  assert.equal(
    result.stdout.length + result.dropped.stdout + result.stderr.length + result.dropped.stderr,
    300_000 + 5000 + 5,
  );
});

Deno.test("runner: a process that keeps the pipes open is let go after the end", async () => {
  const started = Date.now();
  const result = await run(["sh", "-c", "sleep 30 & echo $!"], { afterEndMs: 300 });
  assert.deepEqual(result.outcome, { kind: "exited", code: 0 });
  assert.ok(Date.now() - started < 5000, "not held by the background sleep");
  const pid = Number(text(result.stdout).trim());
  assert.ok(pid > 0);
  Deno.kill(pid, "SIGKILL");
});

Deno.test("runner: aborting kills the command (the daemon stops)", async () => {
  const stop = new AbortController();
  const running = run(["sleep", "30"], { signal: stop.signal });
  setTimeout(() => stop.abort(), 200);
  const result = await running;
  assert.deepEqual(result.outcome, { kind: "signal", signal: "SIGKILL", code: 137 });
});

Deno.test("runner: descriptors the daemon inherited without close-on-exec do not reach the command", async () => {
  // A daemon started with descriptor 7 open (not close-on-exec), as a service manager or a
  // shell may leave one: the runner, run in it, lists the command's descriptors.
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const runner = new URL("../../../lib/exec/runner.ts", import.meta.url).href;
    const clock = new URL("../../../lib/base/clock.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { runCommand } from "${runner}";\nimport { systemClock } from "${clock}";\n` +
        `const r = await runCommand(["sh", "-c", "ls /proc/$$/fd"], { timeoutMs: 10000, clock: systemClock });\n` +
        `console.log(new TextDecoder().decode(r.stdout).split("\\n").filter(Boolean).join(" "));\n`,
    );
    const out = await new Deno.Command("sh", {
      args: ["-c", `exec 7</etc/hostname; exec "$0" run -A "$1"`, Deno.execPath(), script],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.equal(out.code, 0);
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "0 1 2");
  } finally {
    await Deno.remove(script);
  }
});
