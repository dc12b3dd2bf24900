import assert from "node:assert/strict";
import { enterScript, nodeEnv, shellQuote } from "../../../lib/lab/exec.ts";
import { type Lab, type LabNode, labNodeIds } from "../../../lib/lab/record.ts";

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
  // The lab's CRIU, when it has one, is every node's OM_CRIU.
  assert.equal(nodeEnv(lab, 2).OM_CRIU, undefined);
  const withCriu: Lab = { ...lab, record: { ...lab.record, criu: "/opt/criu/bin/criu" } };
  assert.equal(nodeEnv(withCriu, 7).OM_CRIU, "/opt/criu/bin/criu");
});
