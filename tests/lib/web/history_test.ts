import assert from "node:assert/strict";
import { HISTORY_POINTS, LoadHistory } from "../../../lib/web/history.ts";

const loads = (entries: [number, number][]) => new Map(entries);

Deno.test("history: points in order, a node's value or null where it was not known", () => {
  const history = new LoadHistory(5);
  assert.deepEqual(history.view(), { t: [], nodes: {} });
  history.push(1000, loads([[1, 10]]));
  history.push(2000, loads([[1, 20], [2, 5.6]]));
  history.push(3000, loads([[2, 7]]));
  assert.deepEqual(history.view(), {
    t: [1000, 2000, 3000],
    nodes: { "1": [10, 20, null], "2": [null, 6, 7] },
  });
  assert.equal(history.length, 3);
});

Deno.test("history: the ring keeps the last points only", () => {
  const history = new LoadHistory(3);
  for (let i = 1; i <= 7; i++) history.push(i * 1000, loads([[4, i * 10]]));
  assert.deepEqual(history.view(), { t: [5000, 6000, 7000], nodes: { "4": [50, 60, 70] } });
  assert.equal(history.length, 3);
});

Deno.test("history: a node not heard from for a whole ring is forgotten", () => {
  const history = new LoadHistory(3);
  history.push(1, loads([[1, 1], [2, 2]]));
  history.push(2, loads([[1, 1]]));
  history.push(3, loads([[1, 1]]));
  assert.deepEqual(Object.keys(history.view().nodes), ["1", "2"], "still within the ring");
  history.push(4, loads([[1, 1]]));
  assert.deepEqual(Object.keys(history.view().nodes), ["1"]);
});

Deno.test("history: loads are whole, never negative; the default is five minutes of seconds", () => {
  const history = new LoadHistory();
  history.push(1, loads([[1, -5], [2, 1e12]]));
  assert.deepEqual(history.view().nodes, { "1": [0], "2": [0x7fffffff] });
  assert.equal(HISTORY_POINTS, 300);
  assert.throws(() => new LoadHistory(0), RangeError);
});
