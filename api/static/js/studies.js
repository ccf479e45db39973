// The studies page: this key's studies with their status from the children, and a way to
// submit one (paste the study JSON; the API's 422 names the axis, row or field).

import {
  ApiError, TERMINAL, api, app, clear, el, errorNotice, fmtTime, getKey, needKey, notice, onKey,
  root, statusBadge, studyProgress,
} from "./core.js";

const REFRESH_MS = 3000;
let timer = null;
let loading = false;

// A small study to start from: two losses on the bundled data, two seeds.
const EXAMPLE = {
  name: "MNLI · CE vs PoE · mask training 50%",
  base: {
    task: "mnli",
    data: { max_train_examples: 2000, max_eval_examples: 600 },
    pruning: { method: "mask_training", sparsities: [0.5], init: "soft" },
    training: { epochs: 1, eval_every: 40, seeds: [1, 2] },
  },
  axes: [{ path: "debias.loss", values: ["none", "poe"] }],
  rows: [],
};

export function studyUrl(id) {
  return `${root}/web/studies/${encodeURIComponent(id)}`;
}

function doneText(study) {
  const finished = ["succeeded", "failed", "cancelled"]
    .reduce((n, s) => n + (study.counts?.[s] || 0), 0);
  return `${finished} of ${study.jobs}`;
}

async function cancel(study, button) {
  if (!window.confirm(`Cancel every unfinished job of ${study.name || study.id}?`)) return;
  button.disabled = true;
  try {
    await api(`/studies/${encodeURIComponent(study.id)}/cancel`, { method: "POST" });
  } catch (error) {
    document.getElementById("studies-status").replaceChildren(errorNotice(error));
  }
  await load();
}

function row(study) {
  const button = TERMINAL.has(study.status) ? null : el("button", {
    type: "button", class: "secondary small", "data-cancel": study.id,
    "aria-label": `Cancel study ${study.name || study.id}`,
  }, "Cancel");
  button?.addEventListener("click", () => cancel(study, button));
  return el("tr", { "data-study": study.id, "data-status": study.status },
    el("td", {}, el("a", { href: studyUrl(study.id) }, study.name || study.id.slice(0, 8)),
      el("div", { class: "muted mono small" }, study.id)),
    el("td", {}, statusBadge(study.status)),
    el("td", { class: "progress-cell" }, studyProgress(study) || doneText(study)),
    el("td", {}, fmtTime(study.created_at)),
    el("td", {}, button));
}

async function load() {
  if (loading || !getKey()) return;
  loading = true;
  const status = document.getElementById("studies-status");
  try {
    const page = await api("/studies?limit=100");
    const body = clear(document.getElementById("studies-body"));
    for (const study of page.data) body.append(row(study));
    if (!page.data.length) {
      body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" },
        "No studies yet: submit one below.")));
    }
    document.getElementById("studies-count").textContent =
      `${page.data.length} of ${page.count} stud${page.count === 1 ? "y" : "ies"}`;
    clear(status);
    clearTimeout(timer);
    if (page.data.some((s) => !TERMINAL.has(s.status))) timer = setTimeout(load, REFRESH_MS);
  } catch (error) {
    clear(status).append(errorNotice(error));
  } finally {
    loading = false;
  }
}

function errorList(error) {
  const items = Array.isArray(error.body?.detail) ? error.body.detail : [];
  if (!items.length) return errorNotice(error);
  return el("div", { class: "notice error", role: "alert", id: "study-errors" },
    `The service refused the study (${error.status}); nothing was queued:`,
    el("ul", {}, items.map((item) => {
      const field = (item.loc || []).filter((part) => part !== "body").join(".") || "(study)";
      return el("li", { "data-field": field }, el("code", {}, field), `: ${item.msg}`);
    })));
}

async function submit(event) {
  event.preventDefault();
  const box = clear(document.getElementById("submit-status"));
  const text = document.getElementById("study-json").value;
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    box.append(notice(`Not JSON: ${error.message}`, "error"));
    return;
  }
  const button = document.getElementById("submit-study");
  button.disabled = true;
  try {
    const study = await api("/studies", { method: "POST", body });
    window.location.assign(studyUrl(study.id));
  } catch (error) {
    box.append(error instanceof ApiError && error.status === 422 ? errorList(error)
      : errorNotice(error));
  } finally {
    button.disabled = false;
  }
}

function render() {
  clearTimeout(timer);
  const page = clear(app());
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  const form = el("form", { id: "study-form", class: "panel" },
    el("h2", {}, "Submit a study"),
    el("p", { class: "muted small" },
      "A base job spec, up to 4 axes (each a spec field path with its values; every combination "
      + "runs), extra rows (overrides of the base) and dense references. Seeds and sparsities stay "
      + "inside each job. At most 64 jobs per study, references included. Format: README, "
      + "Studies."),
    el("label", { for: "study-json" }, "Study JSON"),
    el("textarea", { id: "study-json", class: "json", rows: "16", spellcheck: "false" },
      JSON.stringify(EXAMPLE, null, 2)),
    el("div", { class: "toolbar" },
      el("button", { type: "submit", id: "submit-study" }, "Submit study")),
    el("div", { id: "submit-status", "aria-live": "polite" }));
  form.addEventListener("submit", submit);
  page.append(
    el("div", { class: "toolbar" },
      el("span", { id: "studies-count", class: "muted", role: "status" })),
    el("div", { id: "studies-status" }),
    el("div", { class: "table-wrap" },
      el("table", { class: "jobs", id: "studies-table" },
        el("caption", { class: "visually-hidden" }, "Your studies, newest first"),
        el("thead", {}, el("tr", {},
          ["Study", "Status", "Progress", "Created", ""].map(
            (h) => el("th", { scope: "col" }, h)))),
        el("tbody", { id: "studies-body" },
          el("tr", {}, el("td", { colspan: "5" }, "Loading…"))))),
    form);
  load();
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") load();
});
onKey(render);
