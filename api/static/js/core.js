// Shared by every page: the API key (sessionStorage only), API calls, the event stream read
// with fetch() (EventSource cannot send the Authorization header), downloads, and a small DOM
// builder that only ever creates text nodes, so data is never parsed as HTML.

const KEY_STORAGE = "srnet.apiKey";
export const root = (document.querySelector('meta[name="srnet-root"]')?.content || "")
  .replace(/\/$/, "");

// --- the API key ---------------------------------------------------------------------------

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

function storeKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
  window.dispatchEvent(new CustomEvent("srnet:key"));
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new CustomEvent("srnet:key"));
}

// --- DOM -------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      node.textContent = String(value);
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** el("a", {href, class}, "text", otherNode): children are nodes or text, never HTML. */
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export const app = () => document.getElementById("app");

export function notice(text, kind = "info") {
  return el("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// --- formatting ----------------------------------------------------------------------------

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  let s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h) return `${h} h ${String(m).padStart(2, "0")} min`;
  if (m) return `${m} min ${String(s).padStart(2, "0")} s`;
  return `${s} s`;
}

export function fmtPct(value, digits = 1) {
  return typeof value === "number" && Number.isFinite(value)
    ? `${(100 * value).toFixed(digits)}` : "–";
}

export function fmtSparsity(value) {
  return typeof value === "number" ? `${Math.round(value * 1000) / 10}%` : "–";
}

