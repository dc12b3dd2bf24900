/**
 * lib/migration/imagemounts.ts: the mounts of a real user's job's dump (criu 4.1.1, as this
 * machine's dump of a nobody job held them) against this machine's mountinfo as it was, and forged
 * changes of them, each refused with its reason.
 */
import assert from "node:assert/strict";
import {
  mountsRefusal,
  parseMountinfo,
  plainPath,
  visibleAt,
} from "../../../lib/migration/imagemounts.ts";
import { AUTODETECTED_MOUNT, type MountEntry } from "../../../lib/criu/images.ts";

/** This machine's mountinfo (a nsfs mount of `ip netns add` at /run/netns/lab, and a ro tmpfs). */
const MOUNTINFO = [
  "22 27 0:21 / /proc rw,relatime - proc proc rw",
  "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw",
  "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334760k,mode=755",
  "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k",
  "26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000",
  "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard",
  "28 27 0:25 / /mnt/tools ro,nosuid,nodev,relatime - tmpfs tools ro,size=4k,mode=755",
  "29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000",
  "30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683772k",
  "45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard",
  "46 45 0:4 net:[4026532] /run/netns/lab rw shared:2 - nsfs nsfs rw",
  "47 27 254:0 /home/a\\040b /srv/space rw,nosuid,relatime - ext4 /dev/vda rw,discard",
].join("\n");

const host = parseMountinfo(MOUNTINFO);

/** An external mount of the dump: a copy of the host's at `mountpoint`. */
function external(
  mntId: number,
  mountpoint: string,
  more: Partial<MountEntry> = {},
): MountEntry {
  return {
    fstype: 5,
    mntId,
    rootDev: 1000 + mntId,
    parentMntId: 47,
    flags: 0x200000,
    root: "/",
    mountpoint,
    source: `${mountpoint}/`,
    options: "",
    sharedId: 0,
    masterId: 0,
    withPlugin: false,
    extMount: false,
    internalSharing: false,
    deleted: false,
    sbFlags: 0,
    extKey: AUTODETECTED_MOUNT,
    ...more,
  };
}

/** The mounts of a real dump of a nobody job here (the ids and devices as criu wrote them). */
const REAL: MountEntry[] = [
  external(68, "/proc", {
    fstype: 1,
    rootDev: 40,
    parentMntId: 49,
    flags: 0x20000e,
    source: "proc",
    extKey: undefined,
  }),
  external(67, "/run/netns", {
    fstype: 0,
    rootDev: 266338304,
    root: "/run/netns",
    source: "//run/netns",
  }),
  external(66, "/dev/pts", { fstype: 6, rootDev: 26, parentMntId: 65 }),
  external(65, "/dev/pts", { fstype: 6, rootDev: 24, parentMntId: 62 }),
  external(64, "/dev/shm", { rootDev: 27, parentMntId: 63 }),
  external(63, "/dev/shm", { rootDev: 23, parentMntId: 62 }),
  external(62, "/dev", { fstype: 3, rootDev: 6 }),
  external(50, "/sys", { fstype: 2, rootDev: 22 }),
  external(49, "/proc", { fstype: 1, rootDev: 21 }),
  external(48, "/mnt/tools", { flags: 0x200007, sbFlags: 1 }),
  external(47, "/", {
    fstype: 0,
    rootDev: 266338304,
    parentMntId: 46,
    source: "/dev/vda",
    extKey: undefined,
  }),
];

/** Every path here resolves to itself (no symbolic links), but those a test names. */
const options = (links: Record<string, string> = {}) => ({
  host,
  realPath: (path: string) => links[path] ?? path,
});

/** REAL with `changed` in place of the entry of the same id, and `added` after. */
function forged(changed: MountEntry[], added: MountEntry[] = []): MountEntry[] {
  return [...REAL.map((entry) => changed.find((c) => c.mntId === entry.mntId) ?? entry), ...added];
}

const byId = (id: number) => REAL.find((entry) => entry.mntId === id)!;

