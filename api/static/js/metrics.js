// Reading metric points (GET /jobs/{id}/metrics): which entries of a payload are evaluated
// sets, the headline number of a set, and the sparsity of a point.

/** {name: metrics} for every payload entry with a numeric accuracy or F1 ("dev", "hans"…). */
export function evalSets(payload) {
  const sets = {};
  for (const [name, value] of Object.entries(payload || {})) {
    if (value && typeof value === "object" && !Array.isArray(value)
      && (typeof value.accuracy === "number" || typeof value.f1 === "number")) {
      sets[name] = value;
    }
  }
  return sets;
}

/** Set names in display order: the ID dev set first, then the OOD sets by name. */
export function setNames(points) {
  const names = new Set();
  for (const point of points) for (const name of Object.keys(evalSets(point.payload))) names.add(name);
  return [...names].sort((a, b) => (a === "dev" ? -1 : b === "dev" ? 1 : a.localeCompare(b)));
}

export function headline(setMetrics) {
  if (!setMetrics) return null;
  if (typeof setMetrics.accuracy === "number") return setMetrics.accuracy;
  return typeof setMetrics.f1 === "number" ? setMetrics.f1 : null;
}

export function sparsityOf(point) {
  if (typeof point.sparsity === "number") return point.sparsity;
  const reported = point.payload?.sparsity;
  if (typeof reported === "number") return reported;
  return point.stage === "dense" ? 0 : null;
}

export function mean(values) {
  const usable = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  return usable.length ? usable.reduce((a, b) => a + b, 0) / usable.length : null;
}

/**
 * Selected points grouped by (stage, sparsity), the value of each set averaged over seeds:
 * [{stage, sparsity, seeds: [..], sets: {name: mean headline}}], sorted by sparsity.
 */
export function selectedBySparsity(selected) {
  const groups = new Map();
  for (const point of selected) {
    const sparsity = sparsityOf(point);
    if (sparsity === null) continue;
    const key = `${point.stage === "dense" ? "dense" : "sparse"}|${sparsity}`;
    if (!groups.has(key)) groups.set(key, { stage: point.stage, sparsity, points: [] });
    groups.get(key).points.push(point);
  }
  return [...groups.values()]
    .map((group) => {
      const names = setNames(group.points);
      const sets = {};
      for (const name of names) {
        sets[name] = mean(group.points.map((p) => headline(evalSets(p.payload)[name])));
      }
      return { stage: group.stage, sparsity: group.sparsity, seeds: group.points.map((p) => p.seed), sets };
    })
    .sort((a, b) => a.sparsity - b.sparsity);
}
