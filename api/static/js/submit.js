// The submit page: a form built from the job spec's schema (/web/form.json), presets, the
// API's 422 errors shown next to the field they name.

import {
  ApiError, api, app, clear, el, errorNotice, getKey, jobUrl, notice, onKey, publicJson, root,
} from "./core.js";

let form = null; // {fields, groups, presets}
let idempotencyKey = null;

const fieldId = (path) => `f-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;
const errorId = (path) => `e-${path.replace(/[^A-Za-z0-9]+/g, "-")}`;

// A field's default in words: its value, or what leaving it unset means.
function shownDefault(field) {
  return field.default === null && field.unset ? field.unset : show(field.default);
}

// Placeholders are short: a long meaning is in the help text below the field.
function shortDefault(field) {
  const text = shownDefault(field);
  return text.length > 36 ? "see below" : text;
}

function show(value) {
  if (value === null || value === undefined) return "none";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function constraintText(field) {
  const c = field.constraints || {};
  const bits = [];
  const range = (lo, loOpen, hi, hiOpen, name) => {
    const left = lo !== undefined ? `${lo} ${loOpen ? "<" : "≤"} ` : "";
    const right = hi !== undefined ? ` ${hiOpen ? "<" : "≤"} ${hi}` : "";
    if (left || right) bits.push(`${left}${name}${right}`);
  };
  range(c.exclusiveMinimum ?? c.minimum, c.exclusiveMinimum !== undefined,
    c.exclusiveMaximum ?? c.maximum, c.exclusiveMaximum !== undefined, "x");
  range(c.item_exclusiveMinimum ?? c.item_minimum, c.item_exclusiveMinimum !== undefined,
    c.item_exclusiveMaximum ?? c.item_maximum, c.item_exclusiveMaximum !== undefined, "each");
  if (c.maxItems !== undefined) bits.push(`at most ${c.maxItems} values`);
  if (c.maxLength !== undefined) bits.push(`≤ ${c.maxLength} characters`);
  return bits.join("; ");
}

function inputFor(field) {
  const id = fieldId(field.path);
  const described = `${id}-help ${errorId(field.path)}`;
  const common = { id, name: field.path, "aria-describedby": described, "data-kind": field.kind };
  if (field.kind === "enum") {
    const options = [];
    if (field.nullable) options.push(el("option", { value: "" }, `default (${shortDefault(field)})`));
    for (const option of field.options) {
      options.push(el("option", { value: option }, option));
    }
    const select = el("select", common, options);
    select.value = field.default === null ? "" : String(field.default);
    return select;
  }
  if (field.kind === "boolean") {
    const box = el("input", { ...common, type: "checkbox" });
    box.checked = Boolean(field.default);
    return box;
  }
  if (field.kind === "json") {
    return el("textarea", {
      ...common, rows: "2", spellcheck: "false", placeholder: `default: ${shortDefault(field)}`,
      class: "json",
    });
  }
  const numeric = field.kind === "integer" || field.kind === "number";
  return el("input", {
    ...common, type: "text", spellcheck: "false", autocomplete: "off",
    inputmode: numeric ? (field.kind === "integer" ? "numeric" : "decimal") : undefined,
    placeholder: `default: ${shortDefault(field)}`,
  });
}

function fieldRow(field) {
  const input = inputFor(field);
  const kindNote = {
    integer_list: "whole numbers, comma-separated",
    number_list: "numbers, comma-separated",
    string_list: "comma-separated",
    json: "JSON",
  }[field.kind];
  // The description's "Not set: …" is the default's meaning: said once, as the default.
  const help = [field.unset && field.default === null
    ? field.description.replace(`Not set: ${field.unset}.`, "").replace(/\s+/g, " ").trim()
    : field.description];
  help.push(`Default: ${shownDefault(field)}.`);
  // The range once: the spec's description may state it already.
  const limits = field.description.includes("Range:") ? "" : constraintText(field);
  if (limits) help.push(`${limits}.`);
  // A field with a value by default that can also be turned off (grad_clip: 1.0 or none).
  const canUnset = field.nullable && field.default !== null && field.kind !== "enum";
  if (kindNote) help.push(`(${kindNote}${canUnset ? "; none to turn it off" : ""})`);
  else if (canUnset) help.push("(none to turn it off)");
  const label = el("label", { for: input.id },
    el("span", { class: "field-name" }, field.label),
    el("code", { class: "field-path" }, field.path));
  const row = el("div", { class: `field kind-${field.kind}`, "data-path": field.path },
    label, input,
    el("p", { class: "help", id: `${input.id}-help` }, help.filter(Boolean).join(" ")),
    el("p", { class: "field-error", id: errorId(field.path) }));
  return row;
}

// --- reading the form ----------------------------------------------------------------------

class InputError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

function parseNumber(text, integer, path) {
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
  if (percent) {  // the spec's grammar is fractions: say which one (issue 19 item 10)
    throw new InputError(path, `"${text}" is a percentage: write ${Number(percent[1]) / 100} `
      + "(a fraction between 0 and 1)");
  }
  const value = Number(text);
  if (text === "" || !Number.isFinite(value)) throw new InputError(path, `"${text}" is not a number`);
  if (integer && !Number.isInteger(value)) throw new InputError(path, `"${text}" is not a whole number`);
  return value;
}

function readField(field) {
  const input = document.getElementById(fieldId(field.path));
  if (field.kind === "boolean") return { set: input.checked !== Boolean(field.default), value: input.checked };
  if (field.kind === "enum") {
    const value = input.value;
    if (value === "") return { set: false };
    return { set: value !== field.default, value };
  }
  const text = input.value.trim();
  if (text === "") return { set: false };
  if (field.nullable && ["none", "null"].includes(text.toLowerCase())) return { set: true, value: null };
  let value;
  switch (field.kind) {
    case "integer":
    case "number":
      value = parseNumber(text, field.kind === "integer", field.path);
      break;
    case "integer_list":
    case "number_list":
      value = text.split(/[\s,;]+/).filter(Boolean)
        .map((part) => parseNumber(part, field.kind === "integer_list", field.path));
      break;
    case "string_list":
      value = text.split(",").map((part) => part.trim()).filter(Boolean);
      break;
    case "json":
      try {
        value = JSON.parse(text);
      } catch {
        throw new InputError(field.path, "not valid JSON");
      }
      break;
    default:
      value = text;
  }
  return { set: JSON.stringify(value) !== JSON.stringify(field.default), value };
}

function setPath(target, path, value) {
  const parts = path.split(".");
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== "object" || node[part] === null) node[part] = {};
    node = node[part];
  }
  node[parts[parts.length - 1]] = value;
}

function readSpec() {
  const spec = {};
  const errors = [];
  for (const field of form.fields) {
    try {
      const { set, value } = readField(field);
      if (set) setPath(spec, field.path, value);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      errors.push({ path: error.path, message: error.message });
    }
  }
  return { spec, errors };
}

// --- errors next to the fields -----------------------------------------------------------------

function clearErrors() {
  for (const node of document.querySelectorAll(".field-error, .group-error")) node.textContent = "";
  for (const node of document.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const node of document.querySelectorAll(".field.invalid, fieldset.invalid")) {
    node.classList.remove("invalid");
  }
  clear(document.getElementById("form-errors"));
}

/** The rendered field a 422 `loc` points at: the longest field path that prefixes it. */
function fieldFor(path) {
  let best = null;
  for (const field of form.fields) {
    if (path === field.path || path.startsWith(`${field.path}.`)) {
      if (!best || field.path.length > best.path.length) best = field;
    }
  }
  return best;
}

function showErrors(errors) {
  const summary = document.getElementById("form-errors");
  const items = [];
  let first = null;
  for (const { path, message: text } of errors) {
    let message = text;
    const field = fieldFor(path);
    if (field) {
      // "pruning.sparsities.1": the second value of the list.
      const rest = path.slice(field.path.length + 1);
      if (/^\d+$/.test(rest)) message = `value ${Number(rest) + 1}: ${message}`;
      const slot = document.getElementById(errorId(field.path));
      slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
      const input = document.getElementById(fieldId(field.path));
      input.setAttribute("aria-invalid", "true");
      input.closest(".field").classList.add("invalid");
      input.closest("details")?.setAttribute("open", "");
      first = first || input;
      items.push(el("li", {}, el("a", { href: `#${input.id}` }, field.path), `: ${message}`));
    } else {
      const group = path.split(".")[0];
      const slot = document.getElementById(`group-error-${group}`) || null;
      if (slot) {
        slot.textContent = `${path}: ${message}`;
        slot.closest("details")?.setAttribute("open", "");
        slot.closest("fieldset")?.classList.add("invalid");
      }
      items.push(el("li", {}, `${path || "spec"}: ${message}`));
    }
  }
  summary.append(el("div", { class: "notice error", role: "alert", tabindex: "-1", id: "error-summary" },
    el("p", {}, `The spec has ${errors.length === 1 ? "a problem" : `${errors.length} problems`}:`),
    el("ul", {}, items)));
  (first || document.getElementById("error-summary")).focus();
}

