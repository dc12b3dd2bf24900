/**
 * lib/migration/imagetasks.ts: this process's own /proc limits and stat read, and the rule on a
 * task's scheduling, limits, OOM score and login uid, with what a real dump of a nobody job holds.
 */
import assert from "node:assert/strict";
import {
  checkTaskCore,
  parseLimits,
  parseNice,
  RLIM_INFINITY,
  RLIMITS,
  type TaskFacts,
} from "../../../lib/migration/imagetasks.ts";
import type { TaskCore } from "../../../lib/criu/images.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max file size             unlimited            unlimited            bytes
Max data size             unlimited            unlimited            bytes
Max stack size            8388608              unlimited            bytes
Max core file size        0                    unlimited            bytes
Max resident set          unlimited            unlimited            bytes
Max processes             96367                96367                processes
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
Max address space         unlimited            unlimited            bytes
Max file locks            unlimited            unlimited            locks
Max pending signals       96367                96367                signals
Max msgqueue size         819200               819200               bytes
Max nice priority         0                    0
Max realtime priority     0                    0
Max realtime timeout      unlimited            unlimited            us
`;

const hard = parseLimits(LIMITS);
const facts: TaskFacts = { hardLimits: hard, nice: 0, oomScoreAdj: 300, loginuid: 0xffffffff };

/** A core as a real dump of a nobody job here held it: its limits the daemon's, soft and hard. */
const REAL: TaskCore = {
  sched: { policy: 0, nice: 0 },
  rlimits: hard.map((max) => ({ cur: max, max })),
  oomScoreAdj: 300,
};

Deno.test("imagetasks: limits and nice of /proc texts, and this process's own", async () => {
  assert.equal(hard.length, RLIMITS.length);
  assert.equal(hard[0], RLIM_INFINITY);
  assert.equal(hard[7], 20000n, "RLIMIT_NOFILE");
  assert.equal(hard[13], 0n, "RLIMIT_NICE");
  assert.throws(() => parseLimits(LIMITS.replace(/^Max open files.*$/m, "")), /"Max open files"/);
  assert.equal(parseNice("12 (a (b) c) S 1 12 12 0 -1 4194560 1 0 0 0 0 0 0 0 20 -5 1 0 9"), -5);
  assert.throws(() => parseNice("12 (x) S"), /nice value/);
  assert.equal(parseLimits(await Deno.readTextFile("/proc/self/limits")).length, 16);
  assert.ok(Number.isInteger(parseNice(await Deno.readTextFile("/proc/self/stat"))));
});

Deno.test("imagetasks: what a real dump holds passes", () => {
  assert.equal(checkTaskCore(REAL, { facts, uid: 65534 }), undefined);
  const normal = [{ policy: 3 }, { policy: 5 }, { policy: 0x40000000 }, { nice: 19 }, {}];
  for (const sched of normal) {
    assert.equal(checkTaskCore({ sched }, { facts, uid: 65534 }), undefined, JSON.stringify(sched));
  }
  // Unset, the user's own, the daemon's login uid.
  for (const loginuid of [0xffffffff, 65534, 7]) {
    assert.equal(
      checkTaskCore({ ...REAL, loginuid }, { facts: { ...facts, loginuid: 7 }, uid: 65534 }),
      undefined,
    );
  }
  // The daemon's own security label, which a job started here has.
  assert.equal(
    checkTaskCore({ ...REAL, lsm: { profile: "om_jobs (enforce)", apparmorData: false } }, {
      facts: { ...facts, lsmProfile: "om_jobs (enforce)" },
      uid: 65534,
    }),
    undefined,
  );
  // A daemon below 0 lets its jobs be as low.
  assert.equal(
    checkTaskCore({ ...REAL, oomScoreAdj: -100, sched: { nice: -5 } }, {
      facts: { ...facts, oomScoreAdj: -100, nice: -5 },
      uid: 65534,
    }),
    undefined,
  );
});

Deno.test("imagetasks: what only a privileged task may set is refused", () => {
  const raised = REAL.rlimits!.map((limit, i) => i === 7 ? { cur: 20000n, max: 1048576n } : limit);
  const cases: [TaskCore, string][] = [
    [
      { ...REAL, sched: { policy: 1, prio: 99 } },
      "of scheduling policy SCHED_FIFO (1), which only a privileged task may set",
    ],
    [
      { ...REAL, sched: { policy: 0x40000002 } },
      "of scheduling policy SCHED_RR (2), which only a privileged task may set",
    ],
    [
      { ...REAL, sched: { policy: 6 } },
      "of scheduling policy SCHED_DEADLINE (6), which only a privileged task may set",
    ],
    [
      { ...REAL, sched: { policy: 4 } },
      "of scheduling policy unknown (4), which only a privileged task may set",
    ],
    [
      { ...REAL, sched: { policy: 0, prio: 1 } },
      "of real-time priority 1, which only a privileged task may set",
    ],
    [
      { ...REAL, sched: { nice: -20 } },
      "of nice value -20, below 0, which only a privileged task may set",
    ],
    [
      { ...REAL, rlimits: raised },
      "whose hard RLIMIT_NOFILE is 1048576, above this node's 20000, which only a privileged " +
      "task may raise",
    ],
    [
      { ...REAL, rlimits: REAL.rlimits!.map((l, i) => i === 14 ? { cur: 99n, max: 99n } : l) },
      "whose hard RLIMIT_RTPRIO is 99, above this node's 0, which only a privileged task may raise",
    ],
    [
      { ...REAL, rlimits: REAL.rlimits!.map((l, i) => i === 7 ? { cur: 30000n, max: 20000n } : l) },
      "whose RLIMIT_NOFILE soft limit 30000 is above its hard limit 20000",
    ],
    [
      { ...REAL, rlimits: [...REAL.rlimits!, { cur: 0n, max: 0n }] },
      "with 17 resource limits, more than the 16 Linux has",
    ],
    [
      { ...REAL, oomScoreAdj: -1000 },
      "with oom_score_adj -1000, below 0, which only a privileged task may set",
    ],
    [
      { ...REAL, lsm: { profile: "unconfined", apparmorData: false } },
      'with the security label "unconfined", not this daemon\'s, which only a privileged task ' +
      "may set",
    ],
    [
      { ...REAL, lsm: { sockcreate: "system_u:object_r:x", apparmorData: false } },
      'with the socket label "system_u:object_r:x", which om does not restore',
    ],
    [
      { ...REAL, lsm: { apparmorData: true } },
      "with AppArmor policy data, which criu would load as root",
    ],
    [
      { ...REAL, loginuid: 0 },
      "with login uid 0, neither unset, nor the user's, nor this daemon's, which only a " +
      "privileged task may set",
    ],
  ];
  for (const [core, expected] of cases) {
    assert.equal(checkTaskCore(core, { facts, uid: 65534 }), expected);
  }
});
