/** lib/criu/jobuser.ts: whom a user's job is dumped as. */
import assert from "node:assert/strict";
import { asJobUser, capabilityNames, parseJobUser } from "../../../lib/criu/jobuser.ts";

Deno.test("criu: a user's job is dumped as its user, with the daemon's capabilities", () => {
  // This machine's root: everything but sys_resource (24); root elsewhere: all 41.
  const caps = capabilityNames("000001fffeffffff");
  assert.equal(caps.length, 40);
  assert.ok(!caps.includes("sys_resource"));
  assert.deepEqual([caps[0], caps[23], caps[24], caps.at(-1)], [
    "chown",
    "sys_nice",
    "sys_time",
    "checkpoint_restore",
  ]);
  assert.deepEqual(capabilityNames("0"), []);
  assert.throws(() => capabilityNames("fffz"), RangeError);
  assert.deepEqual(asJobUser({ uid: 1000, gid: 100, caps: ["sys_ptrace", "checkpoint_restore"] }), [
    "setpriv",
    "--reuid=1000",
    "--regid=100",
    "--clear-groups",
    "--inh-caps=-all,+sys_ptrace,+checkpoint_restore",
    "--ambient-caps=-all,+sys_ptrace,+checkpoint_restore",
    "--",
  ]);
  assert.throws(() => asJobUser({ uid: 0, gid: 0, caps: [] }), RangeError);
  const self = "Name:\tdeno\nCapInh:\t0000000000000000\nCapEff:\t0000010000080000\n";
  const status = (uid: string, gid: string) => `Name:\tsh\nUid:\t${uid}\nGid:\t${gid}\n`;
  assert.deepEqual(parseJobUser(status("1000\t1000\t1000\t1000", "100\t100\t100\t100"), self), {
    uid: 1000,
    gid: 100,
    caps: ["sys_ptrace", "checkpoint_restore"],
  });
  assert.equal(parseJobUser(status("0\t0\t0\t0", "0\t0\t0\t0"), self), undefined);
  assert.throws(
    () => parseJobUser(status("1000\t0\t0\t0", "100\t100\t100\t100"), self),
    /set-user-ID or set-group-ID \(uids 1000 0 0, gids 100 100 100\)/,
  );
  assert.throws(
    () => parseJobUser(status("1000\t1000\t1000\t1000", "100\t5\t100\t100"), self),
    /set-group-ID/,
  );
  assert.throws(() => parseJobUser("Name:\tsh\n", self), /no Uid and Gid lines/);
  assert.throws(
    () => parseJobUser(status("1000\t1000\t1000\t1000", "100\t100\t100\t100"), "Name:\tx\n"),
    /capabilities/,
  );
});
