// The compare page: several jobs' selected points on one ID-vs-OOD chart (one series per job,
// one point per sparsity, mean over seeds). The chosen jobs are kept in the address
// (?jobs=id,id) so a comparison can be shared; the API key never is.

import { chart } from "./charts.js";
import {
  UUID_RE, api, app, clear, el, errorNotice, fmtPct, fmtSparsity, fmtTime, getKey, jobUrl,
  needKey, notice, onKey, statusBadge,
} from "./core.js";
import { evalSets, selectedBySparsity, setNames, sparsityOf } from "./metrics.js";

const MAX_JOBS = 12;
const metricsCache = new Map();
let jobs = [];

function chosenFromUrl() {
  const raw = new URLSearchParams(window.location.search).get("jobs") || "";
  return raw.split(",").map((s) => s.trim()).filter((s) => UUID_RE.test(s)).slice(0, MAX_JOBS);
}

function chosen() {
  return [...document.querySelectorAll("input[name=job]:checked")].map((box) => box.value);
}

function keepInUrl(ids) {
  const url = new URL(window.location.href);
  if (ids.length) url.searchParams.set("jobs", ids.join(","));
  else url.searchParams.delete("jobs");
  window.history.replaceState(null, "", url);
}

async function metricsOf(id) {
  if (!metricsCache.has(id)) {
    metricsCache.set(id, api(`/jobs/${encodeURIComponent(id)}/metrics`).catch((error) => {
      metricsCache.delete(id);
      throw error;
    }));
  }
  return metricsCache.get(id);
}

function label(job) {
  return job.name || job.id.slice(0, 8);
}

/** How many seeds of a group (a stage and sparsity of one job) collapsed on `setName`: their
 * model answers one class for ≥ 95% of the set, which is not robustness. */
function collapsedSeeds(selected, group, setName) {
  const dense = group.stage === "dense";
  return selected.filter((p) => (p.stage === "dense") === dense && sparsityOf(p) === group.sparsity
    && evalSets(p)[setName]?.collapsed).length;
}

function metricCell(value, collapsed) {
  if (!collapsed) return el("td", { class: "num" }, fmtPct(value));
  return el("td", { class: "num collapsed", "data-collapsed": "true",
    title: `${collapsed} seed(s) collapsed onto one class on this set: not a robustness gain` },
  fmtPct(value), el("span", { class: "flag" }, ` ⚠ ${collapsed} collapsed`));
}

async function draw() {
  const ids = chosen();
  keepInUrl(ids);
  const out = clear(document.getElementById("comparison"));
  if (!ids.length) {
    out.append(notice("Choose one or more jobs on the left."));
    return;
  }
  out.append(notice("Loading…"));
  let loaded;
  try {
    loaded = await Promise.all(ids.map(async (id) => ({
      job: jobs.find((j) => j.id === id) || { id, name: null },
      metrics: await metricsOf(id),
    })));
  } catch (error) {
    clear(out).append(errorNotice(error));
    return;
  }
  const names = setNames(loaded.flatMap((l) => l.metrics.selected));
  const idSelect = document.getElementById("id-set");
  const oodSelect = document.getElementById("ood-set");
  for (const [select, preferred] of [[idSelect, "dev"], [oodSelect, names.find((n) => n !== "dev")]]) {
    const current = select.value;
    clear(select).append(...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(current) ? current : (preferred || names[0] || "");
  }
  const idSet = idSelect.value;
  const oodSet = oodSelect.value;
  clear(out);
  if (!names.length) {
    out.append(notice("None of these jobs has a selected point yet."));
    return;
  }
  const rows = [];
  const series = loaded.map(({ job, metrics }) => {
    const groups = selectedBySparsity(metrics.selected);
    const points = groups
      .filter((g) => typeof g.sets[idSet] === "number" && typeof g.sets[oodSet] === "number")
      .map((g) => {
        const collapsed = {
          id: collapsedSeeds(metrics.selected, g, idSet),
          ood: collapsedSeeds(metrics.selected, g, oodSet),
        };
        rows.push({ job, group: g, collapsed });
        const flag = collapsed.id || collapsed.ood ? " ⚠ collapsed" : "";
        return {
          x: 100 * g.sets[idSet], y: 100 * g.sets[oodSet],
          label: `${g.stage === "dense" ? "dense" : fmtSparsity(g.sparsity)}${flag}`,
          note: `${g.stage === "dense" ? "dense" : `sparsity ${fmtSparsity(g.sparsity)}`}, `
            + `${g.seeds.length} seed${g.seeds.length === 1 ? "" : "s"}`,
        };
      });
    return { name: label(job), points };
  });
  if (!rows.length) {
    out.append(notice(`No job has both ${idSet} and ${oodSet} at a selected point.`));
    return;
  }
  out.append(chart({
    title: `${idSet} (ID) vs ${oodSet} (OOD) accuracy at each job's selected points`,
    xLabel: `${idSet} accuracy %`, yLabel: `${oodSet} accuracy %`, series, connect: "order",
    pointLabels: true, pointRadius: 5, padX: true, xFormat: (v) => v.toFixed(1), yFormat: (v) => v.toFixed(1),
    width: 760, height: 440,
  }));
  out.append(el("div", { class: "table-wrap" }, el("table", { id: "compare-table" },
    el("caption", {}, "Mean over seeds at each selected point, in %. ⚠ collapsed: that many "
      + "seeds answer one class for ≥ 95% of the set (not robustness)."),
    el("thead", {}, el("tr", {}, ["Job", "Sparsity", "Seeds", `${idSet} %`, `${oodSet} %`]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map(({ job, group, collapsed }) => el("tr", {},
      el("td", {}, el("a", { href: jobUrl(job.id) }, label(job))),
      el("td", {}, group.stage === "dense" ? "dense" : fmtSparsity(group.sparsity)),
      el("td", {}, group.seeds.join(", ")),
      metricCell(group.sets[idSet], collapsed.id),
      metricCell(group.sets[oodSet], collapsed.ood)))))));
}

async function render() {
  const page = clear(app());
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  try {
    const [finished, others] = await Promise.all([
      api("/jobs?status=succeeded&limit=100"),
      api("/jobs?status=running&status=cancelling&limit=100"),
    ]);
    jobs = [...finished.data, ...others.data];
  } catch (error) {
    page.append(errorNotice(error));
    return;
  }
  const wanted = new Set(chosenFromUrl());
  const list = el("fieldset", { class: "job-picker" },
    el("legend", {}, `Jobs (succeeded and running; up to ${MAX_JOBS})`),
    jobs.length ? jobs.map((job) => el("label", { class: "pick" },
      el("input", { type: "checkbox", name: "job", value: job.id, checked: wanted.has(job.id) }),
      el("span", { class: "pick-text" }, el("span", { class: "pick-name" }, label(job)),
        el("span", { class: "muted small" }, statusBadge(job.status), ` ${fmtTime(job.created_at)}`))))
      : el("p", { class: "muted" }, "No succeeded or running jobs yet."));
  list.addEventListener("change", (event) => {
    const boxes = chosen();
    if (boxes.length > MAX_JOBS) event.target.checked = false;
    draw();
  });
  const controls = el("div", { class: "toolbar" },
    el("label", { for: "id-set" }, "ID set "), el("select", { id: "id-set", onchange: draw }),
    el("label", { for: "ood-set" }, "OOD set "), el("select", { id: "ood-set", onchange: draw }));
  page.append(el("div", { class: "compare" },
    list,
    el("div", { class: "compare-main" }, controls, el("div", { id: "comparison" }))));
  draw();
}

onKey(render);
