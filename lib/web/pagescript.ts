/**
 * The status page's script (lib/web/page.ts puts it into the page, inline): it renders a
 * ClusterView into the page's tables, in place (rows keyed by node id, job and move, updated, added
 * and removed, never rebuilt), follows `/api/events` (PROTOCOL.md §14.3) with the very
 * `applyChange` the server's differ is tested against (lib/web/diff.ts), draws each node's load
 * history, and closes its stream while the tab is hidden (Page Visibility API), opening it again,
 * with a fresh snapshot, when the tab is shown. A snapshot file (`om status --html`) carries its
 * data in `#om-data` and opens no stream.
 *
 * Plain browser JavaScript, written for any browser of the last years: no build step, no library,
 * nothing fetched but the page's own `/api/events`.
 */
import { applyChange } from "./diff.ts";
import { HISTORY_POINTS } from "./history.ts";

/** The script, as the page carries it. */
export const PAGE_SCRIPT = `"use strict";
(function () {
  var HISTORY_POINTS = ${HISTORY_POINTS};
  ${applyChange.toString()}
  var view = null;
  var hist = { t: [], nodes: {} };
  var source = null;
  var updates = 0;
  var SVG = "http://www.w3.org/2000/svg";

  function $(id) { return document.getElementById(id); }
  function setState(state, text) {
    var el = $("om-state");
    el.dataset.state = state;
    el.textContent = text;
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
    // A no-break space: a figure never wraps away from its unit.
    return (u === 0 ? String(Math.round(n)) : n.toFixed(1)) + "\\u00a0" + units[u];
  }
  function rate(n) { return n === null || n === undefined ? "-" : bytes(n) + "/s"; }
  function clock(t) { return new Date(t).toLocaleTimeString(); }
  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }
  function field(row, name) { return row.querySelector('[data-field="' + name + '"]'); }
  function bar(cell, percent, label) {
    var b = cell.querySelector(".bar") || cell.appendChild(el("div", "bar"));
    var fill = b.firstChild || b.appendChild(el("span"));
    var text = cell.querySelector(".label") || cell.appendChild(el("div", "label"));
    fill.style.width = Math.max(0, Math.min(100, percent)) + "%";
    text.textContent = label;
  }
  // Rows keyed by a data attribute, in the order of items, updated in place.
  function sync(tbody, attr, items, keyOf, make, update) {
    var old = {};
    for (var i = 0; i < tbody.rows.length; i++) old[tbody.rows[i].getAttribute(attr)] = tbody.rows[i];
    var keep = {};
    items.forEach(function (item, index) {
      var key = String(keyOf(item));
      var row = old[key];
      if (!row) { row = make(item); row.setAttribute(attr, key); }
      keep[key] = true;
      update(row, item);
      if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] || null);
    });
    Object.keys(old).forEach(function (key) { if (!keep[key]) old[key].remove(); });
  }
  function cells(names) {
    var row = el("tr");
    names.forEach(function (name) {
      var td = row.appendChild(el("td"));
      td.dataset.field = name;
    });
    return row;
  }
  function flagWords(flags) {
    if (!flags) return "";
    return ["stay", "lstay", "block", "quiet"].filter(function (f) { return flags[f]; }).join(" ");
  }
  function drawHistory(svg, id, cpus) {
    var values = hist.nodes[id] || [];
    var top = 100;
    values.forEach(function (v) { if (v !== null && cpus > 0 && v / cpus > top) top = v / cpus; });
    var points = [];
    values.forEach(function (v, i) {
      if (v === null) return;
      var x = HISTORY_POINTS - values.length + i;
      var y = 29 - 27 * (cpus > 0 ? v / cpus : 0) / top;
      points.push(x + "," + y.toFixed(1));
    });
    var line = svg.firstChild || svg.appendChild(document.createElementNS(SVG, "polyline"));
    line.setAttribute("points", points.join(" "));
    svg.dataset.points = String(points.length);
  }

  function renderNodes() {
    var top = 100;
    view.nodes.forEach(function (n) { if (n.loadPerCpu > top) top = n.loadPerCpu; });
    sync($("om-nodes").tBodies[0], "data-node-id", view.nodes, function (n) { return n.id; },
      function () {
        var row = cells(["id", "address", "status", "flags", "cpus", "speed", "load", "mem", "util",
          "net", "jobs", "history"]);
        var svg = document.createElementNS(SVG, "svg");
        svg.setAttribute("viewBox", "0 0 " + HISTORY_POINTS + " 30");
        svg.setAttribute("preserveAspectRatio", "none");
        svg.dataset.field = "history-graph";
        field(row, "history").appendChild(svg);
        return row;
      },
      function (row, n) {
        var d = row.dataset;
        d.status = n.status;
        d.self = String(n.self);
        d.load = String(n.load);
        d.loadPerCpu = String(n.loadPerCpu);
        d.util = String(n.util);
        d.mem = String(n.mem);
        d.tmem = String(n.tmem);
        // A node that is down has no flags to show: its last known ones are stale.
        var flags = n.status === "up" ? n.flags : {};
        d.flags = flagWords(flags);
        d.jobs = String(n.jobs);
        field(row, "id").textContent = String(n.id) + (n.self ? " (this node)" : "");
        field(row, "address").textContent = n.address;
        field(row, "status").textContent = n.status + (n.inMap ? "" : ", not in the map");
        field(row, "flags").textContent = flags === null ? "?" : (flagWords(flags) || "-");
        field(row, "cpus").textContent = n.status === "up" ? String(n.cpus) : "-";
        field(row, "speed").textContent = n.status === "up" ? String(n.speed) : "-";
        bar(field(row, "load"), 100 * n.loadPerCpu / top, String(n.loadPerCpu) + " (load " + n.load + ")");
        // The bar is what its header says: the memory available, of the total.
        bar(field(row, "mem"), n.tmem > 0 ? 100 * n.mem / n.tmem : 0,
          n.tmem > 0 ? bytes(n.mem) + " of " + bytes(n.tmem) : "-");
        bar(field(row, "util"), n.util, n.util + "%");
        field(row, "net").textContent = rate(n.netIn) + "\\u00a0in, " + rate(n.netOut) + "\\u00a0out";
        field(row, "jobs").textContent = String(n.jobs);
        drawHistory(field(row, "history-graph"), n.id, n.cpus);
      });
    $("om-node-count").textContent = view.nodes.filter(function (n) { return n.status === "up"; })
      .length + " of " + view.nodes.length + " up";
  }

  function renderJobs() {
    sync($("om-jobs").tBodies[0], "data-key", view.jobs, function (j) { return j.key; },
      function () { return cells(["pid", "user", "command", "home", "node", "migrations", "locked"]); },
      function (row, j) {
        var d = row.dataset;
        d.pid = String(j.pid);
        d.home = String(j.home);
        d.node = String(j.node);
        d.user = j.user;
        d.migrations = String(j.migrations);
        d.locked = String(j.locked);
        d.ended = String(j.ended);
        field(row, "pid").textContent = String(j.pid);
        field(row, "user").textContent = j.user;
        field(row, "command").textContent = j.command;
        field(row, "home").textContent = String(j.home);
        field(row, "node").textContent = String(j.node) + (j.ended ? " (ended)" : "");
        field(row, "migrations").textContent = String(j.migrations);
        field(row, "locked").textContent = j.locked ? "locked" : "-";
      });
    $("om-jobs-empty").hidden = view.jobs.length > 0;
  }

  function asker(m) {
    if (m.by === "user") return "user " + (m.user || "?");
    var of = m.asker !== null ? " of node " + m.asker : "";
    return m.by + of;
  }
  function renderMoves() {
    sync($("om-moves").tBodies[0], "data-key", view.moves, function (m) { return m.key; },
      function () { return cells(["at", "pid", "from", "to", "by", "frozen", "total", "result"]); },
      function (row, m) {
        var d = row.dataset;
        d.pid = String(m.pid);
        d.home = String(m.home);
        d.from = String(m.from);
        d.to = String(m.to);
        d.by = m.by;
        d.result = m.result;
        d.step = m.step || "";
        field(row, "at").textContent = clock(m.at);
        field(row, "pid").textContent = m.pid + " (home " + m.home + ")";
        field(row, "from").textContent = String(m.from);
        field(row, "to").textContent = String(m.to);
        field(row, "by").textContent = asker(m);
        field(row, "frozen").textContent = m.frozenMs === null ? "-" : m.frozenMs + " ms";
        field(row, "total").textContent = m.totalMs === null ? "-" : m.totalMs + " ms";
        field(row, "result").textContent = m.result === "failed"
          ? "failed" + (m.step ? " at " + m.step : "") + (m.error ? ": " + m.error : "")
          : m.result;
      });
    $("om-moves-empty").hidden = view.moves.length > 0;
  }

  function render() {
    $("om-self").textContent = "node " + view.self;
    var time = $("om-time");
    time.dataset.t = String(view.at);
    time.textContent = clock(view.at);
    var note = $("om-note");
    var unread = view.unread.filter(function (id) { return id !== view.self; });
    note.textContent = !view.keyed
      ? "This cluster has no key: only this node's jobs and moves are shown."
      : unread.length ? "The jobs of node " + unread.join(", ") + " could not be read." : "";
    note.hidden = note.textContent === "";
    renderNodes();
    renderJobs();
    renderMoves();
    document.body.dataset.updated = String(view.at);
    document.body.dataset.updates = String(updates);
  }

  function addHistory(t) {
    hist.t.push(t);
    var known = {};
    view.nodes.forEach(function (n) {
      var id = String(n.id);
      known[id] = true;
      if (!hist.nodes[id]) hist.nodes[id] = hist.t.map(function () { return null; }).slice(1);
      hist.nodes[id].push(n.status === "up" ? n.load : null);
    });
    Object.keys(hist.nodes).forEach(function (id) { if (!known[id]) hist.nodes[id].push(null); });
    var extra = hist.t.length - HISTORY_POINTS;
    if (extra > 0) {
      hist.t.splice(0, extra);
      Object.keys(hist.nodes).forEach(function (id) { hist.nodes[id].splice(0, extra); });
    }
  }

  function open() {
    setState("connecting", "connecting");
    source = new EventSource("/api/events");
    source.addEventListener("snapshot", function (event) {
      var data = JSON.parse(event.data);
      view = data.view;
      hist = { t: data.history.t.slice(), nodes: {} };
      Object.keys(data.history.nodes).forEach(function (id) {
        hist.nodes[id] = data.history.nodes[id].slice();
      });
      updates = 0;
      setState("live", "live");
      render();
    });
    source.addEventListener("change", function (event) {
      if (!view) return;
      view = applyChange(view, JSON.parse(event.data));
      updates++;
      addHistory(view.at);
      render();
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        setState("closed", "disconnected (reload the page)");
      } else {
        setState("reconnecting", "reconnecting");
      }
    };
  }
  function close() {
    if (source) source.close();
    source = null;
  }

  var data = $("om-data");
  if (data) {
    var snapshot = JSON.parse(data.textContent);
    view = snapshot.view;
    hist = snapshot.history;
    document.body.dataset.mode = "snapshot";
    setState("snapshot", "snapshot of " + new Date(snapshot.view.at).toLocaleString());
    render();
    return;
  }
  document.body.dataset.mode = "live";
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      close();
      setState("paused", "paused while hidden");
    } else if (!source) {
      open();
    }
  });
  if (!document.hidden) open();
  else setState("paused", "paused while hidden");
})();
`;
