"""Paired comparisons of two rows of a study table: seed by seed, since the same seed means the
same dense model and the same data order in every row of a study.

For every metric both rows have, the differences `a − b` of the seeds both rows hold give a
mean, a sample sd and a 95% t interval (`mean ± t(0.975, n − 1) · sd / √n`, the t quantile from
scipy, which scikit-learn brings). One seed gives no interval. Torch-free: the API serves these.

Which sparsities pair: the same sparsity when both rows have it; a row with a single sparsity
(a dense model at 0) pairs with every sparsity of the other row, so "50% mask vs dense CE" reads
as one comparison.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from srcore.jobspec.study_table import TableRow, records_csv

INTERVAL = "95% t interval over the paired seeds (scipy.stats.t)"
COMPARISON_COLUMNS = (
    "row_a",
    "sparsity_a",
    "row_b",
    "sparsity_b",
    "metric",
    "n",
    "mean_difference",
    "sd",
    "low",
    "high",
    "seeds",
)


class ComparisonError(ValueError):
    """Two rows that cannot be compared; `field` names the offending argument (`row_a`, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PairedDifference:
    """`row_a − row_b` on one metric over the seeds both hold."""

    row_a: str
    sparsity_a: float
    row_b: str
    sparsity_b: float
    metric: str
    n: int
    mean_difference: float
    sd: float  # of the paired differences (0 for one seed)
    low: float | None  # the 95% t interval; None with one seed
    high: float | None
    seeds: tuple[int, ...]

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "seeds": list(self.seeds)}

    def verdict(self, bound: float = 0.0) -> str:
        """Whether `a − b ≥ bound`: "met" (the whole interval is at or above it), "missed"
        (the whole interval is below it), else "not separable at n = …"."""
        if self.low is not None and self.low >= bound:
            return "met"
        if self.high is not None and self.high < bound:
            return "missed"
        return f"not separable at n = {self.n}"


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom."""
    from scipy.stats import t  # imported on use: the API imports this module at start

    return float(t.ppf(0.975, df))


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], **names: Any
) -> PairedDifference | None:
    """The paired difference of two {seed: value} maps over their common seeds (None if they
    share no seed). `names`: row_a, sparsity_a, row_b, sparsity_b, metric."""
    seeds = tuple(sorted(set(a) & set(b)))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else 0.0
    low = high = None
    if n > 1:
        half = t_quantile(n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return PairedDifference(
        mean_difference=mean, sd=sd, low=low, high=high, n=n, seeds=seeds, **names
    )


def _by_cell(
    seeds: Iterable[Mapping[str, Any]],
) -> dict[str, dict[float, dict[str, dict[int, float]]]]:
    """row → sparsity → metric → {seed: value}."""
    found: dict[str, dict[float, dict[str, dict[int, float]]]] = {}
    for r in seeds:
        cell = found.setdefault(r["row"], {}).setdefault(float(r["sparsity"]), {})
        cell.setdefault(r["metric"], {})[int(r["seed"])] = float(r["value"])
    return found


def compare_rows(
    seeds: Sequence[Mapping[str, Any]],
    row_a: str,
    row_b: str,
    sparsity: float | None = None,
) -> list[PairedDifference]:
    """Every metric of `row_a − row_b`, paired by seed, at each sparsity they pair at (see the
    module doc); `sparsity` keeps only that sparsity of `row_a`. `seeds` are per-seed records
    (`srcore.jobspec.study_table.seed_records`). Raises ComparisonError naming an unknown row
    or a sparsity neither pairs at."""
    cells = _by_cell(seeds)
    for field, row in (("row_a", row_a), ("row_b", row_b)):
        if row not in cells:
            known = ", ".join(f"`{r}`" for r in cells) or "none yet"
            raise ComparisonError(field, f"no row `{row}` with per-seed records (rows: {known})")
    pairs = _sparsity_pairs(sorted(cells[row_a]), sorted(cells[row_b]))
    if sparsity is not None:
        pairs = [(sa, sb) for sa, sb in pairs if math.isclose(sa, sparsity)]
    if not pairs:
        shown = "any sparsity" if sparsity is None else f"sparsity {sparsity:g}"
        raise ComparisonError(
            "sparsity",
            f"`{row_a}` ({_list(cells[row_a])}) and `{row_b}` ({_list(cells[row_b])}) do not "
            f"pair at {shown}",
        )
    found = []
    for sa, sb in pairs:
        a, b = cells[row_a][sa], cells[row_b][sb]
        for metric in sorted(set(a) & set(b)):
            names = {"row_a": row_a, "sparsity_a": sa, "row_b": row_b, "sparsity_b": sb}
            diff = paired_difference(a[metric], b[metric], metric=metric, **names)
            if diff is not None:
                found.append(diff)
    return found


def _list(sparsities: Iterable[float]) -> str:
    return ", ".join("dense" if s == 0 else f"{100 * s:g}%" for s in sorted(sparsities))


def _sparsity_pairs(a: Sequence[float], b: Sequence[float]) -> list[tuple[float, float]]:
    if len(b) == 1 and b[0] not in a:
        return [(s, b[0]) for s in a]
    if len(a) == 1 and a[0] not in b:
        return [(a[0], s) for s in b]
    return [(s, s) for s in a if s in b]


def default_pairs(rows: Sequence[TableRow], base_loss: str) -> list[tuple[str, str]]:
    """The comparisons a study's table carries: every row against the dense CE model; every
    debiased row against the dense model of its own loss; every debiased search (and
    magnitude) row against the row with the same setting but the CE loss (the paper's "SRNet
    vs the CE mask"). `base_loss`: the loss of rows whose setting does not set one."""

    def loss(row: TableRow) -> str:
        return str(row.setting.get("debias.loss", base_loss))

    def rest(row: TableRow) -> str:
        return json.dumps(
            {k: v for k, v in row.setting.items() if k not in ("debias.loss", "dense.loss")},
            sort_keys=True,
        )

    dense = {loss(r): r.label for r in rows if r.role == "reference"}
    pairs: list[tuple[str, str]] = []
    for row in rows:
        if row.label != dense.get("none") and "none" in dense:
            pairs.append((row.label, dense["none"]))
        if row.role == "reference" or loss(row) == "none":
            continue
        own = dense.get(loss(row))
        if own is not None:
            pairs.append((row.label, own))
        for other in rows:
            if other.role == row.role and loss(other) == "none" and rest(other) == rest(row):
                pairs.append((row.label, other.label))
    return list(dict.fromkeys(pairs))


def study_comparisons(
    rows: Sequence[TableRow], seeds: Sequence[Mapping[str, Any]], base_loss: str
) -> list[PairedDifference]:
    """The `default_pairs` of a table, for every pair both of whose rows have seeds."""
    present = {r["row"] for r in seeds}
    found: list[PairedDifference] = []
    for a, b in default_pairs(rows, base_loss):
        if a in present and b in present:
            try:
                found += compare_rows(seeds, a, b)
            except ComparisonError:
                continue  # e.g. 70% vs 50% rows: nothing pairs, nothing to show
    return found


def comparisons_csv(diffs: Iterable[PairedDifference]) -> str:
    return records_csv(
        ({**d.as_record(), "seeds": " ".join(map(str, d.seeds))} for d in diffs),
        COMPARISON_COLUMNS,
    )


def comparison_text(diffs: Sequence[PairedDifference], metrics: Sequence[str] | None = None) -> str:
    """A markdown table of paired differences in percentage points (mask metrics too)."""
    wanted = [d for d in diffs if metrics is None or d.metric in metrics]
    lines = [
        "| a | b | metric | n | a − b | 95% interval | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in wanted:
        interval = (
            "–" if d.low is None else f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}]"  # type: ignore[operator]
        )
        lines.append(
            f"| {d.row_a} @ {_list([d.sparsity_a])} | {d.row_b} @ {_list([d.sparsity_b])} | "
            f"{d.metric} | {d.n} | {100 * d.mean_difference:+.2f} | {interval} | "
            f"{' '.join(map(str, d.seeds))} |"
        )
    return "\n".join(lines)
