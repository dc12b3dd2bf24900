import assert from "node:assert/strict";
import {
  checkLabName,
  checkTopology,
  labAddress,
  parseSize,
  planLab,
} from "../../../lib/lab/plan.ts";

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
