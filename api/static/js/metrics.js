// Reading metric points (GET /jobs/{id}/metrics): a point's evaluated sets, the headline
// number of a set, and the sparsity of a point. The service types each point's payload as
// `evaluation` ({sets: {name: metrics}, selection, sparsity, train_loss, movement, extras});
// these read that, never guess which keys of the raw payload are sets.

/** {name: metrics} of a point's evaluated sets ("dev", "hans"…). */
export function evalSets(point) {
  return point?.evaluation?.sets || {};
}

/** The mean training loss a point recorded, or null. */
export function trainLoss(point) {
  const loss = point?.evaluation?.train_loss;
  return typeof loss === "number" ? loss : null;
}

/** Set names in display order: the ID dev set first, then the OOD sets by name. */
export function setNames(points) {
  const names = new Set();
  for (const point of points) for (const name of Object.keys(evalSets(point))) names.add(name);
  return [...names].sort((a, b) => (a === "dev" ? -1 : b === "dev" ? 1 : a.localeCompare(b)));
}

export function headline(setMetrics) {
  if (!setMetrics) return null;
  if (typeof setMetrics.accuracy === "number") return setMetrics.accuracy;
  return typeof setMetrics.f1 === "number" ? setMetrics.f1 : null;
}

export function sparsityOf(point) {
  if (typeof point.sparsity === "number") return point.sparsity;
  const reported = point.evaluation?.sparsity;
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
        sets[name] = mean(group.points.map((p) => headline(evalSets(p)[name])));
      }
      return { stage: group.stage, sparsity: group.sparsity, seeds: group.points.map((p) => p.seed), sets };
    })
    .sort((a, b) => a.sparsity - b.sparsity);
}
