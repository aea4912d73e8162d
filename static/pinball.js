// Pinball's pages: sortable and searchable tables, live refresh, the status label, the job
// graph (pan, zoom, search, selection) and the actions. No framework, nothing from a CDN.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const body = document.body;

// ---- tables: click a header to sort, type to filter ----------------------------------------
const sortState = {}; // table id -> {col, dir}

function cellKey(td) {
  const v = td.dataset.sort !== undefined ? td.dataset.sort : td.textContent.trim();
  const n = parseFloat(v);
  return v !== "" && !isNaN(n) && /^-?[\d.]+$/.test(v) ? n : v.toLowerCase();
}

function applySort(table) {
  const st = sortState[table.id];
  const tbody = table.tBodies[0];
  if (!st || !tbody) return;
  const rows = Array.from(tbody.rows);
  rows.sort((a, b) => {
    const x = cellKey(a.cells[st.col]), y = cellKey(b.cells[st.col]);
    if (x === y) return 0;
    if (x === "") return 1;
    if (y === "") return -1;
    return (x < y ? -1 : 1) * st.dir;
  });
  for (const r of rows) tbody.appendChild(r);
  $$("th", table).forEach((th, i) => {
    th.classList.toggle("asc", i === st.col && st.dir === 1);
    th.classList.toggle("desc", i === st.col && st.dir === -1);
  });
}

function applyFilter(table) {
  const input = $(`input.filter[data-table="${table.id}"]`);
  const q = input ? input.value.trim().toLowerCase() : "";
  for (const r of table.tBodies[0] ? table.tBodies[0].rows : []) {
    r.hidden = q !== "" && !r.textContent.toLowerCase().includes(q);
  }
}

for (const table of $$("table.data")) {
  $$("thead th", table).forEach((th, col) => {
    th.addEventListener("click", () => {
      const st = sortState[table.id];
      sortState[table.id] = { col, dir: st && st.col === col ? -st.dir : 1 };
      applySort(table);
    });
  });
}
for (const input of $$("input.filter")) {
  input.addEventListener("input", () => {
    const t = document.getElementById(input.dataset.table);
    if (t) applyFilter(t);
  });
}

// ---- clock and status label -----------------------------------------------------------------
function tick() {
  const c = $("#clock");
  if (c) c.textContent = new Date().toISOString().slice(0, 19).replace("T", " ") + " UTC";
}
tick();
setInterval(tick, 1000);

async function refreshLabel() {
  const label = $("#status-label");
  if (!label) return;
  try {
    const scope = body.dataset.scope ? "?" + body.dataset.scope : "";
    const r = await fetch("/api/v1/status" + scope);
    const j = await r.json();
    label.textContent = j.label || "";
  } catch (e) {
    label.textContent = "ui unreachable";
  }
  label.hidden = !label.textContent;
}
refreshLabel();
setInterval(refreshLabel, 5000);

// ---- flash messages -------------------------------------------------------------------------
function flash(text, bad, link) {
  const f = $("#flash");
  f.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    f.append(" ", a);
  }
  f.className = bad ? "bad" : "good";
  f.hidden = false;
  clearTimeout(flash.timer);
  // A link to a new instance stays until the next message.
  if (!link) flash.timer = setTimeout(() => (f.hidden = true), 8000);
}

// ---- the graph: colours, selection, pan and zoom, search ------------------------------------
const graph = $("#graph");
const selected = new Set();
let view = null; // {x, y, w, h}

function nodeOf(job) {
  return document.getElementById("job-" + job);
}

function setView(v) {
  view = v;
  graph.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
  // A large graph shows its labels once they are big enough to read.
  if (graph.classList.contains("large")) {
    graph.classList.toggle("labels", graph.getBoundingClientRect().width / v.w >= 0.6);
  }
}

function fit() {
  const w = parseFloat(graph.dataset.width), h = parseFloat(graph.dataset.height);
  const box = graph.getBoundingClientRect();
  // The whole graph when it fits legibly; a larger one starts at its top, its labels still
  // readable (0.8 of full size: 12 px labels stay near 10 px), and pans or pinches from there.
  const scale = Math.min(Math.max(Math.min(box.width / w, box.height / h), 0.8), 1.2);
  const vw = box.width / scale, vh = box.height / scale;
  setView({ x: (w - vw) / 2, y: h <= vh ? (h - vh) / 2 : 0, w: vw, h: vh });
}

