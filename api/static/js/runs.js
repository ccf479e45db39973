// The runs page: GET /runs as a table across every job and study of this key (a row per job,
// stage and sparsity, the seeds' selected points averaged), filtered and sorted by the API;
// the filters live in the address (a link shows the same view); CSV and JSON exports.

import {
  ApiError, api, app, clear, el, errorNotice, fmtPct, fmtSparsity, getKey, jobUrl, needKey,
  notice, onKey, root,
} from "./core.js";

const CHOICES = {
  task: ["mnli", "qqp", "fever", "custom"],
  loss: ["none", "poe", "reweight", "conf_reg"],
  method: ["mask_training", "imp", "magnitude"],
  scenario: ["finetuned", "pretrained_retrain", "pretrained_frozen"],
  structure: ["unstructured", "ffn_neurons", "ffn_neurons+heads"],
  stage: ["dense", "search", "retrain"],
};
const TEXT_FILTERS = ["sparsity", "tag", "study"];
const COLUMNS = [
  // [sort key, heading, numeric]
  ["job_name", "Job", false], ["study_name", "Study", false], ["task", "Task", false],
  ["loss", "Loss", false], ["method", "Method", false], ["scenario", "Scenario", false],
  ["structure", "Structure", false], ["stage", "Stage", false], ["sparsity", "Sparsity", true], ["n", "Seeds", true],
  ["id_metric", "ID (dev)", true],
];

function state() {
  return new URLSearchParams(window.location.search);
}

function query(format) {
  const params = new URLSearchParams();
  const current = state();
  for (const name of [...Object.keys(CHOICES), ...TEXT_FILTERS, "sort"]) {
    for (const value of current.getAll(name)) {
      if (value === "") continue;
      if (name === "sparsity") {
        const number = Number(value.replace("%", ""));
        params.append(name, String(number > 1 || value.endsWith("%") ? number / 100 : number));
      } else {
        params.append(name, value);
      }
    }
  }
  if (format) params.set("format", format);
  return params;
}

function setParam(name, value) {
  const params = state();
  params.delete(name);
  if (name === "tag") {
    for (const tag of String(value).split(/[\s,]+/).filter(Boolean)) params.append("tag", tag);
  } else if (value !== "" && value !== null && value !== undefined) {
    params.set(name, value);
  }
  const search = params.toString();
  window.history.replaceState(null, "", `${window.location.pathname}${search ? `?${search}` : ""}`);
  load();
}

function sortBy(key) {
  const current = state().get("sort") || "-created_at";
  const next = current === key ? `-${key}` : key;
  setParam("sort", next);
}

function ariaSort(key) {
  const current = state().get("sort") || "-created_at";
  if (current === key) return "ascending";
  if (current === `-${key}`) return "descending";
  return "none";
}

function header(key, label, numeric) {
  const sorted = ariaSort(key);
  const arrow = { ascending: " ▲", descending: " ▼", none: "" }[sorted];
  return el("th", { scope: "col", class: numeric ? "num" : "", "aria-sort": sorted, "data-sort": key },
    el("button", { type: "button", class: "sort", onclick: () => sortBy(key),
      title: `Sort by ${label}` }, label, arrow));
}

function metricCell(value, collapsed) {
  if (!collapsed) return el("td", { class: "num" }, fmtPct(value));
  return el("td", { class: "num collapsed", "data-collapsed": "true",
    title: "some seed collapsed onto one class on this set: not a robustness gain" },
  fmtPct(value), el("span", { class: "flag" }, " ⚠"));
}

function row(run, oodSets) {
  const collapsed = new Set(run.collapsed_sets);
  return el("tr", { "data-job": run.job_id, "data-stage": run.stage, "data-sparsity": String(run.sparsity),
    class: run.collapsed ? "collapsed-row" : "" },
  el("td", {}, el("a", { href: jobUrl(run.job_id) }, run.job_name || run.job_id.slice(0, 8)),
    run.note ? el("div", { class: "muted small note-text", title: run.note }, run.note.slice(0, 80)) : null),
  el("td", {}, run.study_id
    ? el("a", { href: `${root}/web/studies/${encodeURIComponent(run.study_id)}` }, run.study_name || "study")
    : "–"),
  el("td", {}, run.task), el("td", {}, run.loss), el("td", {}, run.method),
  el("td", {}, run.scenario), el("td", {}, run.structure || "unstructured"), el("td", {}, run.stage),
  el("td", { class: "num" }, fmtSparsity(run.sparsity)),
  el("td", { class: "num", title: `seeds ${run.seeds.join(", ")}` }, String(run.n)),
  metricCell(run.id_metric, collapsed.has(run.id_set)),
  oodSets.map((name) => metricCell(run.ood[name], collapsed.has(name))),
  el("td", {}, run.collapsed ? el("span", { class: "flag" }, `⚠ ${run.collapsed_sets.join(", ")}`) : ""),
  el("td", {}, run.tags.map((tag) => el("button", { type: "button", class: "tag", "data-tag": tag,
    title: `Only runs tagged ${tag}`, onclick: () => setParam("tag", tag) }, tag))));
}

