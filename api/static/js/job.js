// The job page: live status and progress from the event stream, the evaluation curves, the
// sparsity-vs-accuracy plot, HANS by heuristic, where each mask moved from magnitude pruning
// (per matrix type and per layer), the artifacts, the event log.

import { chart } from "./charts.js";
import {
  ApiError, TERMINAL, UUID_RE, api, app, clear, downloadArtifact, el, errorNotice,
  fmtDuration, fmtPct, fmtSize, fmtSparsity, fmtTime, followEvents, getKey, needKey, notice,
  onKey, root, statusBadge, studyUrl,
} from "./core.js";
import {
  evalSets, headline, selectedBySparsity, setNames, sparsityOf, trainLoss,
} from "./metrics.js";

const MAX_CURVES = 24;
const MAX_LOG = 500;
const METRICS_REFRESH_MS = 5000;
const MATRIX_TYPES = ["Q", "K", "V", "AO", "I", "O", "pooler", "classifier", "other"];

const jobId = decodeURIComponent(window.location.pathname.split("/").filter(Boolean).pop() || "");
let job = null;
let stream = null; // AbortController of the event stream
let metricsTimer = null;
let refreshTimer = null;
let stageDetail = null;

// --- the summary ---------------------------------------------------------------------------

function stat(label, value, id) {
  return el("div", { class: "stat" }, el("dt", {}, label), el("dd", { id }, value));
}

// Seconds since the job started running, until it finished (or now): ticks on the page.
function elapsedS(j) {
  if (!j?.started_at) return null;
  const end = j.finished_at ? Date.parse(j.finished_at) : Date.now();
  return Math.max(0, (end - Date.parse(j.started_at)) / 1000);
}

// What the job is doing now, in words: the stage, its detail, and its step or evaluation.
function stageText(j) {
  if (TERMINAL.has(j.status)) {
    const took = fmtDuration(elapsedS(j));
    if (j.status === "failed" && j.stage) return `during ${j.stage}${took ? ` · after ${took}` : ""}`;
    return took ? `took ${took}` : "";
  }
  if (!j.stage) return "";
  const parts = [j.stage];
  if (stageDetail) parts.push(stageDetail);
  const p = j.progress || {};
  if (p.phase === "evaluate") parts.push("evaluating");
  else if (p.total) parts.push(`step ${p.step} of ${p.total} (${Math.round(100 * (p.fraction || 0))}%)`);
  return parts.join(" · ");
}

function renderSummary() {
  const box = document.getElementById("job-summary");
  if (!box || !job) return;
  document.getElementById("page-heading").textContent = job.name || "Job";
  document.title = `${job.name || job.id} · SRNet`;
  // The bar is the whole job's: stages weighed by their expected work.
  const fraction = job.progress?.job_fraction;
  const pct = fraction === null || fraction === undefined ? null : Math.round(100 * fraction);
  const moving = job.status === "running" || job.status === "cancelling";
  const bar = el("div", { class: "bar" },
    pct === null
      ? el("progress", { "aria-label": "progress unknown", id: "job-progress" })
      : el("progress", { max: "100", value: String(pct), id: "job-progress", "aria-label": `${pct}% of the job` }),
    el("span", { class: "bar-text" }, pct === null ? "" : `${pct}% of the job`));
  clear(box).append(...[
    el("div", { class: "summary-head" },
      el("span", { id: "job-status", "data-status": job.status }, statusBadge(job.status)),
      el("span", { class: "stage", id: "job-stage" }, stageText(job)),
      job.status === "queued" || job.status === "running"
        ? el("button", { type: "button", class: "secondary small", id: "cancel-job", onclick: cancelJob },
          "Cancel job")
        : null),
    moving || job.status === "queued" ? bar : null,
    // A study's child links back to its study (issue 19 item 8).
    job.study_id
      ? el("p", { class: "study-link", id: "job-study" }, "Part of ",
        el("a", { href: studyUrl(job.study_id) }, "its study"),
        job.study_key ? ` · setting ${job.study_key}` : "")
      : null,
    // A queued job's place and why it waits (owners take turns; per-owner running limit).
    job.status === "queued" && job.queue_place
      ? el("p", { class: "notice", id: "job-queue-place" },
        `Place ${job.queue_place.position} in the ${job.queue} queue: ${job.queue_place.reason}`)
      : null,
    el("dl", { class: "stats" },
      stat("Elapsed", fmtDuration(elapsedS(job)) || "–", "job-elapsed"),
      stat("ETA (job)", moving ? fmtDuration(job.job_eta_s) || "–" : "–", "job-eta-job"),
      stat("ETA (stage)", moving ? fmtDuration(job.eta_s) || "–" : "–", "job-eta"),
      stat("Examples/s", moving && job.examples_per_s ? Math.round(job.examples_per_s).toLocaleString() : "–", "job-speed"),
      stat("Attempt", `${job.attempt} of ${job.max_attempts}`),
      stat("Queue", job.queue),
      stat("Created", fmtTime(job.created_at)),
      stat("Started", fmtTime(job.started_at) || "–"),
      stat("Finished", fmtTime(job.finished_at) || "–")),
    job.error ? el("p", { class: "notice error", role: "alert", id: "job-error" }, job.error) : null,
    el("p", { class: "mono small muted" }, `id ${job.id}`),
  ].filter(Boolean));
}

