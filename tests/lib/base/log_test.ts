/** lib/base/log.ts: a rendered line holds no control character a value brought. */
import assert from "node:assert/strict";
import { createLogger, logValue, renderMessage } from "../../../lib/base/log.ts";

Deno.test("log: values cannot end the line or reach the terminal", () => {
  assert.equal(logValue("plain\ttab"), "plain\ttab");
  assert.equal(logValue("a\nb\rc"), "a\\nb\\rc");
  assert.equal(logValue("\x1b[31mred\x7f\x00"), "\\x1b[31mred\\x7f\\x00");
  assert.equal(logValue(42), "42");
  const forged = "root\n13:37:00.000 omdiscd: info: exec: FORGED";
  assert.equal(
    renderMessage("exec: {user} asked", { user: forged }),
    "exec: root\\n13:37:00.000 omdiscd: info: exec: FORGED asked",
  );
  assert.equal(renderMessage("{missing} stays", {}), "{missing} stays");
});

Deno.test("log: a logger's line is one line, whatever its values", () => {
  const lines: string[] = [];
  const logger = createLogger((_level, text) => lines.push(text), () => false);
  logger.warn("user {user}", { user: "a\nb" });
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0], /\n./);
  assert.match(lines[0], /user a\\nb/);
});
