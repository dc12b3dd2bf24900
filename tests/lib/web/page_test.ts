import assert from "node:assert/strict";
import {
  PAGE_STYLE,
  pageHtml,
  pagePolicy,
  scriptJson,
  snapshotHtml,
} from "../../../lib/web/page.ts";
import { PAGE_SCRIPT } from "../../../lib/web/pagescript.ts";
import { job, move, node, view } from "./fixtures.ts";

const HISTORY = { t: [1000, 2000], nodes: { "1": [50, 60], "2": [null, 100] } };

/** The text of the element `<tag ...id="id"...>...</tag>`, or undefined. */
function element(html: string, tag: string, attributes: string): string | undefined {
  const start = html.indexOf(`<${tag}${attributes}>`);
  if (start < 0) return undefined;
  const from = start + `<${tag}${attributes}>`.length;
  return html.slice(from, html.indexOf(`</${tag}>`, from));
}

Deno.test("page: the snapshot holds its data, which reads back as given", async () => {
  const data = {
    view: view({ jobs: [job(1, 10), job(2, 20, { node: 3 })], moves: [move(1, 1)] }),
    history: HISTORY,
  };
  const html = await snapshotHtml(data);
  const inlined = element(html, "script", ' id="om-data" type="application/json"');
  assert.ok(inlined, "the data is inlined");
  assert.deepEqual(JSON.parse(inlined), data);
  assert.match(html, /<title>om cluster, node 1, /);
});

Deno.test("page: the snapshot is self-contained: nothing fetched, nothing connected", async () => {
  const html = await snapshotHtml({ view: view(), history: HISTORY });
  // Nothing loaded from anywhere: no src, href, CSS url() or @import; the one URL is SVG's
  // namespace name, which is never fetched.
  assert.doesNotMatch(html, /\ssrc=|\shref=|url\(|@import/i);
  assert.deepEqual(html.match(/https?:\/\/[^\s"'<>]*/g), ["http://www.w3.org/2000/svg"]);
  // Its own policy forbids any connection, and allows its own script and style only.
  const policy = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];
  assert.equal(policy, await pagePolicy("'none'"));
  assert.match(policy!, /connect-src 'none'/);
  assert.match(policy!, /default-src 'none'/);
});

Deno.test("page: the policy's hashes are those of the inline script and style", async () => {
  const html = pageHtml();
  assert.equal(element(html, "script", ""), PAGE_SCRIPT);
  assert.equal(element(html, "style", ""), PAGE_STYLE);
  const hash = async (text: string) =>
    btoa(String.fromCharCode(
      ...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))),
    ));
  const policy = await pagePolicy("'self'");
  assert.match(
    policy,
    new RegExp(`script-src 'sha256-${(await hash(PAGE_SCRIPT)).replace(/[+/]/g, "\\$&")}'`),
  );
  assert.match(
    policy,
    new RegExp(`style-src 'sha256-${(await hash(PAGE_STYLE)).replace(/[+/]/g, "\\$&")}'`),
  );
  assert.doesNotMatch(html, /id="om-data"/, "the live page carries no data");
});

Deno.test("page: a job's command cannot end the data's script element", async () => {
  const evil = "</script><script>alert(1)</script><!--";
  const html = await snapshotHtml({
    view: view({ jobs: [job(1, 10, { command: evil, user: "<b>" })] }),
    history: HISTORY,
  });
  assert.equal(html.split("</script>").length - 1, 2, "only the page's own two scripts end");
  assert.doesNotMatch(html, /<!--/);
  const inlined = element(html, "script", ' id="om-data" type="application/json"')!;
  assert.equal(JSON.parse(inlined).view.jobs[0].command, evil);
  assert.equal(scriptJson({ a: "<" }), '{"a":"\\u003c"}');
});

Deno.test("page: the script is valid JavaScript, and fills the page with text, never markup", () => {
  // Parses (it is not run here: the browser tests run it in Chromium).
  new Function(PAGE_SCRIPT);
  // What comes from the cluster goes in as text.
  assert.doesNotMatch(PAGE_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  // It follows the stream, closes it when the tab is hidden, and opens it again when shown.
  assert.match(PAGE_SCRIPT, /new EventSource\("\/api\/events"\)/);
  assert.match(PAGE_SCRIPT, /visibilitychange/);
  assert.match(PAGE_SCRIPT, /document\.hidden[\s\S]*close\(\)/);
});

Deno.test("page: the ids and data attributes the browser tests use are there", () => {
  const html = pageHtml();
  for (
    const id of [
      "om-state",
      "om-self",
      "om-time",
      "om-note",
      "om-nodes",
      "om-node-count",
      "om-jobs",
      "om-jobs-empty",
      "om-moves",
      "om-moves-empty",
    ]
  ) {
    assert.match(html, new RegExp(`id="${id}"`), id);
  }
  for (const attribute of ["data-node-id", "data-key"]) {
    assert.ok(PAGE_SCRIPT.includes(`"${attribute}"`), attribute);
  }
  for (
    const field of [
      "status",
      "load",
      "loadPerCpu",
      "util",
      "mem",
      "tmem",
      "flags",
      "pid",
      "home",
      "node",
      "locked",
      "migrations",
      "result",
      "step",
      "by",
      "from",
      "to",
    ]
  ) {
    assert.match(PAGE_SCRIPT, new RegExp(`d\\.${field} = `), field);
  }
  assert.ok(node(1));
});