// The elapsed time of a running job moves on between progress messages.
setInterval(() => {
  const node = document.getElementById("job-elapsed");
  if (node && job && !TERMINAL.has(job.status)) node.textContent = fmtDuration(elapsedS(job)) || "–";
}, 1000);

async function cancelJob() {
  if (!window.confirm("Cancel this job?")) return;
  try {
    job = { ...job, ...(await api(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" })) };
    renderSummary();
  } catch (error) {
    document.getElementById("job-messages").replaceChildren(errorNotice(error));
  }
}

function setConnection(state) {
  const node = document.getElementById("connection");
  if (!node) return;
  const text = { live: "● live", reconnecting: "reconnecting…", ended: "finished", off: "" }[state];
  node.textContent = text ?? state;
  node.dataset.state = state;
}

// --- tags and note (the lab's own; PATCH /jobs/{id}) ----------------------------------------

function renderAnnotations() {
  const box = document.getElementById("annotations");
  if (!box || !job) return;
  const tags = el("input", { id: "job-tags", type: "text", spellcheck: "false",
    value: (job.tags || []).join(" "), placeholder: "baseline paper-table-2",
    "aria-describedby": "annotate-help" });
  const note = el("textarea", { id: "job-note", maxlength: "4000", placeholder: "What this run is for, what you saw" },
    job.note || "");
  const message = el("span", { id: "annotate-state", class: "dl-state", role: "status" });
  const form = el("form", { id: "annotate-form", class: "annotations" },
    el("p", { class: "current-tags", id: "current-tags" }, (job.tags || []).length
      ? job.tags.map((tag) => el("a", { class: "tag", href: `${root}/web/runs?tag=${encodeURIComponent(tag)}` }, tag))
      : el("span", { class: "muted" }, "No tags.")),
    el("label", { for: "job-tags" }, "Tags (separated by spaces)"), tags,
    el("p", { id: "annotate-help", class: "muted small" },
      "Up to 20 tags of letters, digits and _ . : + / -; they filter the runs table."),
    el("label", { for: "job-note" }, "Note"), note,
    el("p", {}, el("button", { type: "submit", id: "save-annotations" }, "Save"), " ", message));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "saving…";
    message.dataset.state = "";
    try {
      const body = { tags: tags.value.split(/[\s,]+/).filter(Boolean), note: note.value.trim() };
      const fresh = await api(`/jobs/${encodeURIComponent(jobId)}`, { method: "PATCH", body });
      job = { ...job, tags: fresh.tags, note: fresh.note };
      renderAnnotations();
      document.getElementById("annotate-state").textContent = "saved";
      document.getElementById("annotate-state").dataset.state = "saved";
    } catch (error) {
      message.textContent = error.detail || String(error);
      message.dataset.state = "error";
    }
  });
  clear(box).append(form);
}

// --- the log -------------------------------------------------------------------------------

// The log shows the kind beside the message: "stage" + "stage dense (seed 1)" would read
// "stage stage dense"; the message loses its leading kind word.
function withoutKind(kind, message) {
  const lead = new RegExp(`^${String(kind).replace(/[^a-z_]/gi, "")}:?\\s+`, "i");
  return message.replace(lead, "");
}

function appendEvent(event) {
  const list = document.getElementById("event-log");
  if (!list) return;
  if (event.kind === "stage" && event.data && typeof event.data === "object") {
    stageDetail = event.data.detail || null;
  }
  list.append(el("li", { "data-kind": event.kind },
    el("time", { datetime: event.at }, fmtTime(event.at)), " ",
    el("span", { class: `kind kind-${String(event.kind).replace(/[^a-z]/g, "")}` }, event.kind), " ",
    withoutKind(event.kind, event.message || "")));
  while (list.children.length > MAX_LOG) list.firstChild.remove();
}

// --- metrics -------------------------------------------------------------------------------

// Values in point titles and tables: whole numbers as they are, others with one decimal.
const pct = (v) => (Number.isInteger(Math.round(v * 1000) / 1000) ? String(Math.round(v))
  : v.toFixed(1));

function curveTitle(curve) {
  const parts = [curve.stage];
  if (curve.seed !== null && curve.seed !== undefined) parts.push(`seed ${curve.seed}`);
  const sparsity = curve.sparsity ?? (curve.points[0] ? sparsityOf(curve.points[0]) : null);
  if (sparsity !== null && sparsity !== undefined) parts.push(`sparsity ${fmtSparsity(sparsity)}`);
  return parts.join(" · ");
}

function curveChart(curve) {
  const names = setNames(curve.points);
  const series = names.map((name) => ({
    name: name === "dev" ? "dev (ID)" : name,
    points: curve.points
      .map((p) => ({
        x: p.step,
        y: 100 * (headline(evalSets(p)[name]) ?? Number.NaN),
        highlight: p.selected,
        note: p.selected ? "selected" : "",
      }))
      .filter((p) => Number.isFinite(p.y)),
  }));
  return chart({
    title: curveTitle(curve), xLabel: "step", yLabel: "accuracy %", series,
    xFormat: (v) => String(v), yFormat: pct, width: 420, height: 250,
  });
}

// The training loss each evaluation recorded (the trainer's mean since the one before): one
// line per curve, so a diverging or flat run shows at a glance.
function renderLoss(curves) {
  const box = document.getElementById("loss");
  if (!box) return;
  const series = curves.slice(-MAX_CURVES).map((curve) => ({
    name: curveTitle(curve),
    points: curve.points
      .filter((p) => trainLoss(p) !== null)
      .map((p) => ({ x: p.step, y: trainLoss(p) })),
  })).filter((s) => s.points.length);
  clear(box).append(series.length
    ? chart({
      title: "Training loss by step", xLabel: "step", yLabel: "loss", series,
      xFormat: (v) => String(v), yFormat: (v) => v.toFixed(4), width: 760, height: 300,
    })
    : notice(TERMINAL.has(job?.status) ? "No training loss was recorded (nothing was trained)."
      : "The training loss appears with the first evaluation."));
}

function sparsityChart(selected) {
  const groups = selectedBySparsity(selected);
  const names = setNames(selected);
  const series = names.map((name) => ({
    name: name === "dev" ? "dev (ID)" : name,
    points: groups
      .filter((g) => typeof g.sets[name] === "number")
      .map((g) => ({
        x: 100 * g.sparsity, y: 100 * g.sets[name], label: fmtSparsity(g.sparsity),
        note: `${g.stage}, ${g.seeds.length} seed${g.seeds.length === 1 ? "" : "s"}`,
      })),
  }));
  return chart({
    title: "Sparsity vs accuracy (selected point per mask, mean over seeds)",
    xLabel: "sparsity %", yLabel: "accuracy %", series, xFormat: pct, yFormat: pct,
    width: 620, height: 320,
  });
}

/** A set's headline number; a collapsed model (one class for ≥ 95% of the set) is flagged,
 * greyed, and never read as a robustness gain. */
function setCell(metrics) {
  if (!metrics?.collapsed) return el("td", { class: "num" }, fmtPct(headline(metrics)));
  const share = typeof metrics.majority_share === "number"
    ? `${Math.round(100 * metrics.majority_share)}%` : "almost all";
  const label = metrics.majority_label ? ` "${metrics.majority_label}"` : "";
  return el("td", {
    class: "num collapsed", "data-collapsed": "true",
    title: `collapsed: answers${label} for ${share} of this set`,
  }, fmtPct(headline(metrics)), el("span", { class: "flag" }, ` ⚠ collapsed (${share}${label})`));
}

function selectedTable(selected) {
  const names = setNames(selected);
  const rows = [...selected]
    .sort((a, b) => (a.seed ?? 0) - (b.seed ?? 0) || (sparsityOf(a) ?? 0) - (sparsityOf(b) ?? 0))
    .map((p) => {
      const sets = evalSets(p);
      return el("tr", {},
        el("td", {}, p.stage), el("td", {}, p.seed ?? "–"), el("td", {}, fmtSparsity(sparsityOf(p))),
        el("td", {}, p.step),
        names.map((name) => setCell(sets[name])));
    });
  return el("table", { id: "selected-table" },
    el("caption", {}, "Selected points (accuracy %, F1 % where there is no accuracy; ⚠ collapsed: "
      + "one class for ≥ 95% of the set, not a robustness gain)"),
    el("thead", {}, el("tr", {},
      ["Stage", "Seed", "Sparsity", "Step", ...names.map((n) => (n === "dev" ? "dev (ID)" : n))]
        .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

function hansTable(selected) {
  const withHans = selected.filter((p) => evalSets(p).hans?.heuristics);
  if (!withHans.length) return null;
  const heuristics = [];
  for (const p of withHans) {
    for (const name of Object.keys(evalSets(p).hans.heuristics)) {
      if (!heuristics.includes(name)) heuristics.push(name);
    }
  }
  const rows = withHans
    .sort((a, b) => (a.seed ?? 0) - (b.seed ?? 0) || (sparsityOf(a) ?? 0) - (sparsityOf(b) ?? 0))
    .map((p) => el("tr", {},
      el("td", {}, p.stage), el("td", {}, p.seed ?? "–"), el("td", {}, fmtSparsity(sparsityOf(p))),
      el("td", { class: "num" }, fmtPct(evalSets(p).hans.accuracy)),
      heuristics.flatMap((h) => {
        const split = evalSets(p).hans.heuristics[h] || {};
        return [el("td", { class: "num" }, fmtPct(split.entailed)),
          el("td", { class: "num weak" }, fmtPct(split.non_entailed))];
      })));
  return el("table", { id: "hans-table", class: "hans" },
    el("caption", {}, "HANS accuracy % by heuristic, entailed and non-entailed gold labels "
      + "(non-entailed is where biased models fail)"),
    el("thead", {},
      el("tr", {},
        el("th", { scope: "col", rowspan: "2" }, "Stage"),
        el("th", { scope: "col", rowspan: "2" }, "Seed"),
        el("th", { scope: "col", rowspan: "2" }, "Sparsity"),
        el("th", { scope: "col", rowspan: "2" }, "HANS"),
        heuristics.map((h) => el("th", { scope: "colgroup", colspan: "2" }, h.replace(/_/g, " ")))),
      el("tr", {}, heuristics.flatMap(() => [
        el("th", { scope: "col" }, "entailed"), el("th", { scope: "col" }, "non-ent."),
      ]))),
    el("tbody", {}, rows));
}

/** Share of mask entries that differ from one-shot magnitude pruning, per matrix type (Q, K, V,
 * attention output, intermediate, output, pooler, classifier) and per encoder layer, one row per
 * selected mask; the share flipped from the search's own initial mask in the title. */
function movementTable(selected, key, id, caption) {
  const withMovement = selected.filter((p) => p.payload?.movement?.[key]);
  if (!withMovement.length) return null;
  const groups = [];
  for (const p of withMovement) {
    for (const name of Object.keys(p.payload.movement[key])) {
      if (!groups.includes(name)) groups.push(name);
    }
  }
  // JSON keeps no order: layers by index, types as srcore.pruning.movement.TYPE_ORDER
  const typeRank = (g) => (MATRIX_TYPES.includes(g) ? MATRIX_TYPES.indexOf(g) : MATRIX_TYPES.length);
  const rank = (g) => (key === "by_layer" ? Number(g) : typeRank(g));
  groups.sort((a, b) => rank(a) - rank(b));
  const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(2)}` : "–");
  const rows = withMovement
    .sort((a, b) => (a.seed ?? 0) - (b.seed ?? 0) || (sparsityOf(a) ?? 0) - (sparsityOf(b) ?? 0))
    .map((p) => el("tr", {},
      el("td", {}, p.seed ?? "–"), el("td", {}, fmtSparsity(sparsityOf(p))),
      el("td", { class: "num" }, pct(p.payload.movement.differ_fraction)),
      groups.map((name) => {
        const g = p.payload.movement[key][name];
        return el("td", {
          class: "num", "data-group": name,
          title: g && typeof g.flipped_fraction === "number"
            ? `${pct(g.flipped_fraction)}% flipped from the initial mask` : "",
        }, pct(g?.differ_fraction));
      })));
  const head = key === "by_layer" ? groups.map((g) => `layer ${g}`) : groups;
  return el("table", { id, class: "movement" },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ["Seed", "Sparsity", "all", ...head]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
}

function renderMovement(selected) {
  const box = clear(document.getElementById("movement"));
  const byType = movementTable(selected, "by_type", "movement-type-table",
    "% of mask entries that differ from one-shot magnitude pruning, per matrix type "
    + "(Q, K, V, AO attention output, I intermediate, O output)");
  const byLayer = movementTable(selected, "by_layer", "movement-layer-table",
    "% of mask entries that differ from one-shot magnitude pruning, per encoder layer");
  if (!byType) {
    box.append(notice(selected.some((p) => p.payload?.movement)
      ? "This job recorded only the total movement (it ran before the breakdown existed)."
      : "No movement recorded: it comes with a selected mask."));
    return;
  }
  box.append(el("div", { class: "table-wrap" }, byType),
    byLayer ? el("div", { class: "table-wrap" }, byLayer) : null);
}

function renderMetrics(metrics) {
  renderLoss(metrics.curves);
  const curvesBox = clear(document.getElementById("curves"));
  const sparsityBox = clear(document.getElementById("sparsity"));
  const hansBox = clear(document.getElementById("hans"));
  const curves = metrics.curves.filter((c) => c.points.length);
  if (!curves.length) {
    curvesBox.append(notice(TERMINAL.has(job?.status) ? "No evaluations were recorded."
      : "No evaluation yet: curves appear after the first one."));
  } else {
    const grid = el("div", { class: "chart-grid" }, curves.slice(-MAX_CURVES).map(curveChart));
    curvesBox.append(
      el("p", { class: "muted small" }, "One chart per stage, seed and sparsity; the ringed "
        + "point is the one selected (best ID accuracy late in training)."),
      grid);
    if (curves.length > MAX_CURVES) {
      curvesBox.append(notice(`Showing the last ${MAX_CURVES} of ${curves.length} curves.`));
    }
  }
  const selected = metrics.selected;
  renderMovement(selected);
  if (!selected.length) {
    const over = TERMINAL.has(job?.status);
    sparsityBox.append(notice(over ? "No mask was selected: the job ended before one was chosen."
      : "No selected points yet: they appear when a mask is chosen."));
    hansBox.append(notice(over ? "No HANS results: no mask was selected."
      : "HANS results appear with the selected points of an MNLI job."));
    return;
  }
  sparsityBox.append(el("div", { class: "side-by-side" },
    sparsityChart(selected), el("div", { class: "table-wrap" }, selectedTable(selected))));
  const hans = hansTable(selected);
  hansBox.append(hans ? el("div", { class: "table-wrap" }, hans)
    : notice("No HANS evaluation in this job."));
}

// --- artifacts -----------------------------------------------------------------------------

function renderArtifacts(list) {
  const box = clear(document.getElementById("artifacts"));
  if (!list.data.length) {
    box.append(notice(TERMINAL.has(job?.status) ? "This job stored no artifacts."
      : "Artifacts appear here as the job stores them."));
    return;
  }
  const rows = list.data.map((artifact) => {
    const state = el("span", { class: "dl-state", role: "status" });
    const button = el("button", {
      type: "button", class: "small", "data-artifact": artifact.id,
      "aria-label": `Download ${artifact.name}`,
    }, "Download");
    button.addEventListener("click", async () => {
      button.disabled = true;
      state.textContent = "downloading…";
      try {
        const result = await downloadArtifact(jobId, artifact);
        state.textContent = result === "verified" ? "saved · sha256 verified" : "saved";
        state.dataset.state = result;
      } catch (error) {
        state.textContent = error.detail || String(error);
        state.dataset.state = "error";
      } finally {
        button.disabled = false;
      }
    });
    return el("tr", { "data-artifact-row": artifact.id },
      el("td", {}, artifact.name), el("td", {}, artifact.kind),
      el("td", {}, artifact.seed ?? "–"),
      el("td", {}, artifact.sparsity === null ? "–" : fmtSparsity(artifact.sparsity)),
      el("td", { class: "num nowrap" }, fmtSize(artifact.size)),
      el("td", {}, el("code", { class: "sha" }, artifact.sha256)),
      el("td", {}, button, " ", state));
  });
  box.append(el("div", { class: "table-wrap" }, el("table", { id: "artifacts-table" },
    el("caption", { class: "visually-hidden" }, "Artifacts"),
    el("thead", {}, el("tr", {}, ["Name", "Kind", "Seed", "Sparsity", "Size", "sha256", ""]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows))));
}

// --- loading and live updates ----------------------------------------------------------------

async function refreshMetrics() {
  try {
    renderMetrics(await api(`/jobs/${encodeURIComponent(jobId)}/metrics`));
  } catch (error) {
    clear(document.getElementById("curves")).append(errorNotice(error));
  }
}

async function refreshArtifacts() {
  try {
    renderArtifacts(await api(`/jobs/${encodeURIComponent(jobId)}/artifacts`));
  } catch (error) {
    clear(document.getElementById("artifacts")).append(errorNotice(error));
  }
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { refreshMetrics(); refreshArtifacts(); }, 300);
}

function pollMetricsWhileRunning() {
  clearTimeout(metricsTimer);
  if (job && !TERMINAL.has(job.status)) {
    metricsTimer = setTimeout(async () => {
      await refreshMetrics();
      pollMetricsWhileRunning();
    }, METRICS_REFRESH_MS);
  }
}

function onMessage(message) {
  if (message.event === "progress") {
    const before = job?.status;
    job = { ...job, ...message.data };
    renderSummary();
    if (before !== job.status) scheduleRefresh();
  } else if (message.event === "event") {
    appendEvent(message.data);
    if (["artifact", "status", "stage"].includes(message.data.kind)) scheduleRefresh();
    if (message.data.kind === "stage") renderSummary();
  } else if (message.event === "end") {
    clearTimeout(metricsTimer);
    api(`/jobs/${encodeURIComponent(jobId)}`).then((fresh) => {
      job = fresh;
      renderSummary();
    }).catch(() => {});
    scheduleRefresh();
  }
}

async function live() {
  stream?.abort();
  stream = new AbortController();
  try {
    await followEvents(jobId, { onMessage, onState: setConnection, signal: stream.signal });
  } catch (error) {
    setConnection("off");
    document.getElementById("job-messages")?.replaceChildren(errorNotice(error));
  }
}

function section(id, title, ...children) {
  return el("section", { class: "panel", "aria-labelledby": `${id}-heading` },
    el("h2", { id: `${id}-heading` }, title), ...children);
}

async function render() {
  stream?.abort();
  clearTimeout(metricsTimer);
  const page = clear(app());
  if (!UUID_RE.test(jobId)) {
    page.append(notice("This is not a job address.", "error"));
    return;
  }
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  try {
    job = await api(`/jobs/${encodeURIComponent(jobId)}`);
  } catch (error) {
    page.append(errorNotice(error instanceof ApiError ? error : new ApiError(0, String(error))));
    return;
  }
  stageDetail = null;
  page.append(
    el("p", { class: "crumbs" }, el("a", { href: `${root}/web/jobs` }, "← All jobs"), " ",
      el("a", { href: `${root}/web/compare?jobs=${encodeURIComponent(jobId)}` }, "Compare with other jobs"),
      " ", el("a", { href: `${root}/web/runs` }, "All runs"),
      " ",
      el("a", { href: `${root}/web/submit?from=${encodeURIComponent(jobId)}`, id: "clone-job",
        class: "button secondary small" }, "Clone into the form"),
      el("span", { id: "connection", class: "connection", role: "status" })),
    el("div", { id: "job-messages" }),
    section("summary", "Status", el("div", { id: "job-summary", class: "summary" })),
    section("annotations", "Tags and note", el("div", { id: "annotations" })),
    section("curves", "Evaluation curves (ID dev and OOD sets vs step)",
      el("div", { id: "curves" }, notice("Loading…"))),
    section("loss", "Training loss (mean since the previous evaluation)", el("div", { id: "loss" })),
    section("sparsity", "Sparsity vs accuracy", el("div", { id: "sparsity" })),
    section("hans", "HANS by heuristic", el("div", { id: "hans" })),
    section("movement", "Where the mask moved (vs one-shot magnitude pruning)",
      el("div", { id: "movement" })),
    section("artifacts", "Artifacts", el("div", { id: "artifacts" }, notice("Loading…"))),
    section("log", "Event log", el("ol", { id: "event-log", class: "log" })),
    el("details", { class: "panel" }, el("summary", {}, "Spec"),
      el("pre", { id: "job-spec" }, JSON.stringify(job.spec, null, 2))));
  renderSummary();
  renderAnnotations();
  await Promise.all([refreshMetrics(), refreshArtifacts()]);
  pollMetricsWhileRunning();
  live();
}

window.addEventListener("pagehide", () => stream?.abort());
onKey(render);