export function fmtSize(bytes) {
  if (typeof bytes !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function fmtTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${String(status).replace(/[^a-z]/g, "")}` }, status);
}

export function progressCell(job) {
  const fraction = job.progress?.fraction;
  if (fraction === null || fraction === undefined) {
    return el("span", { class: "muted" }, job.progress?.step ? `step ${job.progress.step}` : "–");
  }
  const pct = Math.round(100 * fraction);
  return el("span", { class: "progress-cell" },
    el("progress", { max: "100", value: String(pct), "aria-label": `${pct}%` }),
    ` ${pct}%`);
}

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function jobUrl(id) {
  return `${root}/web/jobs/${encodeURIComponent(id)}`;
}

export function studyUrl(id) {
  return `${root}/web/studies/${encodeURIComponent(id)}`;
}

/** A study's progress as GET /studies gives it: a bar over the whole study (finished
 * children whole, running ones by their own progress) and "n of m jobs done · elapsed · ETA"
 * (issue 19 item 7). */
export function studyProgressText(study) {
  const p = study.progress;
  if (!p) return "";
  const parts = [`${p.done} of ${p.total} jobs done`, `${Math.round(100 * p.fraction)}%`];
  if (p.running) parts.push(`${p.running} running`);
  if (p.elapsed_s !== null && p.elapsed_s !== undefined) parts.push(`elapsed ${fmtDuration(p.elapsed_s)}`);
  if (!TERMINAL.has(study.status)) {
    parts.push(p.eta_s === null || p.eta_s === undefined ? "ETA unknown yet" : `ETA ${fmtDuration(p.eta_s)}`);
  }
  return parts.join(" · ");
}

export function studyProgress(study, id = null) {
  const p = study.progress;
  if (!p) return null;
  const pct = Math.round(100 * p.fraction);
  return el("div", { class: "bar study-progress", ...(id ? { id } : {}) },
    el("progress", { max: "100", value: String(pct), "aria-label": `${pct}% of the study` }),
    el("span", { class: "bar-text" }, studyProgressText(study)));
}

// --- API calls -----------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

function detailText(body, response) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) {
    return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
  }
  return `${response.status} ${response.statusText}`;
}

function authHeaders(extra = {}) {
  const key = getKey();
  if (!key) throw new ApiError(401, "Enter your API key first (top right).");
  return { Authorization: `Bearer ${key}`, ...extra };
}

export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const init = {
    method,
    headers: authHeaders({ Accept: "application/json", ...headers }),
    signal,
    cache: "no-store",
    credentials: "omit",
  };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(root + path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "The service did not answer. Is it running?");
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("srnet:unauthorized"));
    throw new ApiError(response.status, detailText(data, response), data);
  }
  return response.status === 204 ? null : response.json();
}

/** A public JSON document of this service (no key needed). */
export async function publicJson(path) {
  const response = await fetch(root + path, { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new ApiError(response.status, `${path}: ${response.status}`);
  return response.json();
}

export function errorNotice(error) {
  if (error.status === 401) return notice("The API key is missing or was refused: enter it at the top.", "error");
  if (error.status === 404) return notice("Not found (or it belongs to another key).", "error");
  return notice(error.detail || error.message || String(error), "error");
}

// --- the event stream ----------------------------------------------------------------------

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Follow /jobs/{id}/events/stream until its `end` message, reconnecting from the last event id
 * after a dropped connection. onMessage({event, data, id}); onState("live" | "reconnecting" |
 * "ended"). Rejects on 401 / 404.
 */
export async function followEvents(jobId, { onMessage, onState, signal }) {
  let lastId = null;
  let retryMs = 2000;
  let failures = 0;
  const path = `${root}/jobs/${encodeURIComponent(jobId)}/events/stream`;
  while (!signal?.aborted) {
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
      const response = await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch { data = null; }
        throw new ApiError(response.status, detailText(data, response), data);
      }
      failures = 0;
      onState?.("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = "";
      let data = [];
      let id = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (;;) {
          const match = /\r\n|\r|\n/.exec(buffer);
          if (!match) break;
          // A lone \r at the very end may be the first half of \r\n: wait for more.
          if (match[0] === "\r" && match.index === buffer.length - 1) break;
          const line = buffer.slice(0, match.index);
          buffer = buffer.slice(match.index + match[0].length);
          if (line === "") {
            if (data.length) {
              let parsed;
              try { parsed = JSON.parse(data.join("\n")); } catch { parsed = { text: data.join("\n") }; }
              if (id !== null && /^\d+$/.test(id)) lastId = Number(id);
              const name = event || "message";
              onMessage({ event: name, data: parsed, id });
              if (name === "end") {
                onState?.("ended");
                reader.cancel().catch(() => {});
                return;
              }
            }
            event = "";
            data = [];
            id = null;
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (field === "event") event = text;
          else if (field === "data") data.push(text);
          else if (field === "id") id = text;
          else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
        }
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw error;
      failures += 1;
    }
    if (signal?.aborted) return;
    onState?.("reconnecting");
    await sleep(Math.min(retryMs * Math.max(1, failures), 30000), signal);
  }
}

// --- downloads -----------------------------------------------------------------------------

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function safeFileName(name) {
  const base = String(name).split(/[\\/]/).pop() || "artifact";
  return base.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "") || "artifact";
}

/**
 * Download an artifact with the key in a header, check its sha256 where the browser can
 * (secure contexts: https or localhost), and hand it to the browser as a file.
 * Resolves to "verified" or "unverified".
 */
export async function downloadArtifact(jobId, artifact) {
  const path = `${root}/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(artifact.id)}`;
  let response;
  try {
    response = await fetch(path, { headers: authHeaders(), cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiError(0, "The service did not answer.");
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { data = null; }
    throw new ApiError(response.status, detailText(data, response), data);
  }
  const blob = await response.blob();
  let state = "unverified";
  if (globalThis.crypto?.subtle && blob.size <= 1024 * 1024 * 1024) {
    const digest = hex(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
    if (digest !== artifact.sha256) {
      throw new ApiError(0, `sha256 mismatch for ${artifact.name}: the download was discarded`);
    }
    state = "verified";
  }
  const href = URL.createObjectURL(blob);
  const link = el("a", { href, download: safeFileName(artifact.name), class: "hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60000);
  return state;
}

// --- the key bar (every page) ----------------------------------------------------------------

function renderKeyBar() {
  const bar = document.getElementById("key-bar");
  if (!bar) return;
  clear(bar);
  const key = getKey();
  if (key) {
    const shown = key.length > 12 ? `${key.slice(0, 12)}…` : "set";
    bar.append(
      el("span", { class: "key-state", id: "key-state" }, `Key ${shown} · this tab only`),
      el("button", { type: "button", id: "forget-key", class: "secondary", onclick: forgetKey },
        "Forget key"),
    );
    return;
  }
  const input = el("input", {
    id: "api-key", type: "password", autocomplete: "off", spellcheck: "false",
    placeholder: "srn_…", required: true, "aria-describedby": "key-message",
  });
  const message = el("span", { id: "key-message", class: "key-message", role: "status" });
  const form = el("form", { id: "key-form", class: "key-form" },
    el("label", { for: "api-key" }, "API key"), input,
    el("button", { type: "submit" }, "Use key"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    message.textContent = "Checking…";
    try {
      const response = await fetch(`${root}/jobs?limit=1`, {
        headers: { Authorization: `Bearer ${value}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 401) {
        message.textContent = "That key was refused.";
        input.select();
        return;
      }
      if (!response.ok) {
        message.textContent = `The service answered ${response.status}.`;
        return;
      }
    } catch {
      message.textContent = "The service did not answer.";
      return;
    }
    input.value = "";
    storeKey(value);
  });
  bar.append(form);
}

window.addEventListener("srnet:key", renderKeyBar);
window.addEventListener("srnet:unauthorized", () => {
  const message = document.getElementById("key-message");
  if (message) message.textContent = "The key was refused.";
});
renderKeyBar();
if (!window.isSecureContext) {
  document.getElementById("main")?.prepend(notice(
    "This page is not served over https: the API key travels in clear text on the network.",
    "warning"));
}

/** Run render() now and whenever the key changes. */
export function onKey(render) {
  window.addEventListener("srnet:key", render);
  render();
}

export function needKey() {
  return notice("Enter your API key at the top of the page to see your jobs. It stays in this "
    + "browser tab only.", "info");
}
