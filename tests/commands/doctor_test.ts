import assert from "node:assert/strict";
import { run, spec } from "../../commands/doctor.ts";
import { newKeyText } from "../../lib/base/key.ts";
import type { NetInterface } from "../../lib/discovery/interfaces.ts";
import { invoke, type Sandbox, sandbox } from "../tools/sandbox.ts";

const ETH9: NetInterface = { name: "eth9", address: "10.9.0.1", netmask: "255.255.255.0" };
const DAEMON = 4242;
/** The group 239.192.79.77 and ports 20301 (UDP) and 20302 (TCP) as /proc/net shows them. */
const UDP_LINE = "  12: 4D4FC0EF:4F4D 00000000:0000 07 00000000:00000000 00:00000000 00000000" +
  "     0        0 5551 2 0000000000000000 0";
const TCP_LINE = "   0: 00000000:4F4E 00000000:0000 0A 00000000:00000000 00:00000000 00000000" +
  "     0        0 5552 1 0000000000000000 100 0 0 10 0";
const NET_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt" +
  "   uid  timeout inode\n";
const ROUTES =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
  "eth9\t00000000\t0100090A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
  "eth9\t0000090A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

/** How the fake node is: each field breaks one thing when set. */
interface Node {
  daemon?: "runs" | "none" | "ended" | "stranger";
  criuVersion?: string;
  criuCheck?: boolean;
  dirtyTracking?: boolean;
  key?: "ok" | "none" | "open" | "garbage";
  route?: boolean;
  tools?: readonly string[];
  tmpfs?: boolean;
  cgroupV1?: boolean;
  /** Another program (pid 777) holds TCP 20302. */
  squatter?: boolean;
}