let loading = null;

async function load() {
  if (!getKey()) return;
  loading?.abort();
  loading = new AbortController();
  const status = document.getElementById("runs-status");
  const params = query();
  document.getElementById("api-link").textContent = `GET /runs${params.toString() ? `?${params}` : ""}`;
  try {
    const table = await api(`/runs?${params}`, { signal: loading.signal });
    const oodSets = table.ood_sets;
    const head = clear(document.getElementById("runs-head"));
    head.append(el("tr", {}, COLUMNS.map(([key, label, numeric]) => header(key, label, numeric)),
      oodSets.map((name) => header(`ood.${name}`, `${name} (OOD)`, true)),
      header("collapsed", "Flag", false), el("th", { scope: "col" }, "Tags")));
    const body = clear(document.getElementById("runs-body"));
    for (const run of table.data) body.append(row(run, oodSets));
    if (!table.data.length) {
      body.append(el("tr", {}, el("td", { colspan: String(COLUMNS.length + oodSets.length + 2), class: "muted" },
        query().toString() ? "No runs match these filters." : "No runs yet: rows appear once a job has selected a point.")));
    }
    document.getElementById("runs-count").textContent =
      `${table.count} row${table.count === 1 ? "" : "s"}${table.truncated ? " (the newest jobs only)" : ""}`;
    clear(status);
  } catch (error) {
    if (error.name === "AbortError") return;
    clear(status).append(errorNotice(error));
  }
}

async function exportRuns(format, button) {
  const state_ = document.getElementById("export-state");
  button.disabled = true;
  try {
    let blob;
    if (format === "csv") {
      const response = await fetch(`${root}/runs?${query("csv")}`, {
        headers: { Authorization: `Bearer ${getKey()}` }, cache: "no-store", credentials: "omit",
      });
      if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
      blob = await response.blob();
    } else {
      blob = new Blob([JSON.stringify(await api(`/runs?${query()}`), null, 1)], { type: "application/json" });
    }
    const href = URL.createObjectURL(blob);
    const link = el("a", { href, download: `srnet-runs.${format}`, class: "hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    state_.textContent = `saved srnet-runs.${format}`;
  } catch (error) {
    state_.textContent = error.detail || String(error);
  } finally {
    button.disabled = false;
  }
}

function filterControl(name) {
  const current = state();
  if (CHOICES[name]) {
    const select = el("select", { id: `filter-${name}`, "data-filter": name },
      el("option", { value: "" }, "any"),
      CHOICES[name].map((value) => el("option", { value, selected: current.get(name) === value }, value)));
    select.addEventListener("change", () => setParam(name, select.value));
    return el("label", { class: "filter" }, `${name} `, select);
  }
  const placeholder = { sparsity: "50%", tag: "tag1 tag2", study: "study id" }[name];
  const input = el("input", { id: `filter-${name}`, "data-filter": name, type: "text", placeholder,
    value: name === "tag" ? current.getAll("tag").join(" ") : current.get(name) || "", size: name === "study" ? 12 : 8 });
  input.addEventListener("change", () => setParam(name, input.value.trim()));
  return el("label", { class: "filter" }, `${name} `, input);
}

function render() {
  const page = clear(app());
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  const csv = el("button", { type: "button", class: "secondary small", id: "export-csv" }, "CSV");
  const json = el("button", { type: "button", class: "secondary small", id: "export-json" }, "JSON");
  csv.addEventListener("click", () => exportRuns("csv", csv));
  json.addEventListener("click", () => exportRuns("json", json));
  const reset = el("button", { type: "button", class: "secondary small", id: "reset-filters" }, "Clear filters");
  reset.addEventListener("click", () => {
    window.history.replaceState(null, "", window.location.pathname);
    render();
  });
  page.append(
    el("form", { class: "toolbar filters", id: "runs-filters", onsubmit: (e) => e.preventDefault() },
      [...Object.keys(CHOICES), ...TEXT_FILTERS].map(filterControl), reset),
    el("div", { class: "toolbar" },
      el("span", { id: "runs-count", class: "muted", role: "status" }),
      "Export: ", csv, json, el("span", { id: "export-state", class: "dl-state", role: "status" }),
      el("code", { id: "api-link", class: "small muted" })),
    el("div", { id: "runs-status" }),
    el("div", { class: "table-wrap" },
      el("table", { id: "runs-table", class: "runs" },
        el("caption", {}, "Accuracy % (F1 % where a set has no accuracy), mean over the seeds of each "
          + "job, stage and sparsity; ⚠: some seed collapsed onto one class (not a robustness gain). "
          + "Click a heading to sort, a tag to filter."),
        el("thead", { id: "runs-head" }),
        el("tbody", { id: "runs-body" }, el("tr", {}, el("td", {}, "Loading…"))))),
    notice("A job's tags and note are edited on its page.", "info"));
  load();
}

onKey(render);
