/** lib/jobs/outputbudget.ts: a user's jobs wait together once their unread output reaches it. */
import assert from "node:assert/strict";
import { OutputBudget } from "../../../lib/jobs/outputbudget.ts";

Deno.test("outputbudget: room below the limit; at it, a wait (counted) until bytes are given back", async () => {
  let waits = 0;
  const budget = new OutputBudget(10, () => waits++);
  budget.take(9);
  await budget.room();
  budget.take(1);
  let free = false;
  const waiting = budget.room().then(() => free = true);
  await Promise.resolve();
  assert.equal(free, false);
  assert.equal(waits, 1);
  budget.give(1);
  await waiting;
  assert.equal(budget.held, 9);
  // Never below nothing, whatever is given back.
  budget.give(100);
  assert.equal(budget.held, 0);
});
