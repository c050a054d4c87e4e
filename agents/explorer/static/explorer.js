// The record explorer's page: search, facets, a record's history, "more like this", corrections,
// bulk labels with preview and undo, export. It talks only to /explorer/api/* (JSON); data is
// always inserted as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const FILTERS = {
  task: "f-task", predicted: "f-predicted", trusted: "f-trusted", source: "f-source", route: "f-route",
  conf_min: "f-conf-min", conf_max: "f-conf-max", min_revisions: "f-min-revisions", labeler: "f-labeler",
  since: "f-since", until: "f-until", drift_window: "f-drift-window",
};
const PER_PAGE = 50;
const state = { page: 1, sort: "updated", order: "desc", total: 0, similarTo: null, similarText: null, record: null, actionId: null };

// -- access -------------------------------------------------------------------------------------

for (const [id, store] of [["token", sessionStorage], ["operator", localStorage]]) {
  const input = $(id);
  input.value = store.getItem("explorer." + id) || "";
  input.addEventListener("change", () => store.setItem("explorer." + id, input.value.trim()));
}

function headers() {
  const found = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) found.Authorization = "Bearer " + token;
  return found;
}

function operator() {
  return $("operator").value.trim() || "explorer";
}

function show(message) {
  const box = $("message");
  box.textContent = message || "";
  box.hidden = !message;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    throw new Error((payload && payload.error) || `${method} ${path}: HTTP ${response.status}`);
  }
  return payload;
}

// -- the filter ---------------------------------------------------------------------------------

function localToIso(value) {
  if (!value) return "";
  const when = new Date(value);
  return isNaN(when) ? "" : when.toISOString();
}

function currentFilter() {
  const filter = {};
  const q = $("q").value.trim();
  if (q) filter.q = q;
  for (const [name, id] of Object.entries(FILTERS)) {
    let value = $(id).value.trim();
    if (name === "since" || name === "until") value = localToIso(value);
    if (value !== "") filter[name] = value;
  }
  if ($("f-disagree").checked) filter.disagree = true;
  return filter;
}

function queryOf(filter, extra) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...filter, ...extra })) params.set(name, String(value));
  return params.toString();
}

// -- results ------------------------------------------------------------------------------------

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renderRows(rows, scores) {
  const body = $("results").querySelector("tbody");
  body.replaceChildren();
  rows.forEach((row, n) => {
    const tr = document.createElement("tr");
    tr.dataset.eventId = row.event_id;
    cell(tr, row.event_id);
    cell(tr, row.text, "text-cell").title = row.text || "";
    cell(tr, row.predicted);
    cell(tr, Number(row.confidence).toFixed(3), "num");
    cell(tr, row.route);
    cell(tr, row.trusted);
    cell(tr, row.source);
    cell(tr, row.n_revisions, "num");
    cell(tr, scores ? `sim ${scores[n].toFixed(3)}` : (row.updated_at || "").replace("T", " ").slice(0, 19));
    if (row.event_id === state.record) tr.classList.add("selected");
    tr.addEventListener("click", () => openRecord(row.event_id));
    body.appendChild(tr);
  });
}

function renderFacets(facets) {
  const box = $("facets");
  box.replaceChildren();
  const filter = currentFilter();
  for (const [name, counts] of Object.entries(facets || {})) {
    const group = document.createElement("div");
    group.className = "facet";
    group.dataset.facet = name;
    const title = document.createElement("span");
    title.className = "muted";
    title.textContent = name;
    group.appendChild(title);
    for (const [value, count] of Object.entries(counts)) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = `${value} (${count})`;
      button.dataset.value = value;
      if (filter[name] === value) button.classList.add("active");
      button.addEventListener("click", () => {
        const id = FILTERS[name];
        if (!id) return;
        $(id).value = filter[name] === value ? "" : value;
        search(1);
      });
      group.appendChild(button);
    }
    box.appendChild(group);
  }
}

function renderSort() {
  for (const th of $("results").querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted-asc", th.dataset.sort === state.sort && state.order === "asc");
    th.classList.toggle("sorted-desc", th.dataset.sort === state.sort && state.order === "desc");
  }
}

