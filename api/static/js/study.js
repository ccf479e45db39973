// The study page: status from the children, the children with links to their jobs, the
// results table (mean ± sd (n) over seeds; collapsed cells flagged, never shown as a gain), the
// plot (rendered by the service), CSV/JSON exports; refreshes itself while the study runs.

import {
  ApiError, TERMINAL, UUID_RE, api, app, clear, el, errorNotice, fmtTime, getKey, jobUrl,
  needKey, notice, onKey, root, statusBadge,
} from "./core.js";

const REFRESH_MS = 4000;
// (metric, column title): the table shows those the records have (srcore study_format.HEADLINE)
const HEADLINE = [
  ["dev.accuracy", "dev"],
  ["dev.f1", "dev F1"],
  ["hans.accuracy", "HANS"],
  ["hans.entailed", "HANS ent"],
  ["hans.non_entailed", "HANS non-ent"],
  ["paws_qqp.accuracy", "PAWS"],
  ["paws_qqp.1", "PAWS dup"],
  ["paws_qqp.0", "PAWS non-dup"],
  ["fever_symmetric_v1.accuracy", "FEVER-Sym v1"],
  ["fever_symmetric_v2.accuracy", "FEVER-Sym v2"],
  ["mask.differ_fraction", "≠ magnitude"],
];

const studyId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
let study = null;
let timer = null;
let plotUrl = null;
let plotKey = "";

const studyPath = (suffix = "") => `/studies/${encodeURIComponent(studyId)}${suffix}`;

/** A non-JSON answer of the API (CSV, PNG) as a Blob, the key in a header. */
async function fetchBlob(path) {
  let response;
  try {
    response = await fetch(root + path, {
      headers: { Authorization: `Bearer ${getKey()}` }, cache: "no-store", credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "The service did not answer.");
  }
  if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
  return response.blob();
}

// --- the results table ---------------------------------------------------------------------

export function cellText(record) {
  if (!record) return "–";
  const digits = record.metric.startsWith("mask.") ? 2 : 1;
  const f = (v) => (100 * v).toFixed(digits);
  return `${f(record.mean)} ± ${f(record.sd)} (${record.n})`;
}

function resultsTable(records) {
  const present = new Set(records.map((r) => r.metric));
  const columns = HEADLINE.filter(([metric]) => present.has(metric));
  const index = new Map(records.map((r) => [`${r.row}|${r.sparsity}|${r.metric}`, r]));
  const rows = [];
  const seen = new Set();
  for (const record of records) {
    const key = `${record.row}|${record.sparsity}`;
    if (seen.has(key)) continue;
    seen.add(key);
    rows.push(record);
  }
  const order = [...new Set(records.map((r) => r.row))];
  rows.sort((a, b) => order.indexOf(a.row) - order.indexOf(b.row) || a.sparsity - b.sparsity);
  const body = rows.map((first) => {
    const cells = columns.map(([metric]) => {
      const record = index.get(`${first.row}|${first.sparsity}|${metric}`);
      if (!record?.collapsed) return el("td", { class: "num nowrap" }, cellText(record));
      // A collapsed model answers one class for ≥ 95% of the set: its number says nothing about
      // robustness, so it is flagged and greyed, never shown as a gain.
      return el("td", {
        class: "num nowrap collapsed", "data-collapsed": String(record.collapsed),
        title: `${record.collapsed} of ${record.n} seeds collapsed onto one class on this set`,
      }, cellText(record), el("span", { class: "flag" }, ` ⚠ ${record.collapsed} collapsed`));
    });
    return el("tr", { "data-row": first.row, "data-sparsity": String(first.sparsity),
      class: `role-${first.role}` },
    el("th", { scope: "row" }, first.row),
    el("td", {}, first.sparsity === 0 ? "dense" : `${Math.round(1000 * first.sparsity) / 10}%`),
    cells);
  });
  return el("table", { id: "results-table", class: "results" },
    el("caption", {}, "Selected point per seed; mean ± sd over seeds (n), in %. "
      + "Dense rows are the reference models, magnitude rows one-shot magnitude pruning of them."),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Setting"), el("th", { scope: "col" }, "Sparsity"),
      columns.map(([, title]) => el("th", { scope: "col", class: "num" }, title)))),
    el("tbody", {}, body));
}

function renderTable() {
  const box = clear(document.getElementById("results"));
  if (!study.table.length) {
    box.append(notice(TERMINAL.has(study.status) ? "No job of this study selected a point."
      : "Rows appear as the jobs select their points."));
    return;
  }
  box.append(el("div", { class: "table-wrap" }, resultsTable(study.table)));
  if (study.table.some((r) => r.collapsed)) {
    box.append(el("p", { class: "notice warning", id: "collapse-note" },
      "⚠ collapsed: in that many seeds the model answered one class for at least 95% of the set. "
      + "Its accuracy there (e.g. a high HANS non-entailed) is not a robustness gain."));
  }
}

// --- the plot --------------------------------------------------------------------------------