function zoom(factor, cx, cy) {
  const v = view;
  cx = cx === undefined ? v.x + v.w / 2 : cx;
  cy = cy === undefined ? v.y + v.h / 2 : cy;
  setView({ x: cx - (cx - v.x) * factor, y: cy - (cy - v.y) * factor, w: v.w * factor, h: v.h * factor });
}

function toPoint(evt) {
  const box = graph.getBoundingClientRect();
  return {
    x: view.x + ((evt.clientX - box.left) / box.width) * view.w,
    y: view.y + ((evt.clientY - box.top) / box.height) * view.h,
  };
}

// The graph's edges by one end: `children()` maps a job to the jobs after it, `parents()` to
// the jobs before it.
function edgesBy(down) {
  const out = {};
  for (const e of (graph.dataset.edges || "").split(";")) {
    const [p, c] = e.split(">");
    if (!c) continue;
    const [from, to] = down ? [p, c] : [c, p];
    (out[from] = out[from] || []).push(to);
  }
  return out;
}
const children = () => edgesBy(true);
const parents = () => edgesBy(false);

function downstream(job) {
  const kids = children(), seen = new Set([job]), todo = [job];
  while (todo.length) for (const c of kids[todo.pop()] || []) if (!seen.has(c)) { seen.add(c); todo.push(c); }
  return seen;
}

function showSelection() {
  for (const n of $$("g.node", graph)) n.classList.toggle("selected", selected.has(n.dataset.job));
  const list = Array.from(selected).sort();
  const s = $("#selection");
  if (s) s.textContent = list.length ? `Selected: ${list.join(", ")}` : "Click a job for its details; Ctrl-click (or Space) selects it.";
  const pick = $("#job-panel [data-pick]");
  if (pick) pick.textContent = selected.has(pick.dataset.pick) ? "Unselect" : "Select";
  for (const b of $$("button.action.jobs")) b.disabled = list.length === 0;
}

if (graph) {
  fit();
  // Pan with a mouse or one finger, pinch with two (pointer events cover both).
  let drag = null, moved = false;
  const pointers = new Map();
  let pinch = null;
  graph.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (pointers.size === 1) {
      drag = { x: e.clientX, y: e.clientY, view: { ...view } };
      moved = false;
    } else if (pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      pinch = { d: Math.hypot(a.x - b.x, a.y - b.y), view: { ...view }, mid: toPoint({ clientX: (a.x + b.x) / 2, clientY: (a.y + b.y) / 2 }) };
      drag = null;
    }
  });
  window.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId)) return;
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (pinch && pointers.size === 2) {
      const [a, b] = Array.from(pointers.values());
      const d = Math.hypot(a.x - b.x, a.y - b.y);
      if (d > 0) {
        const f = pinch.d / d, v = pinch.view, m = pinch.mid;
        setView({ x: m.x - (m.x - v.x) * f, y: m.y - (m.y - v.y) * f, w: v.w * f, h: v.h * f });
        moved = true;
      }
      return;
    }
    if (!drag) return;
    const box = graph.getBoundingClientRect();
    const dx = ((e.clientX - drag.x) / box.width) * drag.view.w;
    const dy = ((e.clientY - drag.y) / box.height) * drag.view.h;
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) moved = true;
    setView({ ...drag.view, x: drag.view.x - dx, y: drag.view.y - dy });
  });
  const release = (e) => {
    pointers.delete(e.pointerId);
    if (pointers.size < 2) pinch = null;
    if (pointers.size === 0) drag = null;
  };
  window.addEventListener("pointerup", release);
  window.addEventListener("pointercancel", release);
  graph.addEventListener("wheel", (e) => {
    e.preventDefault();
    const p = toPoint(e);
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y);
  }, { passive: false });
  const toggle = (job) => {
    if (selected.has(job)) selected.delete(job); else selected.add(job);
    showSelection();
  };
  graph.addEventListener("click", (e) => {
    const n = e.target.closest("g.node");
    if (!n || moved) return;
    if (e.ctrlKey || e.metaKey || e.shiftKey) toggle(n.dataset.job); else openPanel(n.dataset.job);
  });
  graph.addEventListener("keydown", (e) => {
    const n = e.target.closest("g.node");
    if (!n) return;
    if (e.key === "Enter") { e.preventDefault(); openPanel(n.dataset.job); }
    if (e.key === " ") { e.preventDefault(); toggle(n.dataset.job); }
    if (e.key === "Escape") closePanel();
  });
  const panelBox = $("#job-panel");
  if (panelBox) {
    panelBox.addEventListener("click", (e) => {
      const go = e.target.closest("[data-open]");
      if (go) { e.preventDefault(); openPanel(go.dataset.open); const n = nodeOf(go.dataset.open); if (n) n.focus(); }
      const pick = e.target.closest("[data-pick]");
      if (pick) toggle(pick.dataset.pick);
      if (e.target.closest("[data-close]")) closePanel();
    });
  }
  const menu = $("#graph-menu");
  let menuJob = null;
  graph.addEventListener("contextmenu", (e) => {
    const n = e.target.closest("g.node");
    if (!n || !menu) return;
    e.preventDefault();
    menuJob = n.dataset.job;
    menu.style.left = e.pageX + "px";
    menu.style.top = e.pageY + "px";
    menu.hidden = false;
  });
  document.addEventListener("click", (e) => {
    if (!menu || menu.hidden) return;
    const item = e.target.closest("[data-menu]");
    menu.hidden = true;
    if (!item || !menuJob) return;
    const what = item.dataset.menu;
    if (what === "go") {
      const href = $(".graph-panel").dataset.jobHref;
      if (href) location.href = href + encodeURIComponent(menuJob);
      return;
    }
    for (const j of downstream(menuJob)) if (what === "select") selected.add(j); else selected.delete(j);
    showSelection();
  });
  for (const b of $$("[data-zoom]")) {
    b.addEventListener("click", () => {
      if (b.dataset.zoom === "fit") fit(); else zoom(b.dataset.zoom === "in" ? 1 / 1.4 : 1.4);
    });
  }
  const search = $("#graph-search");
  if (search) {
    search.addEventListener("change", () => {
      const n = nodeOf(search.value.trim());
      for (const x of $$("g.node.found", graph)) x.classList.remove("found");
      if (!n) { flash(`No job named ${search.value}`, true); return; }
      n.classList.add("found");
      const b = n.getBBox();
      setView({ x: b.x + b.width / 2 - view.w / 2, y: b.y + b.height / 2 - view.h / 2, w: view.w, h: view.h });
    });
  }
  showSelection();
}

