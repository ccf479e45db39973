// The study page: status from the children, the children with links to their jobs, the
// results table (mean ± sd (n) over seeds; collapsed cells flagged, never shown as a gain), the
// paired comparison of two rows (a − b seed by seed, 95% t interval), the plot (rendered by the
// service), CSV/JSON exports (means, per-seed records, comparisons); refreshes itself while the
// study runs.

import {
  ApiError, TERMINAL, UUID_RE, api, app, clear, el, errorNotice, fmtTime, getKey, jobUrl,
  needKey, notice, onKey, root, statusBadge, studyProgress,
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
  // One seed has no spread to show: "± –", not a zero sd.
  return `${f(record.mean)} ± ${record.n > 1 ? f(record.sd) : "–"} (${record.n})`;
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

// --- paired comparison of two rows ------------------------------------------------------------

let compareKey = "";
let compareTicket = 0; // the newest comparison request (runComparison)

/** A difference in percentage points with its sign ("+1.20"). */
export function pointsText(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const text = (100 * value).toFixed(2);
  return value >= 0 ? `+${text}` : text;
}

export function intervalText(diff) {
  if (diff.low === null || diff.low === undefined) return "no interval (one seed)";
  return `[${pointsText(diff.low)}, ${pointsText(diff.high)}]`;
}

function sparsityText(value) {
  return value === 0 ? "dense" : `${Math.round(1000 * value) / 10}%`;
}

function comparisonTable(diffs) {
  const present = new Set(diffs.map((d) => d.metric));
  const titles = new Map(HEADLINE);
  const metrics = HEADLINE.map(([m]) => m).filter((m) => present.has(m));
  const shown = diffs.filter((d) => titles.has(d.metric))
    .sort((a, b) => a.sparsity_a - b.sparsity_a
      || metrics.indexOf(a.metric) - metrics.indexOf(b.metric));
  return el("table", { id: "compare-table", class: "results" },
    el("caption", {}, "a − b in percentage points over the seeds both rows hold (same seed: same "
      + "dense model and data order), with a 95% t interval over those seeds. An interval that "
      + "contains 0 does not separate the rows."),
    el("thead", {}, el("tr", {}, ["a", "b", "Metric", "n", "a − b", "95% interval", "Seeds"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, shown.map((d) => {
      const separated = d.low !== null && (d.low > 0 || d.high < 0);
      return el("tr", { "data-metric": d.metric, "data-sparsity": String(d.sparsity_a),
        class: separated ? "separated" : "" },
      el("td", {}, `${d.row_a} @ ${sparsityText(d.sparsity_a)}`),
      el("td", {}, `${d.row_b} @ ${sparsityText(d.sparsity_b)}`),
      el("td", {}, titles.get(d.metric)),
      el("td", { class: "num" }, String(d.n)),
      el("td", { class: "num nowrap" }, pointsText(d.mean_difference)),
      el("td", { class: "num nowrap" }, intervalText(d)),
      el("td", { class: "mono small" }, d.seeds.join(" ")));
    })));
}

function rowOptions(select, rows, chosen) {
  const keep = select.value || chosen;
  clear(select).append(...rows.map((row) => el("option", { value: row }, row)));
  if (rows.includes(keep)) select.value = keep;
}

function renderCompareControls() {
  const rows = [...new Set(study.table.map((r) => r.row))];
  const a = document.getElementById("compare-a");
  const b = document.getElementById("compare-b");
  const box = document.getElementById("compare-result");
  if (rows.length < 2) {
    clear(box).append(notice("A comparison needs two rows with results."));
    return;
  }
  const search = study.table.find((r) => r.role === "search")?.row || rows[0];
  rowOptions(a, rows, search);
  rowOptions(b, rows, rows.includes("dense CE") && search !== "dense CE" ? "dense CE" : rows[1]);
  const key = `${a.value}|${b.value}|${study.table.length}|${study.counts.succeeded}`;
  if (key !== compareKey) runComparison();
}

async function runComparison() {
  const a = document.getElementById("compare-a").value;
  const b = document.getElementById("compare-b").value;
  const box = document.getElementById("compare-result");
  compareKey = `${a}|${b}|${study.table.length}|${study.counts.succeeded}`;
  if (a === b) {
    clear(box).append(notice("Choose two different rows."));
    return;
  }
  // Only the newest request may draw: an answer for an older choice of rows (two quick
  // changes, a refresh) can arrive after the newer one's.
  const ticket = ++compareTicket;
  try {
    const query = new URLSearchParams({ format: "json", a, b });
    const table = await api(studyPath(`/table?${query}`));
    if (ticket !== compareTicket) return;
    clear(box).append(el("div", { class: "table-wrap" }, comparisonTable(table.comparisons)));
  } catch (error) {
    if (ticket !== compareTicket) return;
    clear(box).append(errorNotice(error));
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
    studyProgress(study, "study-progress") || "",
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

// records: means (table.csv), seeds (per-seed records) or comparisons; JSON holds all three
async function exportTable(format, button, records = "means") {
  const state = document.getElementById("export-state");
  button.disabled = true;
  const name = `study-${studyId}${records === "means" ? "" : `-${records}`}.${format}`;
  try {
    const blob = format === "csv"
      ? await fetchBlob(studyPath(`/table?format=csv&records=${records}`))
      : new Blob([JSON.stringify(await api(studyPath("/table?format=json")), null, 1)],
        { type: "application/json" });
    const href = URL.createObjectURL(blob);
    const link = el("a", { href, download: name, class: "hidden" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    state.textContent = `saved ${name}`;
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
  renderCompareControls();
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
  compareKey = "";
  const csv = el("button", { type: "button", class: "secondary small", id: "export-csv" }, "CSV");
  const seeds = el("button", { type: "button", class: "secondary small", id: "export-seeds" },
    "per-seed CSV");
  const pairs = el("button", { type: "button", class: "secondary small", id: "export-comparisons" },
    "comparisons CSV");
  const json = el("button", { type: "button", class: "secondary small", id: "export-json" }, "JSON");
  csv.addEventListener("click", () => exportTable("csv", csv));
  seeds.addEventListener("click", () => exportTable("csv", seeds, "seeds"));
  pairs.addEventListener("click", () => exportTable("csv", pairs, "comparisons"));
  json.addEventListener("click", () => exportTable("json", json));
  const pickA = el("select", { id: "compare-a", "aria-label": "row a" });
  const pickB = el("select", { id: "compare-b", "aria-label": "row b" });
  pickA.addEventListener("change", runComparison);
  pickB.addEventListener("change", runComparison);
  page.append(
    el("p", { class: "crumbs" }, el("a", { href: `${root}/web/studies` }, "← All studies")),
    el("div", { id: "study-messages" }),
    section("summary", "Status", el("div", { id: "study-summary", class: "summary" })),
    section("results", "Results",
      el("div", { class: "toolbar" }, "Export the table: ", csv, seeds, pairs, json,
        el("span", { id: "export-state", class: "dl-state", role: "status" })),
      el("div", { id: "results" })),
    section("compare", "Paired comparison",
      el("div", { class: "toolbar" }, el("label", {}, "a ", pickA), " − ",
        el("label", {}, "b ", pickB)),
      el("div", { id: "compare-result" })),
    section("plot", "Sparsity vs accuracy", el("div", { id: "plot" })),
    section("children", "Jobs", el("div", { id: "children" })),
    el("details", { class: "panel" }, el("summary", {}, "Study spec"),
      el("pre", { id: "study-spec" }, JSON.stringify(study.spec, null, 2))));
  renderAll();
  if (!TERMINAL.has(study.status)) timer = setTimeout(refresh, REFRESH_MS);
}

window.addEventListener("pagehide", () => clearTimeout(timer));
onKey(render);