/** A process of the fake /proc: stat, status, cmdline, environ, and fd links to sockets. */
async function process(
  proc: string,
  pid: number,
  options: { comm: string; state?: string; argv: string[]; env?: string[]; sockets?: number[] },
): Promise<void> {
  const dir = `${proc}/${pid}`;
  await Deno.mkdir(`${dir}/fd`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/stat`,
    `${pid} (${options.comm}) ${
      options.state ?? "S"
    } 1 ${pid} ${pid} 0 -1 0 0 0 0 0 5 5 0 0 20 0 3 0 99\n`,
  );
  await Deno.writeTextFile(`${dir}/status`, "Uid:\t0\t0\t0\t0\n");
  await Deno.writeTextFile(`${dir}/cmdline`, options.argv.map((a) => `${a}\0`).join(""));
  await Deno.writeTextFile(`${dir}/environ`, (options.env ?? []).map((e) => `${e}\0`).join(""));
  // Its cgroup of the unified hierarchy, mounted where a hybrid system has it.
  await Deno.writeTextFile(`${dir}/cgroup`, "0::/system.slice/om.service\n");
  await Deno.writeTextFile(
    `${dir}/mountinfo`,
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
  );
  for (const [i, inode] of (options.sockets ?? []).entries()) {
    await Deno.symlink(`socket:[${inode}]`, `${dir}/fd/${i + 3}`);
  }
}

/** The page cipher's line (and its fix), which depends on this machine's libcrypto. */
const PAGE_CIPHER = /^(?:ok {4}|warn {2})page-cipher {2}.*\n(?: {19}fix: .*\n)?/m;

/** A sandbox with a fake /proc, state tree, key and CRIU as `node` says. */
async function fakeNode(node: Node = {}): Promise<Sandbox & { bin: string; key: string }> {
  const box = await sandbox("doctor");
  const proc = box.env.OM_PROC;
  const root = box.env.OM_ROOT;
  const bin = `${box.dir}/bin`;
  const key = `${box.dir}/cluster.key`;
  await Deno.mkdir(root, { recursive: true });
  await Deno.mkdir(`${proc}/self`, { recursive: true });
  await Deno.mkdir(`${proc}/net`, { recursive: true });
  await Deno.mkdir(`${proc}/sys/vm`, { recursive: true });
  await Deno.mkdir(bin);

  const real = await Deno.realPath(root);
  const mounts = [
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
    ...(node.tmpfs === false
      ? []
      : [`99 27 0:50 / ${real} rw,relatime - tmpfs tmpfs rw,size=1024k`]),
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
    ...(node.cgroupV1 === false
      ? ["41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"]
      : [
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
      ]),
  ];
  await Deno.writeTextFile(`${proc}/self/mountinfo`, mounts.join("\n") + "\n");
  await Deno.writeTextFile(
    `${proc}/net/route`,
    node.route === false ? ROUTES.split("\n")[0] : ROUTES,
  );
  await Deno.writeTextFile(`${proc}/sys/vm/unprivileged_userfaultfd`, "0\n");

  const criu = `${bin}/criu`;
  const version = node.criuVersion ?? "4.1.1";
  await Deno.writeTextFile(
    criu,
    '#!/bin/sh\ncase "$*" in\n' +
      `  "check") ${
        node.criuCheck === false ? 'echo "Error: no vDSO" >&2; exit 1' : 'echo "Looks good."'
      } ;;\n` +
      `  "--version") echo "Version: ${version}" ;;\n` +
      `  "check --feature mem_dirty_track") ${
        node.dirtyTracking === false ? "exit 1" : "exit 0"
      } ;;\n` +
      '  "check --feature uffd") echo "uffd is supported" ;;\n' +
      "  *) exit 9 ;;\nesac\n",
  );
  await Deno.chmod(criu, 0o755);
  for (const tool of node.tools ?? ["perl", "unshare", "setsid"]) {
    await Deno.writeTextFile(`${bin}/${tool}`, "#!/bin/sh\n");
    await Deno.chmod(`${bin}/${tool}`, 0o755);
  }

  const daemon = node.daemon ?? "runs";
  const udp = [UDP_LINE];
  const tcp = [TCP_LINE];
  if (daemon !== "none") await Deno.writeTextFile(`${root}/omdiscd.pid`, `${DAEMON}\n`);
  if (daemon === "runs" || daemon === "ended") {
    await process(proc, DAEMON, {
      comm: "deno",
      state: daemon === "ended" ? "Z" : "S",
      argv: daemon === "ended"
        ? []
        : ["/usr/bin/deno", "run", "-A", "/om/main.ts", "discover", "-n"],
      env: [`OM_CRIU=${criu}`, `PATH=${bin}`],
      sockets: daemon === "runs" && !node.squatter ? [5551, 5552] : [],
    });
  } else if (daemon === "stranger") {
    await process(proc, DAEMON, { comm: "sleep", argv: ["sleep", "600"] });
  }
  if (node.squatter) {
    await process(proc, 777, { comm: "nc", argv: ["nc", "-l", "20302"], sockets: [5552] });
  }
  const holds = (daemon === "runs" && !node.squatter) || node.squatter;
  await Deno.writeTextFile(
    `${proc}/net/udp`,
    NET_HEADER + (holds && !node.squatter ? udp.join("\n") + "\n" : ""),
  );
  await Deno.writeTextFile(`${proc}/net/tcp`, NET_HEADER + (holds ? tcp.join("\n") + "\n" : ""));

  if (node.key !== "none") {
    const text = node.key === "garbage" ? "not a key\n" : newKeyText();
    await Deno.writeTextFile(key, text, { mode: 0o600 });
    if (node.key === "open") await Deno.chmod(key, 0o644);
    await Deno.writeTextFile(box.env.OM_CONFIG, `key = ${key}\n`);
  }
  // Without a daemon, om doctor looks for CRIU and the tools in its own environment.
  box.env.PATH = bin;
  box.env.OM_CRIU = criu;
  return { ...box, bin, key };
}

const doctor = (argv: string[], env: Record<string, string>, uid = 0) =>
  invoke({ spec, run: (parsed, ctx) => run(parsed, ctx, { interfaces: [ETH9], uid }) }, argv, env);

interface JsonCheck {
  name: string;
  status: string;
  found: string;
  fix?: string;
}

/** Runs om doctor --json; returns its exit code and each check by name. */
async function checks(env: Record<string, string>, uid = 0) {
  const { code, out, err } = await doctor(["--json"], env, uid);
  assert.equal(err, "");
  const report = JSON.parse(out) as { ok: boolean; checks: JsonCheck[] };
  assert.equal(report.ok, code === 0);
  return { code, by: Object.fromEntries(report.checks.map((c) => [c.name, c])), report };
}

Deno.test("doctor: a node with everything om needs passes, exit 0", async () => {
  await using box = await fakeNode();
  const { code, out, err } = await doctor([], box.env);
  assert.equal(err, "");
  assert.equal(code, 0, out);
  const criu = `${box.bin}/criu`;
  // The page cipher is this machine's (its libcrypto), not the fake node's: checked on its own.
  assert.match(out, PAGE_CIPHER);
  assert.equal(
    out.replace(PAGE_CIPHER, ""),
    `om doctor: this node (configuration ${box.env.OM_CONFIG}, state tree ${box.env.OM_ROOT})\n` +
      `ok    daemon       om discover runs (pid ${DAEMON})\n` +
      `ok    udp-port     UDP 20301 is held by om discover (pid ${DAEMON})\n` +
      `ok    tcp-port     TCP 20302 is held by om discover (pid ${DAEMON})\n` +
      "ok    multicast    group 239.192.79.77, port 20301, on eth9 (10.9.0.1); route default dev eth9\n" +
      `ok    key          ${box.key}, mode 600\n` +
      `ok    criu         CRIU 4.1.1 at ${criu} (the daemon's OM_CRIU): criu check passes\n` +
      "ok    pre-copy     dirty-memory tracking: a job's memory is copied while it runs\n" +
      "ok    userfaultfd  userfaultfd: criu check --feature uffd passes\n" +
      "ok    tools        perl, unshare and setsid: jobs can start\n" +
      `ok    state-tree   ${box.env.OM_ROOT} is on tmpfs (mounted on ${await Deno.realPath(
        box.env.OM_ROOT,
      )}): ` +
      "a moved job's images stay in memory\n" +
      "ok    cgroups      cgroup v1 cpu, cpuacct and memory: om lab can limit and measure its nodes\n" +
      "ok    exec-cgroup  om exec runs each command in a cgroup of its own below " +
      "/sys/fs/cgroup/unified/system.slice/om.service\n" +
      "nothing essential is missing\n",
  );
});

