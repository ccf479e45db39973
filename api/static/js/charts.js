// Small SVG charts written for these pages: lines and points on linear axes with "nice" ticks,
// a legend, a <title> per point for hover, and the data as a table for keyboard and screen
// reader users. Colours are CSS classes (series-0 … series-7), so the CSP needs no inline style.

import { el, svg } from "./core.js";

const SERIES_CLASSES = 8;
const MARKERS = ["circle", "square", "diamond", "triangle"];

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  const nice = scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 2.5 ? 2.5 : scaled <= 5 ? 5 : 10;
  return nice * power;
}

/** [min, max] widened to round ticks; answers {min, max, ticks}. */
export function niceDomain(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { min: 0, max: 1, ticks: [0, 0.5, 1] };
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min, count);
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { min: lo, max: hi, ticks };
}

/** The fewest decimals that write every tick exactly: a 0.25 step shows 33.25, never 33.3. */
export function tickDecimals(ticks) {
  for (let digits = 0; digits < 10; digits += 1) {
    if (ticks.every((t) => Math.abs(Number(t.toFixed(digits)) - t) < 1e-9)) return digits;
  }
  return 10;
}

function marker(shape, x, y, r, attrs) {
  if (shape === "square") {
    return svg("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, ...attrs });
  }
  if (shape === "diamond") {
    const d = r * 1.3;
    return svg("path", { d: `M${x} ${y - d}L${x + d} ${y}L${x} ${y + d}L${x - d} ${y}Z`, ...attrs });
  }
  if (shape === "triangle") {
    const d = r * 1.3;
    return svg("path", { d: `M${x} ${y - d}L${x + d} ${y + d * 0.8}L${x - d} ${y + d * 0.8}Z`, ...attrs });
  }
  return svg("circle", { cx: x, cy: y, r, ...attrs });
}

/**
 * A chart of one or more series.
 *   series: [{name, points: [{x, y, label?, highlight?, note?}]}]
 *   connect: true draws lines between a series' points sorted by x, "order" as given
 *   xFormat / yFormat: tick and table formatters
 * Returns a <figure class="chart"> with the SVG, a legend and a data table.
 */
export function chart({
  title, xLabel, yLabel, series, connect = true, width = 560, height = 320,
  xFormat = (v) => String(v), yFormat = (v) => String(v), xDomain = null, yDomain = null,
  pointLabels = false, pointRadius = 3.5, padX = false,
}) {
  const margin = { top: 16, right: 18, bottom: 46, left: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points).filter(
    (p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  // A little room around the data, so no point sits on the frame.
  const padded = (values, pad) => {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const room = pad ? (hi - lo || Math.abs(hi) || 1) * 0.06 : 0;
    return [lo - room, hi + room];
  };
  const [xLo, xHi] = xDomain || padded(xs, padX);
  const [yLo, yHi] = yDomain || padded(ys, true);
  const xd = niceDomain(xLo, xHi);
  const yd = niceDomain(yLo, yHi);
  const sx = (v) => margin.left + ((v - xd.min) / (xd.max - xd.min || 1)) * plotW;
  const sy = (v) => margin.top + plotH - ((v - yd.min) / (yd.max - yd.min || 1)) * plotH;

  const titleId = `chart-${Math.random().toString(36).slice(2)}`;
  const root = svg("svg", {
    class: "chart-svg", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": titleId, preserveAspectRatio: "xMidYMid meet",
  });
  root.append(svg("title", { id: titleId }, title));

  const grid = svg("g", { class: "grid" });
  // Ticks are written with the decimals their step needs (xFormat / yFormat are for the
  // data: point titles and the table).
  const yDigits = tickDecimals(yd.ticks);
  const xDigits = tickDecimals(xd.ticks);
  for (const t of yd.ticks) {
    grid.append(svg("line", { x1: margin.left, x2: margin.left + plotW, y1: sy(t), y2: sy(t) }));
    grid.append(svg("text", { x: margin.left - 8, y: sy(t), class: "tick y", "data-value": t },
      t.toFixed(yDigits)));
  }
  for (const t of xd.ticks) {
    grid.append(svg("line", { x1: sx(t), x2: sx(t), y1: margin.top, y2: margin.top + plotH }));
    grid.append(svg("text", { x: sx(t), y: margin.top + plotH + 16, class: "tick x", "data-value": t },
      t.toFixed(xDigits)));
  }
  root.append(grid);
  root.append(svg("rect", {
    class: "frame", x: margin.left, y: margin.top, width: plotW, height: plotH,
  }));
  root.append(svg("text", {
    class: "axis-label", x: margin.left + plotW / 2, y: height - 6,
  }, xLabel));
  root.append(svg("text", {
    class: "axis-label", x: 0, y: 0,
    transform: `translate(14 ${margin.top + plotH / 2}) rotate(-90)`,
  }, yLabel));

  series.forEach((s, index) => {
    const cls = `series series-${index % SERIES_CLASSES}`;
    const shape = MARKERS[Math.floor(index / SERIES_CLASSES) % MARKERS.length];
    const group = svg("g", { class: cls, "data-series": s.name });
    const points = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (connect && points.length > 1) {
      // connect: true joins points by x; "order" joins them in the order given.
      const sorted = connect === "order" ? points : [...points].sort((a, b) => a.x - b.x);
      const d = sorted.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)} ${sy(p.y).toFixed(1)}`).join("");
      group.append(svg("path", { class: "line", d }));
    }
    for (const p of points) {
      const attrs = {
        class: p.highlight ? "point highlight" : "point",
        "data-x": p.x, "data-y": p.y,
      };
      const node = marker(shape, sx(p.x), sy(p.y), p.highlight ? pointRadius + 2 : pointRadius, attrs);
      node.append(svg("title", {},
        `${s.name}: ${xLabel} ${xFormat(p.x)}, ${yLabel} ${yFormat(p.y)}${p.note ? ` (${p.note})` : ""}`));
      group.append(node);
      if (pointLabels && p.label) {
        group.append(svg("text", { class: "point-label", x: sx(p.x) + 7, y: sy(p.y) - 7 }, p.label));
      }
    }
    root.append(group);
  });

  const legend = el("ul", { class: "legend" }, series.map((s, index) => el("li", {},
    el("span", { class: `swatch series-${index % SERIES_CLASSES}`, "aria-hidden": "true" }),
    s.name)));

  const rows = series.flatMap((s) => s.points.map((p) => el("tr", {},
    el("td", {}, s.name), el("td", {}, xFormat(p.x)), el("td", {}, yFormat(p.y)),
    el("td", {}, p.note || ""))));
  const table = el("details", { class: "chart-data" },
    el("summary", {}, "Data"),
    el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, "Series"), el("th", {}, xLabel),
        el("th", {}, yLabel), el("th", {}, "Note"))),
      el("tbody", {}, rows)));

  return el("figure", { class: "chart" },
    el("figcaption", {}, title), root, legend, table);
}
