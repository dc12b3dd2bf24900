/**
 * `om mon` in a real terminal: tmux runs it in a 100x30 pane of a private tmux server, the test
 * reads the pane, presses keys, changes node files, and checks that q (and Ctrl-C) give the
 * terminal back: alternate screen off, cursor shown, the same stty settings, exit status 0.
 * The one-screen forms, in-process, are tests/commands/mon_test.ts.
 */
import assert from "node:assert/strict";
import { NO_NODES } from "../../lib/views/mon.ts";
import { writeNodeInfo } from "../../lib/state/nodestate.ts";
import { retryUntil } from "../../lib/base/retry.ts";
import { omCommand } from "../../lib/base/selfexec.ts";
import { node, sandbox } from "../tools/monbox.ts";

const decoder = new TextDecoder();

const HAVE_TMUX = await new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

let serial = 0;

/**
 * A private tmux server running one command in a detached session; its socket is in `dir`, so
 * removing the test's directory removes it too.
 */
async function startTmux(dir: string, command: string, size = { columns: 100, rows: 30 }) {
  const socket = `${dir}/tmux.sock`;
  const session = `om-mon-${Deno.pid}-${serial++}`;
  const tmux = async (...args: string[]) => {
    const output = await new Deno.Command("tmux", {
      args: ["-S", socket, "-f", "/dev/null", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(`Cannot run tmux ${args[0]}: ${decoder.decode(output.stderr).trim()}`);
    }
    return decoder.decode(output.stdout);
  };
  await tmux(
    "new-session",
    "-d",
    "-s",
    session,
    "-x",
    String(size.columns),
    "-y",
    String(size.rows),
    command,
  );
  return {
    tmux,
    /** The pane's visible text. */
    pane: () => tmux("capture-pane", "-p", "-t", session),
    keys: (...keys: string[]) => tmux("send-keys", "-t", session, ...keys),
    /** `#{alternate_on} #{cursor_flag}` and other pane formats. */
    resize: (columns: number, rows: number) =>
      tmux("resize-window", "-t", session, "-x", String(columns), "-y", String(rows)),
    display: (format: string) => tmux("display-message", "-p", "-t", session, format),
    kill: async () => {
      await tmux("kill-session", "-t", session).catch(() => {});
      await tmux("kill-server").catch(() => {});
    },
  };
}

/**
 * The shell line run in the pane: records stty settings before and after om mon and its exit
 * status, then says so and stays (so the pane can still be read).
 */
function wrapped(dir: string, args: string[]): string {
  const om = omCommand(["mon", ...args]).map(quote).join(" ");
  return `stty -g > ${quote(`${dir}/before`)}; ${om}; echo $? > ${quote(`${dir}/code`)}; ` +
    `stty -g > ${quote(`${dir}/after`)}; echo OM-MON-EXITED; sleep 600`;
}

/** Waits until the pane shows every one of `needles`; returns the pane. */
function waitForPane(pane: () => Promise<string>, needles: (string | RegExp)[], what: string) {
  return retryUntil(
    async () => {
      const text = await pane();
      return needles.every((n) => typeof n === "string" ? text.includes(n) : n.test(text)) &&
        text;
    },
    15_000,
    { what, intervalMs: 100 },
  );
}

/** Checks that om mon exited 0 and gave the terminal back as it found it. */
async function assertRestored(dir: string, term: Awaited<ReturnType<typeof startTmux>>) {
  const code = await retryUntil(
    () => Deno.readTextFile(`${dir}/code`).then((t) => t.endsWith("\n") && t.trim()),
    10_000,
    { what: "om mon to exit", intervalMs: 100 },
  );
  assert.equal(code, "0");
  const pane = await waitForPane(term.pane, ["OM-MON-EXITED"], "the shell to go on");
  assert.ok(!pane.includes("om mon:"), `the view is left on the screen:\n${pane}`);
  assert.equal((await term.display("#{alternate_on} #{cursor_flag}")).trim(), "0 1");
  assert.equal(
    await Deno.readTextFile(`${dir}/after`),
    await Deno.readTextFile(`${dir}/before`),
    "stty settings differ after om mon",
  );
}

Deno.test({
  name: "mon: draws the bars in a terminal, follows keys and node files, q restores the terminal",
  ignore: !HAVE_TMUX,
  async fn() {
    const box = await sandbox();
    const term = await startTmux(box.dir, wrapped(box.dir, ["--root", box.root]));
    try {
      let pane = await waitForPane(
        term.pane,
        ["om mon: load (1.00 = one yardstick CPU fully busy)", "3 nodes: 2 up, 1 down"],
        "the load view",
      );
      const lines = pane.split("\n");
      assert.match(lines[2], /^1\.50 \| ###$/);
      assert.ok(lines.includes("   0 +--------"), pane);
      assert.ok(lines.includes("         1   2"), pane);
      assert.ok(lines.some((l) => /^ +\| ### ###$/.test(l)), pane);
      assert.ok(pane.includes("l load  s speed  m memory"), pane);
      assert.equal((await term.display("#{alternate_on} #{cursor_flag}")).trim(), "1 0");

      await term.keys("m");
      pane = await waitForPane(term.pane, ["om mon: memory (used #, free +)"], "the memory view");
      assert.match(pane, /^4\.0G \| \+\+\+ \+\+\+$/m);
      assert.match(pane, /^ +\| ### ###$/m);

      await term.keys("l");
      await waitForPane(term.pane, ["om mon: load", /^1\.50 \|/m], "the load view again");
      await writeNodeInfo(box.paths.nodes, node(2, 400));
      pane = await waitForPane(
        term.pane,
        [/^4\.00 \| {5}###$/m],
        "the redraw with node 2 at 4.00",
      );

      await term.keys("d");
      await waitForPane(term.pane, ["         1   2   3", " xxx"], "the down node");
      await term.keys("t");
      pane = await waitForPane(term.pane, [/^om mon: load.*\n\n/], "the count line to go");
      assert.ok(!pane.includes("3 nodes"), pane);

      await term.keys("q");
      await assertRestored(box.dir, term);
    } finally {
      await term.kill();
      await box.cleanup();
    }
  },
});

Deno.test({
  name: "mon: Ctrl-C quits cleanly too; a resized terminal is redrawn to fit; no nodes is said",
  ignore: !HAVE_TMUX,
  async fn() {
    const box = await sandbox({ nodes: false });
    const term = await startTmux(
      box.dir,
      wrapped(box.dir, ["--root", box.root, "--interval", "0.2"]),
    );
    try {
      await waitForPane(term.pane, [NO_NODES], "the no-nodes message");
      await writeNodeInfo(box.paths.nodes, node(1, 100));
      await waitForPane(term.pane, ["1 node: 1 up, 0 down", /^1\.00 \| ###$/m], "node 1");
      await term.resize(40, 10);
      const pane = await waitForPane(
        term.pane,
        [/^l load {2}s speed {2}m memory {2}r raw memory$/m],
        "the smaller screen",
      );
      assert.ok(pane.split("\n").every((l) => l.length <= 40), pane);
      await term.keys("C-c");
      await assertRestored(box.dir, term);
    } finally {
      await term.kill();
      await box.cleanup();
    }
  },
});
