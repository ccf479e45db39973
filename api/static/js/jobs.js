// The jobs page: this key's jobs with status, stage, progress and ETA; filter; cancel.
// Refreshes every few seconds while a listed job is still moving.

import {
  TERMINAL, api, app, clear, el, errorNotice, fmtDuration, fmtTime, getKey, jobUrl, needKey,
  onKey, progressCell, root, statusBadge,
} from "./core.js";

const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
const REFRESH_MS = 3000;
let shown = 25;
let timer = null;
let loading = false;

function filterValue() {
  return document.getElementById("status-filter")?.value || "";
}

async function cancel(job, button) {
  if (!window.confirm(`Cancel job ${job.name || job.id}?`)) return;
  button.disabled = true;
  try {
    await api(`/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
  } catch (error) {
    document.getElementById("jobs-status").replaceChildren(errorNotice(error));
  }
  await load();
}

function row(job) {
  const cancellable = job.status === "queued" || job.status === "running";
  const button = cancellable
    ? el("button", {
      type: "button", class: "secondary small", "data-cancel": job.id,
      "aria-label": `Cancel job ${job.name || job.id}`,
    }, "Cancel")
    : null;
  button?.addEventListener("click", () => cancel(job, button));
  return el("tr", { "data-job": job.id, "data-status": job.status },
    el("td", {}, el("a", { href: jobUrl(job.id) }, job.name || job.id.slice(0, 8)),
      el("div", { class: "muted mono small" }, job.id)),
    el("td", {}, statusBadge(job.status)),
    el("td", {}, job.stage || "–"),
    el("td", {}, progressCell(job)),
    el("td", {}, job.status === "running" ? fmtDuration(job.eta_s) || "–" : "–"),
    el("td", {}, fmtTime(job.created_at)),
    el("td", {}, button));
}

async function load() {
  if (loading || !getKey()) return;
  loading = true;
  const status = document.getElementById("jobs-status");
  const params = new URLSearchParams({ limit: String(Math.min(100, shown)) });
  if (filterValue()) params.append("status", filterValue());
  try {
    const page = await api(`/jobs?${params}`);
    const body = clear(document.getElementById("jobs-body"));
    for (const job of page.data) body.append(row(job));
    if (!page.data.length) {
      body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" },
        filterValue() ? `No ${filterValue()} jobs.` : "No jobs yet: submit one.")));
    }
    document.getElementById("jobs-count").textContent =
      `${page.data.length} of ${page.count} job${page.count === 1 ? "" : "s"}`;
    document.getElementById("more").hidden = !page.next_cursor || shown >= 100;
    clear(status);
    clearTimeout(timer);
    if (page.data.some((job) => !TERMINAL.has(job.status))) timer = setTimeout(load, REFRESH_MS);
  } catch (error) {
    clear(status).append(errorNotice(error));
  } finally {
    loading = false;
  }
}

function render() {
  clearTimeout(timer);
  const page = clear(app());
  if (!getKey()) {
    page.append(needKey());
    return;
  }
  const filter = el("select", { id: "status-filter" },
    el("option", { value: "" }, "all"),
    STATUSES.map((s) => el("option", { value: s }, s)));
  filter.addEventListener("change", () => { shown = 25; load(); });
  const more = el("button", { type: "button", id: "more", class: "secondary", hidden: true },
    "Show more");
  more.addEventListener("click", () => { shown += 25; load(); });
  page.append(
    el("div", { class: "toolbar" },
      el("label", { for: "status-filter" }, "Status "), filter,
      el("span", { id: "jobs-count", class: "muted", role: "status" }),
      el("a", { class: "button", href: `${root}/web/submit` }, "Submit a job")),
    el("div", { id: "jobs-status" }),
    el("div", { class: "table-wrap" },
      el("table", { class: "jobs", id: "jobs-table" },
        el("caption", { class: "visually-hidden" }, "Your jobs, newest first"),
        el("thead", {}, el("tr", {},
          ["Job", "Status", "Stage", "Progress", "ETA", "Created", ""].map(
            (h) => el("th", { scope: "col" }, h)))),
        el("tbody", { id: "jobs-body" }, el("tr", {}, el("td", { colspan: "7" }, "Loading…"))))),
    more);
  load();
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") load();
});
onKey(render);