function apiErrors(error) {
  const detail = error.body?.detail;
  if (!Array.isArray(detail)) return [{ path: "", message: error.detail }];
  return detail.map((item) => {
    const loc = (item.loc || []).map(String);
    const path = (loc[0] === "body" ? loc.slice(1) : loc).join(".");
    return { path, message: String(item.msg || "invalid").replace(/^Value error, /, "") };
  });
}

// --- presets, preview, submit --------------------------------------------------------------

function resetForm() {
  for (const field of form.fields) {
    const input = document.getElementById(fieldId(field.path));
    if (field.kind === "boolean") input.checked = Boolean(field.default);
    else if (field.kind === "enum") input.value = field.default === null ? "" : String(field.default);
    else input.value = "";
  }
  clearErrors();
  changed();
}

function flatten(value, prefix, out) {
  for (const [name, item] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (item && typeof item === "object" && !Array.isArray(item) && !form.fields.some((f) => f.path === path)) {
      flatten(item, path, out);
    } else {
      out.push([path, item]);
    }
  }
  return out;
}

function applyPreset(preset) {
  resetForm();
  for (const [path, value] of flatten(preset.spec, "", [])) {
    const field = form.fields.find((f) => f.path === path);
    if (!field) continue;
    // A whole spec (a cloned job): what equals the default stays empty, as if never typed.
    if (value === null || JSON.stringify(value) === JSON.stringify(field.default)) continue;
    const input = document.getElementById(fieldId(path));
    if (field.kind === "boolean") input.checked = Boolean(value);
    else if (field.kind === "enum") input.value = value === null ? "" : String(value);
    else if (field.kind === "json") input.value = JSON.stringify(value);
    else input.value = Array.isArray(value) ? value.join(", ") : String(value);
    input.closest("details")?.setAttribute("open", "");
  }
  changed();
  // Said where the click was (beside the presets), not below a long form.
  for (const button of document.querySelectorAll("button.preset")) {
    button.setAttribute("aria-pressed", String(button.dataset.preset === preset.id));
  }
  clear(document.getElementById("submit-status"));
  clear(document.getElementById("preset-status")).append(
    notice(preset.message || `Preset applied: ${preset.title}. ${preset.size_text} `
      + `${preset.estimate.text} Review the fields, then submit.`));
}

