import assert from "node:assert/strict";
import type { ClusterMap } from "../../lib/state/hpcmap.ts";
import type { HostResolver } from "../../lib/views/whois.ts";
import { downInfo, type NodeInfo, writeNodeInfo } from "../../lib/state/nodestate.ts";
import { writeMap } from "../../lib/state/tree.ts";
import { execute, invoke, sandbox as shared } from "../tools/sandbox.ts";
import { run, spec } from "../../commands/mosctl.ts";

const LAUNCHER = new URL("../../om", import.meta.url).pathname;
const GiB = 1024 ** 3;

/** Three HOWTO nodes; this one (2780) also has an alias address. */
const MAP: ClusterMap = {
  gateways: 0,
  entries: [
    { base: 0x0a4e, address: "192.168.10.78", count: 1 },
    { base: 0x0adc, address: "192.168.10.220", count: 1 },
    { base: 0x0a56, address: "192.168.10.86", count: 1 },
    { base: 0x0adc, address: "10.1.0.220", count: 0 },
  ],
};

const SELF: NodeInfo = {
  id: 2780,
  status: "up",
  load: 123,
  speed: 10000,
  cpus: 4,
  mem: 2 * GiB,
  rmem: 3 * GiB,
  tmem: 4 * GiB,
  util: 37,
};
const OTHER: NodeInfo = {
  id: 2638,
  status: "up",
  load: 50,
  speed: 15000,
  cpus: 2,
  mem: 1 * GiB,
  rmem: 1.5 * GiB,
  tmem: 2 * GiB,
  util: 12,
};

/**
 * A fresh state tree and an empty configuration file, removed by `cleanup`. With `kernel`, a fake
 * openMosix /proc: OM_PROC holds hpc/admin/ and hpc/nodes/, so om uses them in place.
 */