Deno.test("doctor: the daemon not running, ended, or a stranger's pid fails with how to start it", async () => {
  for (
    const [daemon, found] of [
      ["none", /^om discover is not running \(no .*\/omdiscd\.pid\)$/],
      ["ended", /^om discover is not running \(.*omdiscd\.pid names pid 4242, which ended\)$/],
      ["stranger", /names pid 4242, which is not om discover \(sleep 600\)$/],
    ] as const
  ) {
    await using box = await fakeNode({ daemon });
    const { code, by } = await checks(box.env);
    assert.equal(code, 1, daemon);
    assert.equal(by.daemon.status, "fail");
    assert.match(by.daemon.found, found);
    assert.match(by.daemon.fix!, /^start it: om discover/);
    // Without the daemon, the ports are free and CRIU is looked for in om doctor's environment.
    if (daemon === "none") {
      assert.deepEqual([by["udp-port"].status, by["tcp-port"].found], ["ok", "TCP 20302 is free"]);
      assert.match(by.criu.found, /\(this shell's OM_CRIU\): criu check passes$/);
    }
  }
});

Deno.test("doctor: a port held by another program fails, naming it", async () => {
  await using box = await fakeNode({ daemon: "none", squatter: true });
  const { code, by } = await checks(box.env);
  assert.equal(code, 1);
  assert.deepEqual(by["tcp-port"], {
    name: "tcp-port",
    status: "fail",
    found: "TCP 20302 is held by pid 777 (nc)",
    fix: `stop that program, or give om another port on every node: channel_port = N in ` +
      `${box.env.OM_CONFIG}`,
  });
  assert.equal(by["udp-port"].status, "ok");
});

Deno.test("doctor: the key missing, open to others or not a key file fails", async () => {
  await using none = await fakeNode({ key: "none" });
  const missing = (await checks(none.env)).by.key;
  assert.equal(missing.status, "fail");
  assert.match(missing.found, /^no cluster key: no job moves between nodes/);
  assert.match(missing.fix!, /^om keygen \/etc\/om\/cluster\.key on one node/);

  await using open = await fakeNode({ key: "open" });
  const { code, by } = await checks(open.env);
  assert.equal(code, 1);
  assert.deepEqual(by.key, {
    name: "key",
    status: "fail",
    found: `${open.key} is readable by others (mode 644): om discover refuses it`,
    fix: `chmod 600 ${open.key}`,
  });

  await using garbage = await fakeNode({ key: "garbage" });
  const bad = (await checks(garbage.env)).by.key;
  assert.equal(bad.status, "fail");
  assert.match(bad.found, /not an om key file/);
});

Deno.test("doctor: a CRIU that fails criu check, or is older than 4, fails; no dirty tracking warns", async () => {
  await using failing = await fakeNode({ criuCheck: false });
  const { code, by } = await checks(failing.env);
  assert.equal(code, 1);
  assert.equal(by.criu.status, "fail");
  assert.match(by.criu.found, /^CRIU 4\.1\.1 at .*: criu check fails: Error: no vDSO$/);
  assert.match(by.criu.fix!, /scripts\/install-criu/);
  assert.equal(by["pre-copy"].status, "warn");
  assert.equal(by["pre-copy"].found, "not checked: no working CRIU");
  // userfaultfd is then told from the kernel's sysctl.
  assert.equal(
    by.userfaultfd.found,
    "the kernel has userfaultfd (vm.unprivileged_userfaultfd = 0)",
  );

  await using old = await fakeNode({ criuVersion: "3.17.1" });
  const older = (await checks(old.env)).by.criu;
  assert.equal(older.status, "fail");
  assert.match(older.found, /^CRIU 3\.17\.1 at .*: older than 4\.0, which om needs$/);

  await using noTracking = await fakeNode({ dirtyTracking: false });
  const result = await checks(noTracking.env);
  assert.equal(result.code, 0, "pre-copy is not essential");
  assert.equal(result.by["pre-copy"].status, "warn");
  assert.match(result.by["pre-copy"].found, /^no dirty-memory tracking/);

  await using noCriu = await fakeNode({ daemon: "none" });
  await Deno.remove(`${noCriu.bin}/criu`);
  delete noCriu.env.OM_CRIU;
  const none = (await checks(noCriu.env)).by.criu;
  assert.deepEqual([none.status, none.found], [
    "fail",
    "no CRIU: no OM_CRIU and no criu on this shell's PATH",
  ]);
});

Deno.test("doctor: no route to the group fails; tools missing fails", async () => {
  await using noRoute = await fakeNode({ route: false });
  const { code, by } = await checks(noRoute.env);
  assert.equal(code, 1);
  assert.deepEqual(by.multicast, {
    name: "multicast",
    status: "fail",
    found: "no interface to talk on: no default route, and no interface set",
    fix: `set interface = eth0 in ${noRoute.env.OM_CONFIG} (or om discover -i eth0), or add a ` +
      "default route",
  });
  // An interface set, but still no route to the group.
  await Deno.writeTextFile(noRoute.env.OM_CONFIG, `key = ${noRoute.key}\ninterface = eth9\n`);
  const routeless = (await checks(noRoute.env)).by.multicast;
  assert.equal(
    routeless.found,
    "no route to 239.192.79.77: every send to the group fails (Network is unreachable)",
  );
  assert.equal(
    routeless.fix,
    "add a default route, or a route for multicast: ip route add 224.0.0.0/4 dev eth9",
  );

  await using noTools = await fakeNode({ tools: ["setsid"] });
  const tools = (await checks(noTools.env)).by.tools;
  assert.deepEqual([tools.status, tools.found], [
    "fail",
    "perl, unshare not on the daemon's PATH: om run cannot start jobs",
  ]);
});

Deno.test("doctor: a state tree on disk and no cgroup v1 only warn, exit 0", async () => {
  await using box = await fakeNode({ tmpfs: false, cgroupV1: false });
  const { code, out } = await doctor([], box.env);
  assert.equal(code, 0, out);
  assert.match(
    out,
    /^warn {2}state-tree {3}.* is on ext4 \(mounted on \/\): a moved job's images are written to disk/m,
  );
  assert.match(out, /^ {19}fix: mount a tmpfs on it \(mount -t tmpfs -o mode=755 tmpfs /m);
  assert.match(
    out,
    /^warn {2}cgroups {6}no cgroup v1 cpu, cpuacct, memory hierarchy \(cgroup v2 is mounted\)/m,
  );
  // Two, and the page cipher's on a machine without OpenSSL's libcrypto.
  const warnings = 2 + (/^warn {2}page-cipher/m.test(out) ? 1 : 0);
  assert.match(out, new RegExp(`\\nnothing essential is missing \\(${warnings} warnings\\)\\n$`));
});

Deno.test("doctor: not root, criu check is not run and says so; --json has every check", async () => {
  await using box = await fakeNode();
  const { code, by, report } = await checks(box.env, 1000);
  assert.equal(code, 0);
  assert.deepEqual(by.criu, {
    name: "criu",
    status: "warn",
    found: `${box.bin}/criu (the daemon's OM_CRIU) not checked: criu check needs root`,
    fix: "run om doctor as root",
  });
  assert.deepEqual(report.checks.map((c) => c.name), [
    "daemon",
    "udp-port",
    "tcp-port",
    "multicast",
    "key",
    "criu",
    "pre-copy",
    "userfaultfd",
    "page-cipher",
    "tools",
    "state-tree",
    "cgroups",
    "exec-cgroup",
    "user",
  ]);
  const bad = await doctor(["extra"], box.env);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /Cannot use "extra": doctor takes no arguments/);
});
