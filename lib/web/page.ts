/**
 * The status page: one small HTML document with its style and script inline (pagescript.ts),
 * nothing fetched from elsewhere, built into the om binary as text. Served live by `om discover`
 * (lib/web/server.ts, the script following `/api/events`), or written as one self-contained file
 * by `om status --html` with the data inlined in `#om-data` and no stream.
 *
 * What a browser test can rely on (stable; PROTOCOL.md §14.5 repeats it):
 * - `body[data-mode]`: `live` or `snapshot`; `body[data-updated]`: the time (ms) of the view
 *   shown; `body[data-updates]`: change events applied since the page's last snapshot (it grows
 *   with every update that arrives, without a reload).
 * - `#om-state[data-state]`: `connecting`, `live`, `reconnecting`, `paused` (tab hidden: no
 *   stream), `closed`, or `snapshot`.
 * - `#om-self`: "node N"; `#om-time[data-t]`: the view's time; `#om-note`: what is not shown
 *   (keyless cluster, nodes whose jobs could not be read), hidden when nothing.
 * - Nodes: `#om-nodes tbody tr[data-node-id=ID]`, one per node, by id, with `data-status`
 *   (`up`/`down`), `data-self` (`true`/`false`), `data-load`, `data-load-per-cpu`, `data-util`,
 *   `data-mem`, `data-tmem` (numbers as in /api/nodes), `data-flags` (the flags set, e.g.
 *   `stay block`; empty when none) and `data-jobs` (jobs running there); cells
 *   `td[data-field=...]`: id, address, status, flags, cpus, speed, load (a bar: `.bar > span`,
 *   its width the load per CPU), mem, util, net, jobs, history (an `svg[data-field=history-graph]`
 *   whose `data-points` counts the points drawn). `#om-node-count`: "U of N up".
 * - Jobs: `#om-jobs tbody tr[data-key="HOME:PID"]`, one per job, with `data-pid`, `data-home`,
 *   `data-node` (where it runs now), `data-user`, `data-migrations`, `data-locked` and
 *   `data-ended` (`true`/`false`); cells pid, user, command, home, node, migrations, locked.
 *   `#om-jobs-empty` is shown when there is none.
 * - Moves, newest first: `#om-moves tbody tr[data-key]` with `data-pid`, `data-home`,
 *   `data-from`, `data-to`, `data-by` (user, balancer, expel, bring, placement, node),
 *   `data-result` (`moving`, `ok`, `failed`) and `data-step`; cells at, pid, from, to, by, frozen,
 *   total, result. `#om-moves-empty` is shown when there is none.
 */
import type { ClusterView, HistoryView } from "./model.ts";
import { PAGE_SCRIPT } from "./pagescript.ts";

/** The page's style. */
export const PAGE_STYLE = `
:root { color-scheme: light; --fg: #1d2327; --dim: #646970; --line: #dcdcde; --bar: #2271b1;
  --up: #00a32a; --down: #d63638; }
body { font: 14px/1.4 system-ui, sans-serif; color: var(--fg); margin: 1rem 1.5rem; }
header { display: flex; gap: 1.5rem; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.3rem; margin: 0; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
h2 span, #om-time { color: var(--dim); font-weight: normal; }
#om-state { margin: 0; padding: 0 .5rem; border-radius: 3px; background: #f0f0f1; }
#om-state[data-state="live"] { background: #edfaef; color: #005c12; }
#om-state[data-state="reconnecting"], #om-state[data-state="closed"] { background: #fcf0f1; }
#om-note { background: #fcf9e8; padding: .3rem .6rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: middle; white-space: nowrap; }
th { color: var(--dim); font-weight: 600; font-size: .85rem; white-space: normal; }
td[data-field="command"], td[data-field="result"] { white-space: normal; word-break: break-all; }
td[data-field="status"], td[data-field="net"] { white-space: normal; }
tr[data-status="down"] { color: var(--dim); }
tr[data-status="up"] td[data-field="status"] { color: var(--up); font-weight: 600; }
tr[data-status="down"] td[data-field="status"] { color: var(--down); font-weight: 600; }
tr[data-result="failed"] td[data-field="result"] { color: var(--down); }
.bar { width: 6rem; height: .55rem; background: #f0f0f1; border: 1px solid var(--line); }
.bar > span { display: block; height: 100%; width: 0; background: var(--bar); }
.label { font-size: .8rem; color: var(--dim); }
svg { width: 10rem; height: 1.8rem; background: #f6f7f7; }
polyline { fill: none; stroke: var(--bar); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
p.empty { color: var(--dim); }
`;