async function sandbox(options: { kernel?: boolean } = {}) {
  const box = await shared("mosctl", options);
  const { paths } = box;
  assert.equal(paths.backend, options.kernel ? "kernel" : "userland");
  const admin = async (name: string) => {
    try {
      return await Deno.readTextFile(`${paths.admin}/${name}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  };
  /** The HOWTO map with this node 2780, and figures for 2780 and 2638; 2646 is down. */
  const cluster = async () => {
    await writeMap(paths, 2780, MAP);
    for (const info of [SELF, OTHER, downInfo(2646)]) await writeNodeInfo(paths.nodes, info);
  };
  return { ...box, admin, cluster };
}

/** Runs mosctl in-process as main.ts does, with an injected host-name resolver. */
const mosctl = (argv: string[], env: Record<string, string>, resolver?: HostResolver) =>
  invoke({ spec, run: (parsed, ctx) => run(parsed, ctx, { resolver }) }, argv, env);

const ok = (out = "") => ({ code: 0, out, err: "" });

/** Each on/off verb, the file it writes (as the HOWTO names it) and the value. */
const FLAG_STEPS: readonly [string, string, string][] = [
  ["stay", "stay", "1"],
  ["nostay", "stay", "0"],
  ["stay", "stay", "1"],
  ["-stay", "stay", "0"],
  ["lstay", "lstay", "1"],
  ["nolstay", "lstay", "0"],
  ["lstay", "lstay", "1"],
  ["-lstay", "lstay", "0"],
  ["block", "block", "1"],
  ["noblock", "block", "0"],
  ["block", "block", "1"],
  ["-block", "block", "0"],
  ["quiet", "quiet", "1"],
  ["noquiet", "quiet", "0"],
  ["quiet", "quiet", "1"],
  ["-quiet", "quiet", "0"],
  ["nomfs", "nomfs", "1"],
  ["mfs", "nomfs", "0"],
];

for (const kernel of [false, true]) {
  const where = kernel ? "in a kernel's /proc/hpc/admin" : "in the state tree";
  Deno.test(`every on/off verb writes the HOWTO's file ${where}`, async () => {
    await using box = await sandbox({ kernel });
    for (const [verb, file, value] of FLAG_STEPS) {
      assert.deepEqual(await mosctl([verb], box.env), ok(), verb);
      assert.equal(await box.admin(file), `${value}\n`, verb);
    }
    if (kernel) {
      assert.equal(box.paths.admin, `${box.dir}/proc/hpc/admin`);
      await assert.rejects(Deno.stat(`${box.dir}/root/admin`), Deno.errors.NotFound);
    }
  });

  Deno.test(`expel and bring write the request and what it implies ${where}`, async () => {
    const box = await sandbox({ kernel });
    // The kernel acts on the files; om's state tree needs om discover, which is not running.
    const done = () =>
      kernel ? ok() : {
        code: 1,
        out: "",
        err: `mosctl: Cannot reach om discover at ${box.dir}/root/omdiscd.sock: is it running?\n`,
      };
    try {
      assert.deepEqual(await mosctl(["expel"], box.env), done());
      assert.equal(await box.admin("expel"), "1\n");
      assert.equal(await box.admin("block"), "1\n");
      assert.equal(await box.admin("bring"), undefined);
      assert.deepEqual(await mosctl(["bring"], box.env), done());
      assert.equal(await box.admin("bring"), "1\n");
      assert.equal(await box.admin("lstay"), "1\n");
      // Asking again writes it again.
      assert.deepEqual(await mosctl(["expel"], box.env), done());
    } finally {
      await box.cleanup();
    }
  });

  Deno.test(`setspeed, setdecay and setyard write the HOWTO's files ${where}`, async () => {
    await using box = await sandbox({ kernel });
    assert.deepEqual(await mosctl(["setspeed", "15000"], box.env), ok());
    assert.equal(await box.admin("speed"), "15000\n");
    assert.deepEqual(await mosctl(["setdecay", "3", "980", "900"], box.env), ok());
    assert.equal(await box.admin("decayinterval"), "3\n");
    assert.equal(await box.admin("slowdecay"), "980\n");
    assert.equal(await box.admin("fastdecay"), "900\n");
    assert.deepEqual(await mosctl(["setyard", "PIII-1000"], box.env), ok());
    assert.equal(await box.admin("yardstick"), "PIII-1000 10000\n");
  });
}

Deno.test("a flag already so changes nothing and says so, the original's words included", async () => {
  await using box = await sandbox();
  // An absent file counts as 0: the "no" verbs find it already so and write nothing.
  assert.deepEqual(
    await mosctl(["nostay"], box.env),
    ok("automatic load-balancing already enabled.\n"),
  );
  assert.deepEqual(
    await mosctl(["-lstay"], box.env),
    ok("Local processes already allowed to leave automatically.\n"),
  );
  assert.deepEqual(
    await mosctl(["noblock"], box.env),
    ok("Arrival of guest processes already allowed.\n"),
  );
  assert.deepEqual(
    await mosctl(["-quiet"], box.env),
    ok("Gathering of load-balancing information already running.\n"),
  );
  assert.deepEqual(await mosctl(["mfs"], box.env), ok("MFS already enabled.\n"));
  assert.equal(await box.admin("stay"), undefined);
  assert.equal(await box.admin("lstay"), undefined);

  const again: [string, string][] = [
    ["stay", "automatic load-balancing already disabled.\n"],
    ["lstay", "Local processes already kept from leaving automatically.\n"],
    ["block", "Arrival of guest processes already blocked.\n"],
    ["quiet", "Gathering of load-balancing information already stopped.\n"],
    ["nomfs", "MFS already disabled.\n"],
  ];
  for (const [verb, message] of again) {
    assert.deepEqual(await mosctl([verb], box.env), ok(), verb);
    const before = await Deno.stat(`${box.paths.admin}/${verb === "nomfs" ? "nomfs" : verb}`);
    assert.deepEqual(await mosctl([verb], box.env), ok(message), verb);
    const after = await Deno.stat(`${box.paths.admin}/${verb === "nomfs" ? "nomfs" : verb}`);
    assert.equal(after.ino, before.ino, `${verb} rewrote its file`);
  }
  assert.deepEqual(
    await mosctl(["nostay"], box.env),
    ok(),
  );
  assert.deepEqual(
    await mosctl(["-stay"], box.env),
    ok("automatic load-balancing already enabled.\n"),
  );
});

Deno.test("getload, getmem, getfree, getutil read nodes/<id>/, this node by default", async () => {
  await using box = await sandbox();
  await box.cluster();
  assert.deepEqual(await mosctl(["getload"], box.env), ok("123\n"));
  assert.deepEqual(await mosctl(["getmem"], box.env), ok(`${2 * GiB}\n`));
  assert.deepEqual(await mosctl(["getfree"], box.env), ok(`${3 * GiB}\n`));
  assert.deepEqual(await mosctl(["getutil"], box.env), ok("37\n"));
  assert.deepEqual(await mosctl(["getload", "2638"], box.env), ok("50\n"));
  assert.deepEqual(await mosctl(["getload", "0x0a4e"], box.env), ok("50\n"));
  assert.deepEqual(await mosctl(["getfree", "2638"], box.env), ok(`${1.5 * GiB}\n`));

  assert.deepEqual(await mosctl(["getload", "--json"], box.env), ok('{"id":2780,"load":123}\n'));
  assert.deepEqual(
    await mosctl(["getmem", "2638", "--json"], box.env),
    ok(`{"id":2638,"mem":${GiB}}\n`),
  );
  assert.deepEqual(
    await mosctl(["--json", "getfree", "2638"], box.env),
    ok(`{"id":2638,"rmem":${1.5 * GiB}}\n`),
  );
  assert.deepEqual(await mosctl(["getutil", "--json"], box.env), ok('{"id":2780,"util":37}\n'));
});

Deno.test("a node that is down or unknown is an error, exit 1", async () => {
  await using box = await sandbox();
  await box.cluster();
  assert.deepEqual(await mosctl(["getload", "2646"], box.env), {
    code: 1,
    out: "",
    err: "om mosctl: Cannot read the load of node 2646: it is down\n",
  });
  assert.deepEqual(await mosctl(["getmem", "9"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot read the available memory of node 9: nothing is known about it ` +
      `(no "${box.paths.nodes}/9")\n`,
  });
  assert.equal((await mosctl(["getspeed", "2646"], box.env)).code, 1);
  assert.equal((await mosctl(["getutil", "9"], box.env)).code, 1);
});

Deno.test("isup: yes and exit 0 when up; no and exit 1 when down or unknown", async () => {
  await using box = await sandbox();
  await box.cluster();
  assert.deepEqual(await mosctl(["isup"], box.env), ok("yes\n"));
  assert.deepEqual(await mosctl(["isup", "2638"], box.env), ok("yes\n"));
  assert.deepEqual(await mosctl(["isup", "2646"], box.env), { code: 1, out: "no\n", err: "" });
  assert.deepEqual(await mosctl(["isup", "9"], box.env), { code: 1, out: "no\n", err: "" });
  assert.deepEqual(await mosctl(["isup", "--json"], box.env), ok('{"id":2780,"up":true}\n'));
  assert.deepEqual(await mosctl(["isup", "9", "--json"], box.env), {
    code: 1,
    out: '{"id":9,"up":false}\n',
    err: "",
  });
});

Deno.test("isup: a node the map lists is up before its first figures arrive", async () => {
  await using box = await sandbox();
  await box.cluster();
  // 0x0a43 joined the map; nothing was heard from it yet (no nodes/2627).
  const joined: ClusterMap = {
    gateways: 0,
    entries: [...MAP.entries, { base: 0x0a43, address: "192.168.10.67", count: 1 }],
  };
  await writeMap(box.paths, 2780, joined);
  assert.deepEqual(await mosctl(["isup", "2627"], box.env), ok("yes\n"));
  assert.deepEqual(
    await mosctl(["isup", "2627", "--json"], box.env),
    ok('{"id":2627,"up":true}\n'),
  );
  // Figures that say down win over the map (a quiet node stays in the map); a node in neither
  // is not up.
  assert.deepEqual(await mosctl(["isup", "2646"], box.env), { code: 1, out: "no\n", err: "" });
  assert.deepEqual(await mosctl(["isup", "2628"], box.env), { code: 1, out: "no\n", err: "" });
});

Deno.test("without a map in force, the verbs about this node say why and exit 1", async () => {
  await using box = await sandbox();
  const why = `om mosctl: Cannot tell this node's id: no map in force in ` +
    `"${box.paths.config}" (is om discover running, or setpe -w done?)\n`;
  for (const verb of ["getload", "getmem", "getfree", "getutil", "isup", "whois", "status"]) {
    assert.deepEqual(await mosctl([verb], box.env), { code: 1, out: "", err: why }, verb);
  }
  assert.deepEqual(await mosctl(["whois", "2780"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot find "2780": no map in force in "${box.paths.config}" ` +
      `(is om discover running, or setpe -w done?)\n`,
  });
  // A node named by id needs no map: its files are enough.
  await writeNodeInfo(box.paths.nodes, OTHER);
  assert.deepEqual(await mosctl(["getload", "2638"], box.env), ok("50\n"));

  // After setpe -off the node id is 0: openMosix is off.
  await writeMap(box.paths, 0, { gateways: 0, entries: [] });
  assert.deepEqual(await mosctl(["isup"], box.env), {
    code: 1,
    out: "",
    err: "om mosctl: Cannot tell this node's id: openMosix is off here (node id 0, setpe -off)\n",
  });
});

Deno.test("getspeed: admin/speed as set, else the published speed; ID reads that node", async () => {
  await using box = await sandbox();
  assert.deepEqual(await mosctl(["getspeed"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot read this node's speed: "${box.paths.admin}/speed" is not set ` +
      `(mosctl setspeed N) and no map in force tells this node's id\n`,
  });
  await box.cluster();
  assert.deepEqual(await mosctl(["getspeed"], box.env), ok("10000\n"));
  assert.deepEqual(await mosctl(["getspeed", "2638"], box.env), ok("15000\n"));
  assert.deepEqual(
    await mosctl(["getspeed", "2638", "--json"], box.env),
    ok('{"id":2638,"speed":15000}\n'),
  );
  assert.deepEqual(await mosctl(["setspeed", "25000"], box.env), ok());
  assert.deepEqual(await mosctl(["getspeed"], box.env), ok("25000\n"));
  assert.deepEqual(
    await mosctl(["getspeed", "--json"], box.env),
    ok('{"id":2780,"speed":25000}\n'),
  );
  assert.deepEqual(await mosctl(["setspeed", "1"], box.env), ok());
  assert.deepEqual(await mosctl(["setspeed", "1000000"], box.env), ok());
  assert.deepEqual(await mosctl(["getspeed"], box.env), ok("1000000\n"));
});

Deno.test("getspeed without a map prints the speed set, with a null id in JSON", async () => {
  await using box = await sandbox();
  assert.deepEqual(await mosctl(["setspeed", "8000"], box.env), ok());
  assert.deepEqual(await mosctl(["getspeed"], box.env), ok("8000\n"));
  assert.deepEqual(
    await mosctl(["getspeed", "--json"], box.env),
    ok('{"id":null,"speed":8000}\n'),
  );
});

Deno.test("getdecay: defaults 1 975 926; setdecay sets the interval, or all three", async () => {
  await using box = await sandbox();
  assert.deepEqual(await mosctl(["getdecay"], box.env), ok("1 975 926\n"));
  assert.deepEqual(
    await mosctl(["getdecay", "--json"], box.env),
    ok('{"interval":1,"slow":975,"fast":926}\n'),
  );
  assert.deepEqual(await mosctl(["setdecay", "2"], box.env), ok());
  assert.equal(await box.admin("slowdecay"), undefined);
  assert.deepEqual(await mosctl(["getdecay"], box.env), ok("2 975 926\n"));
  assert.deepEqual(await mosctl(["setdecay", "3", "1000", "0"], box.env), ok());
  assert.deepEqual(await mosctl(["getdecay"], box.env), ok("3 1000 0\n"));
  // What getdecay prints, setdecay takes back.
  const printed = (await mosctl(["getdecay"], box.env)).out.trim().split(" ");
  assert.deepEqual(await mosctl(["setdecay", ...printed], box.env), ok());

  await Deno.writeTextFile(`${box.paths.admin}/slowdecay`, "fast\n");
  assert.deepEqual(await mosctl(["getdecay"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot read "${box.paths.admin}/slowdecay": "fast" is not a number ` +
      `from 0 to 1000\n`,
  });
});

Deno.test("getyard: PIII-1000 10000 by default; setyard from a type, a node or this", async () => {
  await using box = await sandbox();
  assert.deepEqual(await mosctl(["getyard"], box.env), ok("PIII-1000 10000\n"));
  assert.deepEqual(
    await mosctl(["getyard", "--json"], box.env),
    ok('{"yardstick":"PIII-1000","speed":10000}\n'),
  );
  await box.cluster();
  assert.deepEqual(await mosctl(["setyard", "2638"], box.env), ok());
  assert.deepEqual(await mosctl(["getyard"], box.env), ok("node2638 15000\n"));
  assert.deepEqual(await mosctl(["setyard", "this"], box.env), ok());
  assert.deepEqual(await mosctl(["getyard"], box.env), ok("node2780 10000\n"));
  assert.deepEqual(await mosctl(["setyard", "PIII-1000"], box.env), ok());
  assert.deepEqual(await mosctl(["getyard"], box.env), ok("PIII-1000 10000\n"));

  assert.equal((await mosctl(["setyard", "2646"], box.env)).code, 1);
  assert.deepEqual(await mosctl(["setyard", "Z80"], box.env), {
    code: 2,
    out: "",
    err: `om mosctl: Cannot use "Z80" as a yardstick: give a processor type (PIII-1000), ` +
      `a node id or this\nTry 'om mosctl --help'.\n`,
  });
  await Deno.writeTextFile(`${box.paths.admin}/yardstick`, "fast\n");
  assert.deepEqual(await mosctl(["getyard"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot read "${box.paths.admin}/yardstick": expected "NAME SPEED", ` +
      `found "fast"\n`,
  });
});

Deno.test("gettune prints admin/overheads as it is, 0 when there is none", async () => {
  await using box = await sandbox();
  assert.deepEqual(await mosctl(["gettune"], box.env), ok("0\n"));
  assert.deepEqual(
    await mosctl(["gettune", "--json"], box.env),
    ok('{"overheads":"0","tuned":false}\n'),
  );
  await Deno.mkdir(box.paths.admin, { recursive: true });
  await Deno.writeTextFile(`${box.paths.admin}/overheads`, "120 4000 35\n");
  assert.deepEqual(await mosctl(["gettune"], box.env), ok("120 4000 35\n"));
  assert.deepEqual(
    await mosctl(["gettune", "--json"], box.env),
    ok('{"overheads":"120 4000 35","tuned":true}\n'),
  );
});

/** A map with a range and an alias, and a resolver that knows a few names. */
const WHOIS_MAP: ClusterMap = {
  gateways: 0,
  entries: [
    { base: 2780, address: "192.168.10.220", count: 1 },
    { base: 10, address: "10.0.0.10", count: 4 },
    { base: 2780, address: "10.1.0.220", count: 0 },
  ],
};

const RESOLVER: HostResolver = {
  lookup: (host) => {
    const table: Record<string, string[]> = {
      "n12.example": ["10.0.0.12"],
      "alias.example": ["172.16.0.1", "10.1.0.220"],
      "elsewhere.example": ["172.16.0.1"],
    };
    return table[host] ? Promise.resolve(table[host]) : Promise.reject({ code: "ENOTFOUND" });
  },
  reverse: (address) =>
    address === "10.0.0.12"
      ? Promise.resolve(["n12.example", "n12"])
      : Promise.reject(new Error("none")),
};

Deno.test("whois: id to addresses, address or host to id, ranges and aliases", async () => {
  await using box = await sandbox();
  await writeMap(box.paths, 2780, WHOIS_MAP);
  const whois = (...args: string[]) => mosctl(["whois", ...args], box.env, RESOLVER);
  assert.deepEqual(
    await whois(),
    ok("This is om node #2780 (0x0adc) at 192.168.10.220, 10.1.0.220\n"),
  );
  assert.deepEqual(await whois("12"), ok("10.0.0.12 (n12.example)\n"));
  assert.deepEqual(await whois("0x000d"), ok("10.0.0.13\n"));
  assert.deepEqual(await whois("2780"), ok("192.168.10.220\n10.1.0.220\n"));
  assert.deepEqual(await whois("10.0.0.10"), ok("10 (0x000a)\n"));
  assert.deepEqual(await whois("10.1.0.220"), ok("2780 (0x0adc)\n"));
  assert.deepEqual(await whois("n12.example"), ok("12 (0x000c)\n"));
  assert.deepEqual(await whois("alias.example"), ok("2780 (0x0adc)\n"));

  assert.deepEqual(await whois("12", "--json"), {
    code: 0,
    out: JSON.stringify({
      id: 12,
      idHex: "0x000c",
      self: false,
      addresses: [{ address: "10.0.0.12", name: "n12.example" }],
    }) + "\n",
    err: "",
  });
  assert.deepEqual(JSON.parse((await whois("--json")).out), {
    id: 2780,
    idHex: "0x0adc",
    self: true,
    addresses: [
      { address: "192.168.10.220", name: null },
      { address: "10.1.0.220", name: null },
    ],
  });

  assert.deepEqual(await whois("14"), {
    code: 1,
    out: "",
    err: "om mosctl: Cannot find node 14: it is not in the map in force\n",
  });
  assert.deepEqual(await whois("10.0.0.14"), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot find address "10.0.0.14": it is not in the map in force\n`,
  });
  assert.deepEqual(await whois("nowhere.example"), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot resolve host name "nowhere.example": ENOTFOUND\n`,
  });
  assert.deepEqual(await whois("elsewhere.example"), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot find host "elsewhere.example": it resolves to 172.16.0.1, ` +
      `which the map in force does not have\n`,
  });
  assert.equal((await whois("10.0.0")).code, 2);
  assert.equal((await whois("70000")).code, 2);
  assert.equal((await whois("bad/name")).code, 2);
});

Deno.test("whois with the system's resolver: localhost is 127.0.0.1", async () => {
  await using box = await sandbox();
  await writeMap(box.paths, 1, {
    gateways: 0,
    entries: [{ base: 1, address: "127.0.0.1", count: 1 }],
  });
  assert.deepEqual(await mosctl(["whois", "localhost"], box.env), ok("1 (0x0001)\n"));
  const { code, out } = await mosctl(["whois", "1"], box.env);
  assert.equal(code, 0);
  // The name 127.0.0.1 resolves back to depends on the host's /etc/hosts.
  assert.match(out, /^127\.0\.0\.1( \(\S+\))?\n$/);
});

Deno.test("status: this node's flags and figures, and the cluster's", async () => {
  await using box = await sandbox();
  await box.cluster();
  assert.deepEqual(
    await mosctl(["status"], box.env),
    ok(
      "This is om node #2780 (0x0adc) at 192.168.10.220 (also 10.1.0.220)\n" +
        `state:       userland, ${box.dir}/root\n` +
        "flags:       nostay nolstay noblock noquiet mfs\n" +
        "status:      up\n" +
        "speed:       10000\n" +
        "load:        123\n" +
        "cpus:        4\n" +
        "memory:      2.0 GiB available, 3.0 GiB free, 4.0 GiB total\n" +
        "utilisation: 37%\n" +
        "\n" +
        "cluster:     3 nodes in the map, 2 up, 1 down\n" +
        "cpus:        6 on the nodes that are up\n" +
        "memory:      3.0 GiB available of 6.0 GiB on the nodes that are up\n",
    ),
  );
  await mosctl(["stay"], box.env);
  await mosctl(["expel"], box.env);
  const { out } = await mosctl(["status"], box.env);
  assert.match(out, /^flags: {7}stay nolstay block noquiet mfs; expel pending$/m);

  assert.deepEqual(JSON.parse((await mosctl(["status", "--json"], box.env)).out), {
    id: 2780,
    idHex: "0x0adc",
    addresses: ["192.168.10.220", "10.1.0.220"],
    node: {
      status: "up",
      load: 123,
      speed: 10000,
      cpus: 4,
      mem: 2 * GiB,
      rmem: 3 * GiB,
      tmem: 4 * GiB,
      util: 37,
    },
    backend: "userland",
    state: `${box.dir}/root`,
    flags: {
      stay: true,
      lstay: false,
      block: true,
      quiet: false,
      nomfs: false,
      expel: true,
      bring: false,
    },
    cluster: { nodes: 3, up: 2, down: 1, cpus: 6, mem: 3 * GiB, tmem: 6 * GiB },
  });
});

Deno.test("status ID shows another node's figures only", async () => {
  await using box = await sandbox();
  await box.cluster();
  assert.deepEqual(
    await mosctl(["status", "2638"], box.env),
    ok(
      "om node #2638 (0x0a4e) at 192.168.10.78\n" +
        "status:      up\n" +
        "speed:       15000\n" +
        "load:        50\n" +
        "cpus:        2\n" +
        "memory:      1.0 GiB available, 1.5 GiB free, 2.0 GiB total\n" +
        "utilisation: 12%\n",
    ),
  );
  assert.deepEqual(
    await mosctl(["status", "2646"], box.env),
    ok("om node #2646 (0x0a56) at 192.168.10.86\nstatus:      down\n"),
  );
  assert.deepEqual(JSON.parse((await mosctl(["status", "2646", "--json"], box.env)).out), {
    id: 2646,
    idHex: "0x0a56",
    addresses: ["192.168.10.86"],
    node: {
      status: "down",
      load: 0,
      speed: 0,
      cpus: 0,
      mem: 0,
      rmem: 0,
      tmem: 0,
      util: 0,
    },
  });
  assert.equal(
    (await mosctl(["status", "2780"], box.env)).out.split("\n")[0].slice(0, 7),
    "This is",
  );
  assert.deepEqual(await mosctl(["status", "99"], box.env), {
    code: 1,
    out: "",
    err: `om mosctl: Cannot show node 99 (0x0063): it is neither in the map in force nor in ` +
      `"${box.paths.nodes}"\n`,
  });
});

Deno.test("status on a kernel names /proc/hpc and reads its nodes", async () => {
  await using box = await sandbox({ kernel: true });
  await box.cluster();
  assert.equal(box.paths.nodes, `${box.dir}/proc/hpc/nodes`);
  const { code, out } = await mosctl(["status"], box.env);
  assert.equal(code, 0);
  assert.match(out, new RegExp(`^state: {7}kernel, ${box.dir}/proc/hpc$`, "m"));
  assert.match(out, /^load: {8}123$/m);
});

Deno.test("usage mistakes exit 2", async () => {
  await using box = await sandbox();
  const mistakes: [string[], string][] = [
    [[], "Cannot tell what to do: give a command such as status"],
    [["frobnicate"], `Cannot run "frobnicate": no such mosctl command`],
    [["stay", "now"], `Cannot use "now": stay takes no arguments`],
    [["getload", "1", "2"], `Cannot use "2": getload takes fewer arguments`],
    [["setspeed"], "Cannot run setspeed: it needs 1 argument"],
    [["setdecay", "1", "975"], "Cannot run setdecay: it needs 1 or 3 arguments"],
    [["setspeed", "0"], `Cannot use "0" as the speed: not a whole number from 1 to 1000000`],
    [
      ["setspeed", "1000001"],
      `Cannot use "1000001" as the speed: not a whole number from 1 to 1000000`,
    ],
    [
      ["setspeed", "fast"],
      `Cannot use "fast" as the speed: not a whole number from 1 to 1000000`,
    ],
    [["setspeed", "-5"], `Cannot use "-5" as the speed: not a whole number from 1 to 1000000`],
    [
      ["setdecay", "0"],
      `Cannot use "0" as the decay interval (seconds): not a whole number from 1 to 3600`,
    ],
    [
      ["setdecay", "1", "975", "1001"],
      `Cannot use "1001" as the fast decay (per mille): not a whole number from 0 to 1000`,
    ],
    [["getload", "x"], `Cannot use "x" as a node id: not a number`],
    [["isup", "0"], `Cannot use "0" as a node id: not between 1 and 65535`],
    [["getmem", "65536"], `Cannot use "65536" as a node id: not between 1 and 65535`],
    [["stay", "--json"], "Cannot use --json with stay: it prints nothing to read"],
    [["-stay", "block"], "Cannot use -stay and block together: give one command"],
    [["-stay", "-block"], "Cannot use -stay and -block together: give one command"],
    [["-nostay"], "Cannot use -nostay: unknown option"],
  ];
  for (const [argv, message] of mistakes) {
    assert.deepEqual(
      await mosctl(argv, box.env),
      { code: 2, out: "", err: `om mosctl: ${message}\nTry 'om mosctl --help'.\n` },
      argv.join(" "),
    );
  }
  await assert.rejects(Deno.stat(box.paths.admin), Deno.errors.NotFound);
});

Deno.test("the declaration lists every verb of the HOWTO's table", () => {
  const howto = [
    "stay",
    "nostay",
    "lstay",
    "nolstay",
    "block",
    "noblock",
    "quiet",
    "noquiet",
    "nomfs",
    "mfs",
    "expel",
    "bring",
    "gettune",
    "getyard",
    "getdecay",
    "whois",
    "getload",
    "getspeed",
    "status",
    "isup",
    "getmem",
    "getfree",
    "getutil",
    "setyard",
    "setspeed",
    "setdecay",
  ];
  assert.deepEqual(spec.verbs?.map((v) => v.name).sort(), [...howto].sort());
  assert.deepEqual(spec.links, ["mosctl"]);
});

Deno.test("the usage lines name every verb of the table", () => {
  const words = new Set(spec.usage.flatMap((line) => line.split(/[ |]/)));
  for (const verb of spec.verbs ?? []) assert.ok(words.has(verb.name), verb.name);
});

Deno.test("through the launcher and the mosctl link, with the exit codes of main.ts", async () => {
  await using box = await sandbox();
  await Deno.symlink(LAUNCHER, `${box.dir}/mosctl`);
  const run = (command: string, ...args: string[]) =>
    execute(command, args, { ...box.env, OM_ALPHA: "" });
  assert.deepEqual(await run(`${box.dir}/mosctl`, "block"), ok());
  assert.equal(await box.admin("block"), "1\n");
  assert.deepEqual(await run(`${box.dir}/mosctl`, "-block"), ok());
  assert.deepEqual(
    await run(LAUNCHER, "mosctl", "-block"),
    ok("Arrival of guest processes already allowed.\n"),
  );
  assert.deepEqual(await run(LAUNCHER, "mosctl", "isup", "7"), { code: 1, out: "no\n", err: "" });
  const usage = await run(`${box.dir}/mosctl`, "nonsense");
  assert.equal(usage.code, 2);
  assert.equal(
    usage.err,
    `om mosctl: Cannot run "nonsense": no such mosctl command\nTry 'om mosctl --help'.\n`,
  );
});