// ---- the job panel: a node's executions, logs, neighbours and selection -------------------
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}

function closePanel() {
  const p = $("#job-panel");
  if (p) p.hidden = true;
}

async function openPanel(job) {
  const box = $("#job-panel"), panel = $(".graph-panel[data-jobs-api]");
  if (!box || !panel) return;
  const scope = $(".actions[data-workflow]");
  const w = scope.dataset.workflow, i = scope.dataset.instance;
  const q = (n) => `workflow=${encodeURIComponent(w)}&instance=${encodeURIComponent(i)}&job=${encodeURIComponent(job)}` + (n === undefined ? "" : `&execution=${n}`);
  const node = nodeOf(job);
  box.replaceChildren(
    el("h3", {}, el("a", { href: "/executions/?" + q() }, job), " ", el("span", { class: "status", "data-status": node ? node.dataset.status : "" }, node ? node.dataset.status : "")),
    el("p", { class: "muted" }, "Loading its executions…"));
  box.hidden = false;
  let rows = [];
  try {
    const r = await fetch(`${panel.dataset.jobsApi}/${encodeURIComponent(job)}/executions`);
    if (r.ok) rows = await r.json();
  } catch (e) { /* shown as none */ }
  const list = el("ol", { class: "executions", start: "0" });
  for (const x of rows) {
    const logs = ["stdout", "stderr", "pinlog"].map((k) => el("a", { href: `/file/?${q(x.execution)}&log_type=${k}` }, k));
    const code = x.exit_code === null || x.exit_code === undefined ? "" : ` exit ${x.exit_code}`;
    list.append(el("li", {}, el("a", { href: `/execution/?${q(x.execution)}` }, `#${x.execution} ${x.status}${code}`), " ", ...logs.flatMap((a) => [a, " "])));
  }
  const links = (jobs) => jobs.length ? jobs.flatMap((j) => [el("a", { href: "#", "data-open": j }, j), " "]) : ["none"];
  box.replaceChildren(
    el("h3", {}, el("a", { href: "/executions/?" + q() }, job), " ", el("span", { class: "status" }, node ? node.dataset.status : "")),
    el("p", {}, "Upstream: ", ...links(parents()[job] || [])),
    el("p", {}, "Downstream: ", ...links(children()[job] || [])),
    rows.length ? list : el("p", { class: "muted" }, "Not run yet."),
    el("p", {}, el("button", { type: "button", "data-pick": job }, selected.has(job) ? "Unselect" : "Select"), " for Poison, Disable or Enable · ",
      el("button", { type: "button", "data-close": "1" }, "Close")));
}

