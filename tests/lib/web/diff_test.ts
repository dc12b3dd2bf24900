import assert from "node:assert/strict";
import { applyChange, type ChangeEvent, diffViews } from "../../../lib/web/diff.ts";
import type { ClusterView } from "../../../lib/web/model.ts";
import { job, move, node, view } from "./fixtures.ts";

/** The change from `a` to `b`, checked to give `b` back when applied to `a`. */
function roundTrip(a: ClusterView, b: ClusterView): ChangeEvent {
  const change = diffViews(a, b);
  assert.deepEqual(applyChange(a, change), b);
  // What crosses the wire is JSON: the same after a trip through it.
  assert.deepEqual(applyChange(a, JSON.parse(JSON.stringify(change))), b);
  return change;
}

Deno.test("diff: nothing changed is a change of its time alone", () => {
  const a = view();
  assert.deepEqual(roundTrip(a, { ...a, at: a.at + 1000 }), { t: a.at + 1000 });
});

Deno.test("diff: a node's changed fields only, with its id", () => {
  const a = view();
  const b = view({
    at: 51_000,
    nodes: [node(1), node(2, { load: 300, loadPerCpu: 150, util: 80 }), node(3)],
  });
  assert.deepEqual(roundTrip(a, b), {
    t: 51_000,
    nodes: { set: [{ id: 2, load: 300, loadPerCpu: 150, util: 80 }] },
  });
});

Deno.test("diff: a node's flags go whole when one changes; down nodes and new ones", () => {
  const a = view();
  const flags = { stay: false, lstay: false, block: true, quiet: false };
  const b = view({
    nodes: [
      node(1, { flags }),
      node(2, { status: "down", load: 0, loadPerCpu: 0, netIn: null, netOut: null }),
      node(3),
      node(9, { inMap: false }),
    ],
  });
  assert.deepEqual(roundTrip(a, b).nodes, {
    set: [
      { id: 1, flags },
      { id: 2, status: "down", load: 0, loadPerCpu: 0, netIn: null, netOut: null },
      node(9, { inMap: false }),
    ],
  });
});

Deno.test("diff: nodes gone, and the view's own fields", () => {
  const a = view();
  const b = view({ nodes: [node(1)], keyed: false, unread: [2, 3] });
  assert.deepEqual(roundTrip(a, b), {
    t: a.at,
    meta: { keyed: false, unread: [2, 3] },
    nodes: { gone: [2, 3] },
  });
});

Deno.test("diff: jobs new, moved and gone, whole, by key", () => {
  const a = view({ jobs: [job(1, 10), job(1, 11), job(2, 10)] });
  const b = view({ jobs: [job(1, 10, { node: 3, migrations: 1 }), job(2, 10), job(3, 5)] });
  const change = roundTrip(a, b);
  assert.deepEqual(change.jobs, {
    set: [job(1, 10, { node: 3, migrations: 1 }), job(3, 5)],
    gone: ["1:11"],
  });
  assert.equal(change.nodes, undefined);
});

Deno.test("diff: moves added, a move under way that ends, moves that fell off", () => {
  const moving = move(1, 2, { result: "moving", frozenMs: null, totalMs: null });
  const a = view({ moves: [moving, move(1, 1)] });
  const failed = move(1, 2, {
    result: "failed",
    frozenMs: null,
    totalMs: 900,
    step: "restore",
    error: "restore failed on node 2",
  });
  const b = view({ moves: [move(2, 7, { at: 20_000 }), failed] });
  assert.deepEqual(roundTrip(a, b).moves, {
    set: [move(2, 7, { at: 20_000 }), failed],
    gone: ["1:500:1"],
  });
});

Deno.test("diff: applying changes one after another follows a whole run of views", () => {
  // A run of views that changes a little at every step: the page, fed the diffs, stays equal.
  let shown = view();
  let previous = shown;
  for (let step = 1; step <= 50; step++) {
    const next = view({
      at: 50_000 + step * 1000,
      keyed: step < 40,
      unread: step % 7 === 0 ? [3] : [],
      nodes: [node(1, { load: step * 3 }), node(2, { util: step % 5 })]
        .concat(step % 3 ? [node(3, { netIn: step })] : [])
        .concat(step > 20 ? [node(4, { status: step % 4 ? "up" : "down" })] : []),
      jobs: [job(1, 10, { node: 1 + (step % 3), migrations: step })]
        .concat(step % 2 ? [job(2, 20 + step)] : []),
      moves: Array.from({ length: Math.min(step, 5) }, (_, i) => move(1, step - i)),
    });
    shown = applyChange(shown, JSON.parse(JSON.stringify(diffViews(previous, next))));
    assert.deepEqual(shown, next, `step ${step}`);
    previous = next;
  }
});

Deno.test("diff: applyChange keeps the orders: nodes by id, jobs by home then PID, moves newest first", () => {
  const a = view({ nodes: [node(2)], jobs: [job(2, 5)], moves: [move(1, 1)] });
  const after = applyChange(a, {
    t: 60_000,
    nodes: { set: [node(1), node(3)] },
    jobs: { set: [job(1, 9), job(2, 3)] },
    moves: { set: [move(1, 3), move(1, 2, { at: 5 })] },
  });
  assert.deepEqual(after.nodes.map((n) => n.id), [1, 2, 3]);
  assert.deepEqual(after.jobs.map((j) => j.key), ["1:9", "2:3", "2:5"]);
  assert.deepEqual(after.moves.map((m) => m.key), ["1:500:3", "1:500:1", "1:500:2"]);
  assert.equal(after.at, 60_000);
});

Deno.test("diff: applyChange runs from its own source text (as the page runs it)", () => {
  // The page carries applyChange's source: it must need nothing from its module.
  const standalone = new Function(`return (${applyChange.toString()});`)() as typeof applyChange;
  const a = view({ jobs: [job(1, 10)] });
  const b = view({ at: 99, nodes: [node(1, { load: 7 })], jobs: [job(1, 10, { node: 2 })] });
  assert.deepEqual(standalone(a, diffViews(a, b)), b);
});