async function refreshPlot() {
  const box = document.getElementById("plot");
  const key = `${study.table.length}|${study.counts.succeeded}|${study.status}`;
  if (!study.table.length || key === plotKey) {
    if (!study.table.length) clear(box).append(notice("The plot appears with the first results."));
    return;
  }
  plotKey = key;
  try {
    const blob = await fetchBlob(studyPath("/plot.png"));
    if (plotUrl) URL.revokeObjectURL(plotUrl);
    plotUrl = URL.createObjectURL(blob);
    clear(box).append(el("img", {
      id: "study-plot", src: plotUrl, class: "study-plot",
      alt: "ID and OOD accuracy against sparsity, one line per setting, dense models dashed, "
        + "error bars over seeds",
    }));
  } catch (error) {
    clear(box).append(errorNotice(error));
  }
}

// --- summary, children, exports --------------------------------------------------------------

function renderSummary() {
  document.getElementById("page-heading").textContent = study.name || "Study";
  document.title = `${study.name || study.id} · SRNet`;
  const counts = Object.entries(study.counts).filter(([, n]) => n)
    .map(([status, n]) => `${n} ${status}`).join(", ");
  clear(document.getElementById("study-summary")).append(
    el("div", { class: "summary-head" },
      el("span", { id: "study-status", "data-status": study.status }, statusBadge(study.status)),
      el("span", { id: "study-counts" }, `${study.jobs} jobs: ${counts}`),
      TERMINAL.has(study.status) ? null : el("button", {
        type: "button", class: "secondary small", id: "cancel-study", onclick: cancelStudy,
      }, "Cancel study")),
    el("p", { class: "mono small muted" }, `id ${study.id} · created ${fmtTime(study.created_at)}`));
}

function renderChildren() {
  clear(document.getElementById("children")).append(el("div", { class: "table-wrap" },
    el("table", { id: "children-table" },
      el("caption", { class: "visually-hidden" }, "The study's jobs"),
      el("thead", {}, el("tr", {}, ["Row", "Role", "Setting", "Status", "Job"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, study.children.map((child) => el("tr", { "data-key": child.key },
        el("td", {}, child.label), el("td", {}, child.role),
        el("td", { class: "mono small" }, Object.entries(child.setting)
          .map(([path, value]) => `${path}=${JSON.stringify(value)}`).join(", ")),
        el("td", {}, statusBadge(child.status)),
        el("td", {}, el("a", { href: jobUrl(child.job_id), class: "mono small" },
          child.job_id.slice(0, 8)))))))));
}

async function cancelStudy() {
  if (!window.confirm("Cancel every unfinished job of this study?")) return;
  try {
    study = await api(studyPath("/cancel"), { method: "POST" });
    renderAll();
  } catch (error) {
    document.getElementById("study-messages").replaceChildren(errorNotice(error));
  }
}

async function exportTable(format, button) {
  const state = document.getElementById("export-state");
  button.disabled = true;
  try {
    const blob = format === "csv" ? await fetchBlob(studyPath("/table?format=csv"))
      : new Blob([JSON.stringify(await api(studyPath("/table?format=json")), null, 1)],
        { type: "application/json" });
    const href = URL.createObjectURL(blob);
    const link = el("a", { href, download: `study-${studyId}.${format}`, class: "hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    state.textContent = `saved study-${studyId}.${format}`;
  } catch (error) {
    state.textContent = error.detail || String(error);
  } finally {
    button.disabled = false;
  }
}

function renderAll() {
  renderSummary();
  renderChildren();
  renderTable();
  refreshPlot();
}

async function refresh() {
  clearTimeout(timer);
  try {
    study = await api(studyPath());
    renderAll();
  } catch (error) {
    document.getElementById("study-messages").replaceChildren(errorNotice(error));
  }
  if (!TERMINAL.has(study?.status)) timer = setTimeout(refresh, REFRESH_MS);
}

function section(id, title, ...children) {
  return el("section", { class: "panel", "aria-labelledby": `${id}-heading` },
    el("h2", { id: `${id}-heading` }, title), ...children);
}

async function render() {
  clearTimeout(timer);
  const page = clear(app());
  if (!UUID_RE.test(studyId)) {
    page.append(notice("This is not a study address.", "error"));
    return;
  }
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  try {
    study = await api(studyPath());
  } catch (error) {
    page.append(errorNotice(error instanceof ApiError ? error : new ApiError(0, String(error))));
    return;
  }
  plotKey = "";
  const csv = el("button", { type: "button", class: "secondary small", id: "export-csv" }, "CSV");
  const json = el("button", { type: "button", class: "secondary small", id: "export-json" }, "JSON");
  csv.addEventListener("click", () => exportTable("csv", csv));
  json.addEventListener("click", () => exportTable("json", json));
  page.append(
    el("p", { class: "crumbs" }, el("a", { href: `${root}/web/studies` }, "← All studies")),
    el("div", { id: "study-messages" }),
    section("summary", "Status", el("div", { id: "study-summary", class: "summary" })),
    section("results", "Results",
      el("div", { class: "toolbar" }, "Export the table: ", csv, json,
        el("span", { id: "export-state", class: "dl-state", role: "status" })),
      el("div", { id: "results" })),
    section("plot", "Sparsity vs accuracy", el("div", { id: "plot" })),
    section("children", "Jobs", el("div", { id: "children" })),
    el("details", { class: "panel" }, el("summary", {}, "Study spec"),
      el("pre", { id: "study-spec" }, JSON.stringify(study.spec, null, 2))));
  renderAll();
  if (!TERMINAL.has(study.status)) timer = setTimeout(refresh, REFRESH_MS);
}

window.addEventListener("pagehide", () => clearTimeout(timer));
onKey(render);
