/**
 * lib/migration/jobowner.ts: the job's user as it travels, read on the source from the job's PID 1
 * and looked up by name on the target, in this machine's user database (root and nobody are in
 * every one).
 */
import assert from "node:assert/strict";
import {
  groupsOf,
  isJobOwner,
  jobOwner,
  ownerRefusal,
  sameOwner,
  userNamed,
} from "../../../lib/migration/jobowner.ts";
import { tempDir } from "../../tools/tempdir.ts";
import { NOBODY, ROOT } from "./targetnode.ts";

Deno.test("jobowner: a user on the wire is a name the name service takes, and two ids", () => {
  for (
    const owner of [ROOT, NOBODY, { name: "_apt", uid: 42, gid: 65534 }, {
      name: "pc$",
      uid: 1,
      gid: 1,
    }]
  ) {
    assert.ok(isJobOwner(owner), JSON.stringify(owner));
  }
  for (
    const owner of [
      { name: "-root", uid: 0, gid: 0 }, // an option to getent and id
      { name: "1000", uid: 1000, gid: 1000 }, // a uid to the name service
      { name: "a b", uid: 1, gid: 1 },
      { name: "x".repeat(33), uid: 1, gid: 1 },
      { name: "root", uid: -1, gid: 0 },
      { name: "root", uid: 0xffffffff, gid: 0 },
      { name: "root", uid: 0, gid: 0.5 },
      { name: "root", uid: "0", gid: 0 },
      { uid: 0, gid: 0 },
      null,
      "root",
    ]
  ) {
    assert.equal(isJobOwner(owner), false, JSON.stringify(owner));
  }
  assert.ok(sameOwner(NOBODY, { ...NOBODY }));
  assert.ok(!sameOwner(NOBODY, { ...NOBODY, gid: 100 }));
});

Deno.test("jobowner: a node takes a job of a user it has with the same uid", () => {
  const here = { name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent" };
  assert.equal(ownerRefusal(NOBODY, { here, nodeId: 2 }), undefined);
  assert.equal(
    ownerRefusal({ ...NOBODY, uid: 1000 }, { here, nodeId: 2 }),
    "user nobody is uid 65534 here, not 1000",
  );
  assert.equal(ownerRefusal(NOBODY, { here: undefined, nodeId: 2 }), "node 2 has no user nobody");
  // The group is the user's own here, never one the request names (disk, shadow...).
  assert.equal(
    ownerRefusal({ ...NOBODY, gid: 6 }, { here, nodeId: 2 }),
    `user nobody's group is gid ${here.gid} here, not 6`,
  );
});

Deno.test("jobowner: users and their groups by name, in this machine's name service", async () => {
  assert.equal((await userNamed("root"))?.uid, 0);
  assert.equal((await userNamed("nobody"))?.uid, 65534);
  assert.equal(await userNamed("om-no-such-user"), undefined);
  assert.equal(await userNamed("0"), undefined, "never looked up as a uid");
  assert.equal(await userNamed("-s"), undefined);
  assert.ok((await groupsOf("nobody")).has(65534));
  assert.deepEqual([...(await groupsOf("om-no-such-user"))], []);
});

Deno.test("jobowner: the source names the user of the job's PID 1", async () => {
  // This test runs as root; a process started as nobody is nobody's.
  assert.deepEqual(await jobOwner(Deno.pid), ROOT);
  const child = new Deno.Command("setpriv", {
    args: ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sleep", "30"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(await jobOwner(child.pid), NOBODY);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
  // A uid without a name here: the target could not tell whether it is the same user.
  await using tmp = await tempDir("jobowner");
  await Deno.mkdir(`${tmp.path}/7`);
  await Deno.writeTextFile(
    `${tmp.path}/7/status`,
    "Name:\tsh\nUid:\t4242424\t4242424\t4242424\t4242424\nGid:\t7\t7\t7\t7\n",
  );
  await assert.rejects(
    jobOwner(7, tmp.path),
    new Error("Cannot name the job's user: uid 4242424 has no name on this node"),
  );
});