// /web/submit?from=JOB: the form starts from that job's spec (the job page's "Clone" button).
async function cloneFromAddress() {
  const from = new URLSearchParams(window.location.search).get("from");
  if (!from || !getKey()) return;
  try {
    const job = await api(`/jobs/${encodeURIComponent(from)}`);
    applyPreset({
      id: null, spec: job.spec,
      message: `Cloned from job ${job.name || job.id}: its spec is in the form. Change what you `
        + "want, then submit a new job.",
    });
  } catch (error) {
    clear(document.getElementById("preset-status")).append(errorNotice(error));
  }
}

function changed() {
  idempotencyKey = null; // a new body is a new job
  const preview = document.getElementById("spec-preview");
  if (!preview) return;
  try {
    const { spec, errors } = readSpec();
    preview.textContent = errors.length ? "(fix the marked fields)" : JSON.stringify(spec, null, 2);
  } catch (error) {
    preview.textContent = String(error);
  }
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const status = clear(document.getElementById("submit-status"));
  if (!getKey()) {
    status.append(notice("Enter your API key at the top of the page first.", "error"));
    document.getElementById("api-key")?.focus();
    return;
  }
  const { spec, errors } = readSpec();
  if (errors.length) {
    showErrors(errors);
    return;
  }
  idempotencyKey = idempotencyKey || crypto.randomUUID();
  const button = document.getElementById("submit-button");
  button.disabled = true;
  status.append(notice("Submitting…"));
  try {
    const job = await api("/jobs", {
      method: "POST", body: spec, headers: { "Idempotency-Key": idempotencyKey },
    });
    clear(status).append(el("p", { class: "notice success", role: "status", id: "submit-result" },
      "Job created: ", el("a", { href: jobUrl(job.id), id: "new-job-link" }, job.name || job.id),
      ` (${job.status}). `, el("a", { href: `${root}/web/jobs` }, "All jobs")));
    idempotencyKey = null;
    document.getElementById("new-job-link").focus();
  } catch (error) {
    clear(status);
    if (error instanceof ApiError && error.status === 422) {
      showErrors(apiErrors(error));
    } else {
      status.append(notice(error.detail || String(error), "error"));
    }
  } finally {
    button.disabled = false;
  }
}