// ---- the graph's colours, from the JSON read API ---------------------------------------------
// Each state's fill, icon and words: the server's palette (workflow::status::Look).
const LOOKS = {
  NEVER_RUN: ["#e4e4e4", "○", "never run"], PENDING: ["#f0e442", "◔", "pending"],
  WAITING_RETRY: ["#f5c77e", "↻", "waiting to retry"], POLLING: ["#bfe1f5", "◎", "polling its condition"],
  RUNNING: ["#56b4e9", "▶", "running"], SUCCESS: ["#009e73", "✓", "success"], FAILURE: ["#d55e00", "✗", "failure"],
  KILLED: ["#e69f00", "⚡", "killed"], ABORTED: ["#cc79a7", "■", "aborted"], DISABLED: ["#ffffff", "⊘", "disabled"], SKIPPED: ["#d9ecd0", "↷", "skipped"],
  UNKNOWN: ["#b0b0b0", "?", "unknown"], QUEUED: ["#dcd0f0", "⋯", "queued"],
};

async function refreshGraph() {
  const panel = $(".graph-panel[data-jobs-api]");
  if (!graph || !panel) return;
  const r = await fetch(panel.dataset.jobsApi);
  if (!r.ok) return;
  for (const j of await r.json()) {
    const n = nodeOf(j.job);
    if (!n) continue;
    const status = j.state || j.status;
    if (n.dataset.status !== status) {
      const [fill, icon, words] = LOOKS[status] || LOOKS.UNKNOWN;
      n.dataset.status = status;
      $(".shape", n).setAttribute("fill", fill);
      $(".icon", n).textContent = icon;
      $("title", n).textContent = `${j.job}: ${words}`;
      n.setAttribute("aria-label", `${j.job}: ${words}`);
    }
  }
}

// ---- live refresh: swap the [data-live] parts of a fresh copy of this page ------------------
let liveDelay = 3000;

async function refreshPage() {
  const parts = $$("[data-live]");
  if (!parts.length || document.hidden) return;
  const started = performance.now();
  const url = new URL(location.href);
  url.searchParams.set("live", "1");
  const r = await fetch(url);
  if (!r.ok) return;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  for (const part of parts) {
    const fresh = doc.querySelector(`[data-live="${part.dataset.live}"]`);
    if (fresh && fresh.innerHTML !== part.innerHTML) part.innerHTML = fresh.innerHTML;
  }
  for (const t of $$("table.data")) { applySort(t); applyFilter(t); }
  // A slow page (a huge instance) is refreshed less often.
  liveDelay = Math.max(3000, 5 * (performance.now() - started));
}

async function refreshOnce() {
  try {
    await refreshPage();
    await refreshGraph();
  } catch (e) {
    // The UI restarting or the network blinking: the next round tries again.
  }
}

async function liveLoop() {
  await refreshOnce();
  setTimeout(liveLoop, liveDelay);
}
if ($$("[data-live]").length) setTimeout(liveLoop, liveDelay);

// ---- following a running job's log ----------------------------------------------------------
const log = $("#log");
if (log && log.dataset.follow) {
  // Twice a second: a probe that reads no bytes (its headers say the size), and the tail
  // only when the log grew, so new output shows within a second at little cost.
  let size = -1;
  const follow = async () => {
    try {
      const probe = await fetch(log.dataset.api + "?tail=0");
      const running = probe.headers.get("x-log-running") === "1";
      const now = Number(probe.headers.get("x-log-size"));
      if (now !== size) {
        size = now;
        const r = await fetch(log.dataset.api + "?tail=65536");
        const text = await r.text();
        const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
        if (text !== log.textContent) log.textContent = text;
        if (atBottom) window.scrollTo(0, document.body.scrollHeight);
      }
      if (running) { setTimeout(follow, 500); return; }
      const note = $("#log-follow");
      if (note) note.textContent = "The job has finished.";
    } catch (e) {
      setTimeout(follow, 5000);
    }
  };
  setTimeout(follow, 500);
}

