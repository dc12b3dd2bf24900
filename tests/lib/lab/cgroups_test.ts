import assert from "node:assert/strict";
import { cgroupParent } from "../../../lib/lab/cgroups.ts";

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