async function search(page) {
  state.page = page || 1;
  state.similarTo = null;
  state.similarText = null;
  show("");
  try {
    const found = await call("GET", "/explorer/api/records?" + queryOf(currentFilter(), {
      sort: state.sort, order: state.order, page: state.page, per_page: PER_PAGE,
    }));
    state.total = found.total;
    $("total").textContent = `${found.total} events`;
    $("mode").textContent = "";
    $("page").textContent = String(state.page);
    $("prev").disabled = state.page <= 1;
    $("next").disabled = state.page * PER_PAGE >= found.total;
    $("bulk-scope").textContent = "the current filter";
    renderRows(found.rows, null);
    renderFacets(found.facets);
    renderSort();
  } catch (error) {
    show(error.message);
  }
}

async function similar(params, description) {
  show("");
  try {
    const found = await call("GET", "/explorer/api/similar?" + queryOf(params, { k: PER_PAGE }));
    const hits = found.hits || [];
    $("total").textContent = `${hits.length} most similar events`;
    $("mode").textContent = description;
    $("page").textContent = "1";
    $("prev").disabled = true;
    $("next").disabled = true;
    renderRows(hits.map((hit) => hit.row), hits.map((hit) => hit.score));
    $("facets").replaceChildren();
  } catch (error) {
    show(error.message);
  }
}

// -- the record page ----------------------------------------------------------------------------

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const value of values) cell(tr, value);
    body.appendChild(tr);
  }
}

function who(revision) {
  const provenance = revision.provenance || {};
  if (provenance.operator) return `operator ${provenance.operator}`;
  if (revision.source === "model") return `model ${provenance.model_name || ""} v${provenance.model_version || ""}`;
  const workers = (provenance.worker_ids || []).join(", ");
  return `${provenance.pool || revision.source}${workers ? ": " + workers : ""}`;
}

function why(revision) {
  const provenance = revision.provenance || {};
  const parts = [revision.reason, provenance.operator_reason && provenance.operator_reason !== revision.reason ? provenance.operator_reason : null];
  if (provenance.action_id) parts.push(`action ${provenance.action_id}`);
  return parts.filter(Boolean).join(" · ");
}

async function openRecord(eventId) {
  show("");
  try {
    const detail = await call("GET", "/explorer/api/records/" + encodeURIComponent(eventId));
    state.record = eventId;
    const row = detail.row;
    const prediction = detail.prediction || {};
    const input = prediction.input || {};
    $("r-event").textContent = row.event_id;
    $("r-task").textContent = row.task;
    $("r-route").textContent = row.route || "no route yet";
    $("r-input").textContent = input.text || JSON.stringify(input.features || input, null, 2);
    $("r-predicted").textContent = `${row.predicted} (${Number(row.confidence).toFixed(3)})`;
    $("r-model").textContent = prediction.model_name ? `${prediction.model_name} v${prediction.model_version}` : "";
    const scores = Object.entries(prediction.scores || {}).sort((a, b) => b[1] - a[1]);
    fill("r-scores", scores.map(([label, score]) => [label, Number(score).toFixed(4)]));
    $("r-routing").textContent = detail.routing ? JSON.stringify(detail.routing, null, 2) : "–";
    fill("r-answers", (detail.answers || []).map((answer) => [
      answer.worker_id, answer.answer, answer.golden ? "golden" : "",
      answer.skill === null || answer.skill === undefined ? "–" : (typeof answer.skill === "number" ? answer.skill.toFixed(3) : JSON.stringify(answer.skill)),
      (answer.at || "").replace("T", " ").slice(0, 19),
    ]));
    fill("r-revisions", (detail.revisions || []).map((revision) => [
      revision.revision, revision.label, revision.source, who(revision), why(revision),
      (revision.decided_at || "").replace("T", " ").slice(0, 19),
    ]));
    $("correct-label").value = "";
    $("correct-result").textContent = "";
    $("record").hidden = false;
    document.querySelector("main").classList.remove("no-record");
    for (const tr of $("results").querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.dataset.eventId === eventId);
    if (location.hash !== "#record=" + encodeURIComponent(eventId)) history.replaceState(null, "", "#record=" + encodeURIComponent(eventId));
  } catch (error) {
    show(error.message);
  }
}

function closeRecord() {
  state.record = null;
  $("record").hidden = true;
  document.querySelector("main").classList.add("no-record");
  history.replaceState(null, "", location.pathname);
}

async function correct(event) {
  event.preventDefault();
  if (!state.record) return;
  show("");
  try {
    const found = await call("POST", "/explorer/api/corrections", {
      event_id: state.record, label: $("correct-label").value, reason: $("correct-reason").value, operator: operator(),
    });
    const revision = found.revision;
    $("correct-result").textContent = `revision ${revision.revision} ordered: ${revision.label} (supersedes ${revision.supersedes})`;
    setTimeout(() => state.record && openRecord(state.record), 1500);
  } catch (error) {
    show(error.message);
  }
}

