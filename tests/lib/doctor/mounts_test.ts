import assert from "node:assert/strict";
import { cgroupV1Controllers, mountOf, parseMountinfo } from "../../../lib/doctor/mounts.ts";

const MOUNTINFO = [
  "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
  "50 27 0:40 / /run rw,nosuid - tmpfs tmpfs rw,mode=755",
  "51 50 0:41 / /run/my\\040dir rw - tmpfs tmpfs rw",
  "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
  "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
  "not a mount line",
].join("\n");

Deno.test("mountOf: the longest mount point above a path, escapes undone", () => {
  const mounts = parseMountinfo(MOUNTINFO);
  assert.equal(mounts.length, 5);
  assert.equal(mountOf(mounts, "/run/om")?.fstype, "tmpfs");
  assert.equal(mountOf(mounts, "/run/om")?.mountpoint, "/run");
  assert.equal(mountOf(mounts, "/run/my dir/x")?.mountpoint, "/run/my dir");
  assert.equal(mountOf(mounts, "/running")?.fstype, "ext4", "a prefix that is not a directory");
  assert.equal(mountOf(mounts, "/")?.fstype, "ext4");
});

Deno.test("cgroupV1Controllers: controllers with a v1 hierarchy, cgroup2 aside", () => {
  const mounts = parseMountinfo(MOUNTINFO);
  assert.deepEqual(cgroupV1Controllers(mounts, ["cpu", "cpuacct", "memory"]), ["cpu", "cpuacct"]);
});
