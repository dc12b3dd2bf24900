/**
 * `om mon` (mosmon): a live view of every node's load, speed, memory or utilisation, redrawn in
 * place every second and on each key, in plain ANSI (fine over ssh). lib/views/mon.ts draws the
 * screen; this file reads the nodes, the keys and the terminal, and gives the terminal back as
 * it found it.
 */
import { type CommandSpec, type Parsed, UsageError } from "../lib/cli/parser.ts";
import { loadSettings } from "../lib/cli/config.ts";
import type { Context } from "../lib/cli/context.ts";
import { MODE_KEYS, type MonMode, monScreen } from "../lib/views/mon.ts";
import { listNodeInfo, type NodeInfo } from "../lib/state/nodestate.ts";
import { ROOT_OPTION } from "../lib/cli/stateflags.ts";
import { readMap, resolveStatePaths } from "../lib/state/tree.ts";
import { meta } from "./index.ts";

export const spec: CommandSpec = {
  ...meta("mon"),
  usage: ["om mon [--once] [--interval SECONDS] [--root DIR]"],
  description: `Draws a bar per node, redrawn every second, from the node information om discover
keeps (nodes/<id>/ in om's state tree, or /proc/hpc/nodes on an openMosix kernel). Upright bars
with a scale on the left and the node ids below; when the nodes do not fit across the terminal,
one line per node with its value beside the bar. Keys:
  l  load (the default): 1.00 = one yardstick CPU (1 GHz) fully busy; the scale grows to the
     busiest node
  s  speed: 10000 = one 1 GHz yardstick CPU
  m  memory: used solid (#), free for new work (+)
  r  raw memory: used solid (#), raw free (+)
  u  utilisation: percent of all the node's CPUs
  t  the line counting the nodes, up and down (shown at first)
  d  down nodes too, marked x (hidden at first)
  q  quit (Ctrl-C too); the terminal is left as it was
With --once, or when standard output is not a terminal, prints one screen and stops. Exits 1
with mosmon's words when this node has no cluster map and no node information at all.`,
  options: [
    { name: "once", flags: ["--once"], help: "print one screen to standard output and stop" },
    {
      name: "interval",
      flags: ["--interval"],
      value: "SECONDS",
      help: "redraw every SECONDS (default 1, at least 0.1)",
      complete: "none",
    },
    ROOT_OPTION,
  ],
  examples: [
    { command: "om mon", says: "the live view; press m for memory, q to quit" },
    { command: "mosmon --once", says: "one screen of load bars on standard output" },
    { command: "om mon --interval 5", says: "redraw every five seconds" },
  ],
};

/** mosmon's words when the node is not in a cluster, kept as users know them. */
export const NOT_OPENMOSIX = "mosmon: This is NOT a openMosix system!";

/** The screen size when standard output is not a terminal. */
const PLAIN_SIZE = { columns: 80, rows: 24 } as const;

const ESC = "\x1b";
/** Alternate screen on, cursor hidden. */
const ENTER = `${ESC}[?1049h${ESC}[?25l`;
/** Cursor shown, alternate screen off: the shell's screen comes back as it was. */
const LEAVE = `${ESC}[?25h${ESC}[?1049l`;

function parseInterval(raw: unknown): number {
  if (raw === undefined) return 1000;
  const seconds = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(String(raw)) || seconds < 0.1) {
    throw new UsageError(`Cannot use "${raw}" for --interval: not a number of seconds >= 0.1`);
  }
  return Math.round(seconds * 1000);
}

/** The nodes, or the reason they could not be read (shown on screen instead of crashing). */
async function readNodes(dir: string): Promise<{ nodes: NodeInfo[]; message?: string }> {
  try {
    return { nodes: await listNodeInfo(dir) };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { nodes: [], message: `Cannot read the node information "${dir}": ${why}` };
  }
}

function terminalSize(): { columns: number; rows: number } {
  try {
    return Deno.consoleSize();
  } catch {
    return PLAIN_SIZE;
  }
}

/** Shows the nodes; returns when q is pressed or a signal asks to stop. */
export async function run(parsed: Parsed, ctx: Context): Promise<number> {
  if (parsed.args.length > 0) {
    throw new UsageError(`Cannot use "${parsed.args[0]}": mon takes no arguments`);
  }
  const intervalMs = parseInterval(parsed.options.interval);
  const settings = await loadSettings({ root: parsed.options.root as string | undefined }, ctx.env);
  const paths = resolveStatePaths(settings);
  const first = await readNodes(paths.nodes);
  if (first.nodes.length === 0 && first.message === undefined && !(await readMap(paths))) {
    ctx.err(`${NOT_OPENMOSIX}\n`);
    return 1;
  }
  if (parsed.options.once || !ctx.isTerminal) {
    const size = ctx.isTerminal ? terminalSize() : PLAIN_SIZE;
    const lines = monScreen(first.nodes, {
      mode: "load",
      showTotal: true,
      showDead: false,
      keys: false,
      message: first.message,
      ...size,
    });
    ctx.out(lines.join("\n") + "\n");
    return 0;
  }
  return await live(paths.nodes, intervalMs, ctx);
}

/** What the keys change. */
interface ViewState {
  mode: MonMode;
  showTotal: boolean;
  showDead: boolean;
  quit: boolean;
}

/** Applies one key press; unknown keys change nothing. */
function press(state: ViewState, key: string): void {
  if (key in MODE_KEYS) state.mode = MODE_KEYS[key];
  else if (key === "t") state.showTotal = !state.showTotal;
  else if (key === "d") state.showDead = !state.showDead;
  else if (key === "q" || key === "Q" || key === "\x03") state.quit = true;
}

/**
 * The live view: alternate screen, hidden cursor, keys read one by one (cbreak mode, so Ctrl-C
 * still sends SIGINT), a redraw per tick, key and resize; everything undone on the way out.
 */
async function live(nodesDir: string, intervalMs: number, ctx: Context): Promise<number> {
  const state: ViewState = { mode: "load", showTotal: true, showDead: false, quit: false };
  const pending: string[] = [];
  let wake = () => {};
  const stop = () => {
    state.quit = true;
    wake();
  };
  const redraw = () => wake();
  const signals = [["SIGINT", stop], ["SIGTERM", stop], ["SIGHUP", stop], [
    "SIGWINCH",
    redraw,
  ]] as const;
  const keyboard = Deno.stdin.isTerminal();
  if (keyboard) Deno.stdin.setRaw(true, { cbreak: true });
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  const reader = keyboard ? ctx.stdin.getReader() : undefined;
  if (reader) {
    (async () => {
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const chunk = decoder.decode(value);
        // An escape sequence (arrows, function keys) arrives in one chunk and means nothing here.
        if (!chunk.startsWith(ESC)) pending.push(...chunk);
        wake();
      }
    })().catch(() => {});
  }
  ctx.out(ENTER);
  try {
    while (!state.quit) {
      while (pending.length > 0 && !state.quit) press(state, pending.shift()!);
      if (state.quit) break;
      const { nodes, message } = await readNodes(nodesDir);
      const lines = monScreen(nodes, { ...state, keys: true, message, ...terminalSize() });
      ctx.out(`${ESC}[H${lines.map((l) => `${l}${ESC}[K`).join("\r\n")}${ESC}[J`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (pending.length > 0 || state.quit) wake();
      });
    }
  } finally {
    ctx.out(LEAVE);
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    if (keyboard) Deno.stdin.setRaw(false);
    reader?.cancel().catch(() => {});
  }
  return 0;
}
