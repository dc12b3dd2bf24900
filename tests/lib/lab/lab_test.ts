import assert from "node:assert/strict";
import {
  cgroupParent,
  checkLabName,
  checkTopology,
  enterScript,
  type Lab,
  labAddress,
  type LabNode,
  labNodeIds,
  mapNodeIds,
  nodeEnv,
  parseSize,
  planLab,
  shellQuote,
} from "../../../lib/lab/lab.ts";

Deno.test("labAddress puts network and node in the last two octets", () => {
  assert.equal(labAddress(0, 1), "10.77.0.1");
  assert.equal(labAddress(3, 250), "10.77.3.250");
});

Deno.test("planLab on one network: node I at 10.77.0.I, no extra flags", () => {
  const plan = planLab(3);
  assert.deepEqual(plan, [
    { index: 1, nics: [{ net: 0, address: "10.77.0.1" }] },
    { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
    { index: 3, nics: [{ net: 0, address: "10.77.0.3" }] },
  ]);
});

Deno.test("planLab over three networks: round robin, node 1 on all and relaying", () => {
  const plan = planLab(7, { nets: 3 });
  assert.deepEqual(plan[0], {
    index: 1,
    nics: [
      { net: 0, address: "10.77.0.1" },
      { net: 1, address: "10.77.1.1" },
      { net: 2, address: "10.77.2.1" },
    ],
    discoverArgs: ["-i", "eth0,eth1,eth2"],
  });
  assert.deepEqual(
    plan.slice(1).map((n) => n.nics.map((nic) => nic.address)),
    [["10.77.1.2"], ["10.77.2.3"], ["10.77.0.4"], ["10.77.1.5"], ["10.77.2.6"], ["10.77.0.7"]],
  );
  checkTopology(plan);
});

Deno.test("planLab rejects sizes out of range", () => {
  assert.throws(() => planLab(0), RangeError);
  assert.throws(() => planLab(251), RangeError);
  assert.throws(() => planLab(2.5), RangeError);
  assert.throws(() => planLab(2, { nets: 3 }), /from 1 to 2/);
  assert.throws(() => planLab(40, { nets: 17 }), RangeError);
  assert.equal(planLab(250).length, 250);
});

Deno.test("checkTopology accepts a two-interface node on chosen networks", () => {
  checkTopology([
    { index: 1, nics: [{ net: 0, address: "10.77.0.1" }, { net: 1, address: "10.77.1.1" }] },
    { index: 2, nics: [{ net: 0, address: "10.77.0.2" }] },
    { index: 3, nics: [{ net: 1, address: "10.77.1.3", prefix: 16 }] },
  ]);
});

Deno.test("checkTopology rejects broken topologies", () => {
  const nic = (net: number, address: string) => ({ net, address });
  assert.throws(() => checkTopology([]), RangeError);
  assert.throws(() => checkTopology([{ index: 0, nics: [nic(0, "10.0.0.1")] }]), RangeError);
  assert.throws(
    () =>
      checkTopology([
        { index: 1, nics: [nic(0, "10.0.0.1")] },
        { index: 1, nics: [nic(0, "10.0.0.2")] },
      ]),
    /twice/,
  );
  assert.throws(() => checkTopology([{ index: 1, nics: [] }]), RangeError);
  assert.throws(
    () => checkTopology([{ index: 1, nics: [nic(0, "10.0.0.1"), nic(0, "10.0.1.1")] }]),
    /network 0 twice/,
  );
  assert.throws(() => checkTopology([{ index: 1, nics: [nic(16, "10.0.0.1")] }]), RangeError);
  assert.throws(() => checkTopology([{ index: 1, nics: [nic(0, "10.0.0")] }]), SyntaxError);
  assert.throws(
    () => checkTopology([{ index: 1, nics: [{ net: 0, address: "10.0.0.1", prefix: 31 }] }]),
    RangeError,
  );
  assert.throws(
    () =>
      checkTopology([
        { index: 1, nics: [nic(0, "10.0.0.1")] },
        { index: 2, nics: [nic(0, "10.0.0.1")] },
      ]),
    /10\.0\.0\.1 twice/,
  );
});

Deno.test("checkLabName allows short plain names only", () => {
  for (const good of ["omlab", "t-1", "lab_2.x", "A", "x".repeat(32)]) {
    assert.equal(checkLabName(good), good);
  }
  for (const bad of ["", "-x", ".x", "a/b", "a b", "x".repeat(33), "a;rm"]) {
    assert.throws(() => checkLabName(bad), TypeError, bad);
  }
});

Deno.test("parseSize reads bytes and K/M/G/T in powers of 1024", () => {
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("512M"), 512 * 1024 ** 2);
  assert.equal(parseSize("2G"), 2 * 1024 ** 3);
  assert.equal(parseSize("1.5g"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("64KiB"), 64 * 1024);
  assert.equal(parseSize("1T"), 1024 ** 4);
  assert.throws(() => parseSize("lots"), SyntaxError);
  assert.throws(() => parseSize("-1M"), SyntaxError);
  assert.throws(() => parseSize("1"), RangeError);
});

Deno.test("mapNodeIds expands ranges and leaves aliases out", () => {
  assert.deepEqual(
    mapNodeIds({
      gateways: 0,
      entries: [
        { base: 5, address: "10.0.0.5", count: 1 },
        { base: 1, address: "10.0.0.1", count: 3 },
        { base: 300, address: "10.0.1.44", count: 0 },
        { base: 2, address: "10.0.0.2", count: 1 },
      ],
    }),
    [1, 2, 3, 5],
  );
});

const MOUNTINFO = `22 1 0:21 / /proc rw - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`;
const SELF = `4:memory:/process_api/7f
1:cpu,cpuacct:/
0::/
`;

Deno.test("cgroupParent: the group this process is in, below the hierarchy's mount", () => {
  assert.equal(cgroupParent("cpu", MOUNTINFO, SELF), "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(cgroupParent("cpuacct", MOUNTINFO, SELF), "/sys/fs/cgroup/cpu,cpuacct");
  assert.equal(cgroupParent("memory", MOUNTINFO, SELF), "/sys/fs/cgroup/memory/process_api/7f");
});

Deno.test("cgroupParent: relative to a mount of a subtree, undefined when not mounted", () => {
  const onlyV2 = "37 31 0:34 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
  assert.equal(cgroupParent("memory", onlyV2, "0::/user.slice\n"), undefined);
  // A hierarchy mounted from a subtree (as in a container), at a path with a space.
  const subtree = "35 31 0:32 /box /mnt/mem\\040cg rw - cgroup cgroup rw,memory\n";
  assert.equal(cgroupParent("memory", subtree, "4:memory:/box/inner\n"), "/mnt/mem cg/inner");
});

Deno.test("shellQuote leaves plain words and quotes the rest", () => {
  assert.equal(shellQuote("/sys/fs/cgroup/cpu/x"), "/sys/fs/cgroup/cpu/x");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
});

const NODE: LabNode = {
  index: 2,
  namespace: "t-2",
  nics: [{ name: "eth0", net: 0, address: "10.77.0.2", prefix: 24, port: "n2e0" }],
  dir: "/tmp/my labs/t/node2",
  root: "/tmp/my labs/t/node2/root",
  config: "/tmp/my labs/t/node2/om.conf",
  cgroups: {
    cpu: "/sys/fs/cgroup/cpu,cpuacct/t/node2",
    cpuacct: "/sys/fs/cgroup/cpu,cpuacct/t/node2",
    memory: "/sys/fs/cgroup/memory/t/node2",
  },
  discoverArgs: [],
};

Deno.test("enterScript joins each cgroup once, then enters the namespace only", () => {
  assert.equal(
    enterScript(NODE),
    [
      "echo $$ >/sys/fs/cgroup/cpu,cpuacct/t/node2/cgroup.procs || exit 125",
      "echo $$ >/sys/fs/cgroup/memory/t/node2/cgroup.procs || exit 125",
      'exec nsenter --net=/run/netns/t-2 -- "$@"',
    ].join("\n"),
  );
  assert.match(
    enterScript(NODE, { log: "/tmp/my labs/t/node2/discover.log" }),
    /^exec >>'\/tmp\/my labs\/t\/node2\/discover.log' 2>&1 <\/dev\/null\n/,
  );
});

Deno.test("nodeEnv and labNodeIds come from the record", () => {
  const lab: Lab = {
    record: {
      version: 1,
      name: "t",
      dir: "/tmp/my labs/t",
      created: "2025-01-01T00:00:00.000Z",
      switchNamespace: "t-sw",
      networks: [{ net: 0, bridge: "br0" }],
      nodes: [
        NODE,
        { ...NODE, index: 7, nics: [{ ...NODE.nics[0], address: "10.77.1.7" }], cgroups: {} },
      ],
      made: [],
    },
    children: new Map(),
  };
  assert.deepEqual(nodeEnv(lab, 2), {
    OM_ROOT: "/tmp/my labs/t/node2/root",
    OM_CONFIG: "/tmp/my labs/t/node2/om.conf",
    OM_LAB: "t",
    OM_LAB_NODE: "2",
    OM_CGROUP_CPU: "/sys/fs/cgroup/cpu,cpuacct/t/node2",
    OM_CGROUP_CPUACCT: "/sys/fs/cgroup/cpu,cpuacct/t/node2",
    OM_CGROUP_MEMORY: "/sys/fs/cgroup/memory/t/node2",
  });
  assert.equal(nodeEnv(lab, 7).OM_CGROUP_CPU, undefined);
  assert.deepEqual(labNodeIds(lab), [2, 0x0107]);
  assert.throws(() => nodeEnv(lab, 3), /nodes 2, 7/);
});