// ---- actions: confirm, POST with the page's token, show the answer --------------------------
// Delegated, so buttons in parts the live refresh swaps in act too.
document.addEventListener("click", async (e) => {
  const b = e.target.closest("button.action");
  if (!b || b.disabled) return;
  {
    const scope = b.closest("[data-workflow]") || b;
    const jobs = b.classList.contains("jobs") ? Array.from(selected).sort().join(",") : b.dataset.jobs || "";
    const question = b.dataset.confirm.replace("{jobs}", jobs.split(",").join(", "));
    if (!window.confirm(question)) return;
    const form = new URLSearchParams({ csrf: body.dataset.csrf, command: b.dataset.command });
    const add = (k, v) => { if (v) form.set(k, v); };
    add("workflow", b.dataset.workflow || scope.dataset.workflow);
    add("instance", b.dataset.instance || scope.dataset.instance);
    add("jobs", jobs);
    add("execution", b.dataset.execution);
    // A Start beside a parameters form sends its fields (param.NAME, logical_time).
    if (b.dataset.command === "start") {
      for (const f of $$(".start-params [name]", scope)) add(f.name, f.type === "checkbox" ? (f.checked ? "on" : "") : f.value);
    }
    b.disabled = true;
    try {
      const r = await fetch("/command/", { method: "POST", body: form });
      const j = await r.json();
      if (!r.ok) flash(j.error ? j.error.message : r.statusText, true);
      else if (j.created) flash(j.message, false, { href: j.created.href, text: `Open instance ${j.created.instance}` });
      else flash(j.message || "done", false);
    } catch (e) {
      flash("The UI did not answer: " + e, true);
    } finally {
      b.disabled = b.classList.contains("jobs") && selected.size === 0;
    }
    refreshLabel();
    setTimeout(refreshOnce, 300);
  }
});

// ---- keyboard shortcuts: / search, f fit the graph, p poison, r retry, Escape closes ---------
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
  const click = (sel) => { const b = $(sel); if (b && !b.disabled) { e.preventDefault(); b.click(); } };
  if (e.key === "/") { const q = $("#nav-q"); if (q) { e.preventDefault(); q.focus(); } }
  else if (e.key === "f") click('[data-zoom="fit"]');
  else if (e.key === "p") click('button[data-command="poison"]');
  else if (e.key === "r") click('button[data-command="retry"]');
  else if (e.key === "Escape") closePanel();
});

// ---- the runs grid: rows drawn as they scroll into view ----------------------------------------
const runsData = $("#runs-data");
if (runsData) {
  const g = JSON.parse(runsData.textContent);
  const body = $("#runs-grid .rg-body");
  const enc = encodeURIComponent;
  let drawn = 0;
  // Names are \w+ and ids digits, but nothing from a token goes into HTML unescaped.
  const esc = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const cols = g.columns.map((i) => `&amp;instance=${esc(enc(i))}`);
  const looks = g.looks.map(([state, , icon]) => [esc(state), esc(icon)]);
  const draw = (n) => {
    const end = Math.min(g.rows.length, drawn + n);
    const html = [];
    for (; drawn < end; drawn++) {
      const [job, cells] = g.rows[drawn];
      const j = esc(job), q = `workflow=${esc(enc(g.workflow))}`, jq = `&amp;job=${esc(enc(job))}`;
      html.push(`<div class="rg-row" role="row" data-job="${j}"><span class="rg-job" role="rowheader"><a href="/instances/?${q}&amp;runs=${g.columns.length}&amp;chart=${esc(enc(job))}#durations">${j}</a></span>`);
      for (let k = 0; k < cells.length; k++) {
        const c = cells[k];
        if (!c) { html.push('<span role="cell"></span>'); continue; }
        const [state, icon] = looks[c[0]];
        const href = c[2] >= 0 ? `/execution/?${q}${cols[k]}${jq}&amp;execution=${c[2]}` : `/executions/?${q}${cols[k]}${jq}`;
        html.push(`<span role="cell"><a class="l-${state}" data-state="${state}" href="${href}">${icon}${esc(c[1])}</a></span>`);
      }
      html.push("</div>");
    }
    body.insertAdjacentHTML("beforeend", html.join(""));
  };
  // The first screenful at once; the rest right after it, so the page is usable at once.
  draw(60);
  const rest = () => {
    if (drawn >= g.rows.length) {
      body.dataset.drawnAt = Math.round(performance.now()); // when the last row was drawn
      return;
    }
    draw(g.rows.length);
    setTimeout(rest, 0);
  };
  setTimeout(rest, 0);
}