Deno.test("imagemounts: mountinfo, plain paths and what a path reaches", () => {
  assert.equal(host.length, 12);
  assert.deepEqual(host[11], {
    id: 47,
    parent: 27,
    dev: "254:0",
    root: "/home/a b",
    mountpoint: "/srv/space",
    options: ["rw", "nosuid", "relatime"],
    fstype: "ext4",
    source: "/dev/vda",
    superOptions: ["rw", "discard"],
  });
  assert.equal(plainPath("//run/netns"), "/run/netns");
  assert.equal(plainPath("/dev/pts/"), "/dev/pts");
  assert.equal(plainPath("/"), "/");
  assert.equal(plainPath("/a/../etc"), undefined);
  assert.equal(plainPath("etc"), undefined);
  // The topmost of two stacked mounts; the root file system's /etc; a bind of a directory.
  assert.deepEqual(visibleAt(host, "/dev/pts"), { mount: host[7], fsPath: "/" });
  assert.deepEqual(visibleAt(host, "/etc/shadow"), { mount: host[5], fsPath: "/etc/shadow" });
  assert.deepEqual(visibleAt(host, "/run/netns"), { mount: host[9], fsPath: "/run/netns" });
  assert.deepEqual(visibleAt(host, "/srv/space/x"), { mount: host[11], fsPath: "/home/a b/x" });
  assert.deepEqual(visibleAt(host, "/"), { mount: host[5], fsPath: "/" });
});

Deno.test("imagemounts: a real dump's mounts pass", () => {
  assert.equal(mountsRefusal(REAL, options()), undefined);
});

Deno.test("imagemounts: mounts a user's job could not have are refused", () => {
  const cases: [MountEntry[], string][] = [
    // The review's C1: a user's file bound over /etc/shadow.
    [
      forged([], [external(90, "/etc/shadow", { source: "/tmp/mine/shadow", parentMntId: 47 })]),
      'hold a mount at "/etc/shadow" of "/", which this node does not have',
    ],
    // A real mount point, bound from somewhere else.
    [
      forged([{ ...byId(64), source: "/tmp/mine/" }]),
      'hold a mount at "/dev/shm" bound from "/tmp/mine/", which is not this node\'s mount there',
    ],
    [
      forged([{ ...byId(62), source: "/dev/shm/" }]),
      'hold a mount at "/dev" bound from "/dev/shm/", which is not this node\'s mount there',
    ],
    // The right mount, reached through a link the user made.
    [
      forged([{ ...byId(64), source: "/tmp/link/" }]),
      'hold a mount at "/dev/shm" bound from "/tmp/link/", which is not a path without ' +
      "symbolic links here",
    ],
    [
      forged([{ ...byId(64), source: "/dev/../tmp/" }]),
      'hold a mount at "/dev/shm" bound from "/dev/../tmp/", which is not a plain absolute path',
    ],
    // Its root not the host's there.
    [
      forged([{ ...byId(67), root: "/etc", source: "//etc" }]),
      'hold a mount at "/run/netns" of "/etc", which this node does not have',
    ],
    // Restrictions dropped.
    [
      forged([{ ...byId(48), flags: 0x200001 }]),
      'hold a mount at "/mnt/tools" without nosuid, nodev, which this node\'s mount there has',
    ],
    [
      forged([{ ...byId(48), flags: 0x200006 }]),
      'hold a mount at "/mnt/tools" without ro, which this node\'s mount there has',
    ],
    // A fresh mount of something that is not the job's /proc.
    [
      forged([], [external(91, "/sys", { fstype: 2, extKey: undefined })]),
      'hold a mount at "/sys" that criu would mount anew (not a copy of one of this node\'s ' +
      "mounts, nor the job's /proc)",
    ],
    [
      forged([{ ...byId(68), rootDev: 21 }]),
      "hold a /proc of the job's own on the device of another mount",
    ],
    [
      forged([{ ...byId(64), extKey: "mnt[/dev/shm]:/tmp/mine" }]),
      'hold a mount at "/dev/shm" with the external key "mnt[/dev/shm]:/tmp/mine", which om ' +
      "does not give",
    ],
    [
      forged([{ ...byId(64), sharedId: 3 }]),
      'hold a mount at "/dev/shm" that is shared or a slave, which a user\'s job cannot make',
    ],
    [
      forged([{ ...byId(64), withPlugin: true }]),
      'hold a mount at "/dev/shm" that criu would restore by a plugin, an old external key or ' +
      "as deleted",
    ],
    [
      forged([{ ...byId(47), root: "/tmp/mine" }]),
      'hold a root mount at "/" of "/tmp/mine", not this node\'s /',
    ],
    [forged([{ ...byId(62), parentMntId: 999 }]), "hold 2 root mounts, not 1"],
    [forged([], [{ ...byId(64) }]), "hold mount 64 twice"],
    [[], "hold a mount namespace with no mounts"],
    [
      forged([{ ...byId(64), mountpoint: "/dev//shm" }]),
      'hold a mount at "/dev//shm", which is not a plain absolute path',
    ],
  ];
  for (const [entries, expected] of cases) {
    assert.equal(mountsRefusal(entries, options({ "/tmp/link": "/dev/shm" })), expected);
  }
});