function render() {
  const page = clear(app());
  const presets = el("section", { class: "presets", "aria-labelledby": "presets-heading" },
    el("h2", { id: "presets-heading" }, "Start from a preset"),
    el("div", { class: "preset-list" }, form.presets.map((preset) => el("button", {
      type: "button", class: "preset", "data-preset": preset.id,
      onclick: () => applyPreset(preset),
    }, el("strong", {}, preset.title), el("span", {}, preset.description),
    // Its size and what it would take here, before anyone submits an hours-long job.
    el("small", { class: "preset-size" }, preset.size_text),
    el("small", { class: "preset-estimate" }, preset.estimate.text)))),
    el("div", { id: "preset-status", role: "status", "aria-live": "polite" }));

  const groups = form.groups.map((group) => {
    const fields = form.fields.filter((f) => f.group === group.id);
    if (!fields.length) return null;
    const open = ["", "debias", "pruning", "training"].includes(group.id);
    return el("details", { class: "group", open, "data-group": group.id || "job" },
      el("summary", {}, group.title),
      el("fieldset", {},
        el("legend", { class: "visually-hidden" }, group.title),
        el("p", { class: "group-error", id: `group-error-${group.id}`, role: "alert" }),
        el("div", { class: "fields" }, fields.map(fieldRow))));
  });

  const formNode = el("form", { id: "spec-form", novalidate: true },
    el("div", { id: "form-errors" }),
    groups,
    el("div", { class: "actions" },
      el("button", { type: "submit", id: "submit-button" }, "Submit job"),
      el("button", { type: "button", class: "secondary", onclick: resetForm }, "Reset to defaults")),
    el("div", { id: "submit-status" }));
  formNode.addEventListener("submit", submit);
  formNode.addEventListener("input", changed);
  formNode.addEventListener("change", changed);

  const preview = el("details", { class: "preview" },
    el("summary", {}, "The spec as JSON (for srnet submit or the API)"),
    el("pre", { id: "spec-preview" }, "{}"));

  page.append(presets, formNode, preview);
  changed();
}

async function main() {
  try {
    form = await publicJson("/web/form.json");
  } catch (error) {
    clear(app()).append(notice(`Could not load the form: ${error.message}`, "error"));
    return;
  }
  render();
  onKey(() => {
    const status = document.getElementById("submit-status");
    if (status && getKey()) clear(status);
    cloneFromAddress();
  });
}

main();