// -- bulk ---------------------------------------------------------------------------------------

function bulkBody() {
  const body = { label: $("bulk-label").value, operator: operator() };
  const reason = $("bulk-reason").value.trim();
  if (reason) body.reason = reason;
  if (state.similarTo) {
    body.similar_to = state.similarTo;
  } else {
    const filter = currentFilter();
    filter.sort = state.sort;
    filter.order = state.order;
    body.filter = filter;
  }
  return body;
}

async function bulkPreview() {
  show("");
  $("bulk-done").hidden = true;
  if (!$("bulk-label").value) { show("give the label to apply"); return; }
  try {
    const found = await call("POST", "/explorer/api/bulk/preview", bulkBody());
    $("bulk-summary").textContent = `${found.count} events would get “${$("bulk-label").value}”` +
      (found.unchanged ? `, ${found.unchanged} have it already` : "") +
      (found.capped ? ` (capped at ${found.cap} per action: narrow the filter for the rest)` : "");
    fill("bulk-sample", found.sample.map((row) => [row.event_id, row.label, row.source, row.revision, row.new_label]));
    $("bulk-sample").hidden = found.sample.length === 0;
    $("bulk-apply").disabled = found.count === 0;
  } catch (error) {
    show(error.message);
  }
}

async function bulkApply() {
  show("");
  try {
    const found = await call("POST", "/explorer/api/bulk/apply", bulkBody());
    state.actionId = found.action_id;
    $("bulk-action").textContent = found.action_id;
    $("bulk-summary").textContent = `${found.count} revisions ordered`;
    $("bulk-done").hidden = false;
    $("bulk-undo").disabled = false;
    $("bulk-apply").disabled = true;
  } catch (error) {
    show(error.message);
  }
}

async function bulkUndo() {
  if (!state.actionId) return;
  show("");
  try {
    const found = await call("POST", `/explorer/api/bulk/${encodeURIComponent(state.actionId)}/undo`, { operator: operator() });
    $("bulk-summary").textContent = `undo: ${found.count} events restored` + (found.left ? `, ${found.left} left (changed since)` : "");
    $("bulk-undo").disabled = true;
  } catch (error) {
    show(error.message);
  }
}

// -- export -------------------------------------------------------------------------------------

async function exportFilter() {
  show("");
  try {
    const manifest = await call("GET", "/explorer/api/export?" + queryOf(currentFilter(), {}));
    $("export-result").textContent = `${manifest.snapshot_id}: ${manifest.label_count} labels, sha256 ${manifest.content_hash.slice(0, 12)}… in ${manifest.path}`;
  } catch (error) {
    show(error.message);
  }
}

// -- wiring -------------------------------------------------------------------------------------

$("search").addEventListener("submit", (event) => { event.preventDefault(); search(1); });
$("clear").addEventListener("click", () => { $("search").reset(); search(1); });
$("more-like-text").addEventListener("click", () => {
  const text = $("q").value.trim();
  if (!text) { show("type a text to find events like it"); return; }
  state.similarText = text;
  const task = $("f-task").value.trim();
  similar(task ? { q: text, task } : { q: text }, `like the text “${text}”`);
});
$("more-like").addEventListener("click", async () => {
  if (!state.record) return;
  const eventId = state.record;
  await similar({ event_id: eventId }, `like ${eventId}`);
  state.similarTo = eventId;
  $("bulk-scope").textContent = `the events most like ${eventId}`;
});
$("close-record").addEventListener("click", closeRecord);
$("prev").addEventListener("click", () => search(Math.max(1, state.page - 1)));
$("next").addEventListener("click", () => search(state.page + 1));
for (const th of $("results").querySelectorAll("th[data-sort]")) {
  th.addEventListener("click", () => {
    state.order = state.sort === th.dataset.sort && state.order === "desc" ? "asc" : "desc";
    state.sort = th.dataset.sort;
    search(1);
  });
}
$("correct").addEventListener("submit", correct);
$("bulk-preview").addEventListener("click", bulkPreview);
$("bulk-apply").addEventListener("click", bulkApply);
$("bulk-undo").addEventListener("click", bulkUndo);
$("export").addEventListener("click", exportFilter);

document.querySelector("main").classList.add("no-record");
search(1).then(() => {
  const match = location.hash.match(/^#record=(.+)$/);
  if (match) openRecord(decodeURIComponent(match[1]));
});
