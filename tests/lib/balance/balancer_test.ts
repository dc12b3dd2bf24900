/**
 * Expel's and bring's sweep (lib/balance/balancer.ts `sweep`) with fake jobs and moves: late arrivals,
 * moves that fail once, moves that always fail, arrivals that never settle.
 */
import assert from "node:assert/strict";
import { sweep } from "../../../lib/balance/balancer.ts";

/** A node's guests, and a move that sends one home (failing while `refusals` says so). */
function node(guests: number[], refusals = new Map<number, number>()) {
  const here = new Set(guests);
  const tries: number[] = [];
  return {
    here,
    tries,
    pending: () => [...here],
    move: (id: number) => {
      tries.push(id);
      const left = refusals.get(id) ?? 0;
      if (left > 0) {
        refusals.set(id, left - 1);
        return Promise.reject(new Error(`Cannot migrate job ${id}: it is being moved already`));
      }
      here.delete(id);
      return Promise.resolve();
    },
  };
}

Deno.test("sweep: every guest goes home, each moved once", async () => {
  const n = node([1, 2, 3]);
  const report = await sweep({ pending: n.pending, move: n.move });
  assert.deepEqual(report, { moved: [1, 2, 3], failed: [] });
  assert.deepEqual(n.tries, [1, 2, 3]);
});

Deno.test("sweep: a job still on its way when the others are gone is waited for and moved", async () => {
  const n = node([1]);
  let arriving = 1;
  // Job 2 lands 200 ms into the sweep (a move here past its admission when expel began).
  const landing = setTimeout(() => {
    n.here.add(2);
    arriving = 0;
  }, 200);
  try {
    const report = await sweep({ pending: n.pending, move: n.move, arriving: () => arriving });
    assert.deepEqual(report, { moved: [1, 2], failed: [] });
    assert.equal(n.here.size, 0, "no guest left");
  } finally {
    clearTimeout(landing);
  }
});

Deno.test("sweep: a move refused once is tried again and succeeds", async () => {
  const n = node([1, 2], new Map([[2, 1]]));
  const report = await sweep({ pending: n.pending, move: n.move, retryMs: 10 });
  assert.deepEqual(report, { moved: [1, 2], failed: [] });
  assert.deepEqual(n.tries, [1, 2, 2]);
});

Deno.test("sweep: a move that always fails is tried 3 times and reported", async () => {
  const n = node([1, 2], new Map([[2, 99]]));
  const report = await sweep({ pending: n.pending, move: n.move, retryMs: 10 });
  assert.deepEqual(report.moved, [1]);
  assert.deepEqual(report.failed, [
    { id: 2, error: "Cannot migrate job 2: it is being moved already" },
  ]);
  assert.deepEqual(n.tries, [1, 2, 2, 2]);
});

Deno.test("sweep: arrivals that never settle end the wait at its limit", async () => {
  const n = node([]);
  const start = Date.now();
  const report = await sweep({
    pending: n.pending,
    move: n.move,
    arriving: () => 1,
    settleMs: 200,
  });
  assert.deepEqual(report, { moved: [], failed: [] });
  const took = Date.now() - start;
  assert.ok(took >= 200 && took < 5000, `waited ${took} ms`);
});