/** The body, the same live or as a snapshot. */
const BODY = `<header>
<h1>om cluster, <span id="om-self"></span></h1>
<p id="om-state" data-state="connecting">connecting</p>
<span id="om-time"></span>
</header>
<p id="om-note" hidden></p>
<section>
<h2>Nodes <span id="om-node-count"></span></h2>
<table id="om-nodes">
<thead><tr><th>node</th><th>address</th><th>status</th><th>flags</th><th>CPUs</th><th>speed</th>
<th>load per CPU</th><th>memory available</th><th>utilisation</th><th>network</th><th>jobs</th>
<th>load, last minutes</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section>
<h2>Jobs</h2>
<table id="om-jobs">
<thead><tr><th>PID</th><th>user</th><th>command</th><th>home</th><th>runs on</th><th>moves</th>
<th>locked</th></tr></thead>
<tbody></tbody>
</table>
<p id="om-jobs-empty" class="empty">No jobs.</p>
</section>
<section>
<h2>Recent migrations</h2>
<table id="om-moves">
<thead><tr><th>when</th><th>job</th><th>from</th><th>to</th><th>asked by</th><th>frozen</th>
<th>total</th><th>result</th></tr></thead>
<tbody></tbody>
</table>
<p id="om-moves-empty" class="empty">No migrations yet.</p>
</section>`;

/** What a snapshot carries: the view, the history, and nothing else. */
export interface SnapshotData {
  readonly view: ClusterView;
  readonly history: HistoryView;
}

/** JSON safe inside a `<script>` element: no `<` (so no `</script>` and no `<!--`). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/**
 * The page: live (no `data`: it follows `/api/events`) or a snapshot with `data` inlined. `csp`:
 * a Content-Security-Policy for a `<meta>` element (the snapshot's; the server sends its own as a
 * header).
 */
export function pageHtml(data?: SnapshotData, csp?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${csp ? `<meta http-equiv="Content-Security-Policy" content="${csp}">\n` : ""}<title>om cluster${
    data ? `, node ${data.view.self}, ${new Date(data.view.at).toISOString()}` : ""
  }</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
${BODY}
${
    data
      ? `<script id="om-data" type="application/json">${scriptJson(data)}</script>\n`
      : ""
  }<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/** The SHA-256 of a text, base64, as a CSP source (`'sha256-...'`). */
async function cspHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return `'sha256-${btoa(String.fromCharCode(...new Uint8Array(digest)))}'`;
}

/**
 * The page's Content-Security-Policy: its own inline script and style only (by hash), nothing
 * loaded from anywhere, the event stream from its own origin (`connect`: `'self'` live, `'none'`
 * for a snapshot).
 */
export async function pagePolicy(connect: "'self'" | "'none'"): Promise<string> {
  return [
    "default-src 'none'",
    `script-src ${await cspHash(PAGE_SCRIPT)}`,
    `style-src ${await cspHash(PAGE_STYLE)}`,
    `connect-src ${connect}`,
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

/** The snapshot file of `om status --html`: the page with `data` inlined, no stream. */
export async function snapshotHtml(data: SnapshotData): Promise<string> {
  return pageHtml(data, await pagePolicy("'none'"));
}
