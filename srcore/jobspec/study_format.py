"""Study tables as text: the headline metrics per row and sparsity, mean ± sd (n), with
collapsed cells marked. Used by `srnet study`, the web page and docs/results.md."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# (metric, short column title); a table shows those its records have
HEADLINE = (
    ("dev.accuracy", "dev"),
    ("dev.f1", "dev F1"),
    ("hans.accuracy", "HANS"),
    ("hans.entailed", "HANS ent"),
    ("hans.non_entailed", "HANS non-ent"),
    ("paws_qqp.accuracy", "PAWS"),
    ("paws_qqp.1", "PAWS dup"),
    ("paws_qqp.0", "PAWS non-dup"),
    ("fever_symmetric_v1.accuracy", "FEVER-Sym v1"),
    ("fever_symmetric_v2.accuracy", "FEVER-Sym v2"),
    ("mask.differ_fraction", "≠ magnitude"),
)
HANS_HEURISTICS = ("lexical_overlap", "subsequence", "constituent")


def cell_text(record: Mapping[str, Any] | None, percent: bool = True) -> str:
    if record is None:
        return "–"
    scale = 100.0 if percent else 1.0
    mean, sd, n = record["mean"] * scale, record["sd"] * scale, record["n"]
    digits = 2 if record["metric"].startswith("mask.") else 1
    # One seed has no spread to show: "± –", not a zero sd (issue 19 item 8).
    spread = f"{sd:.{digits}f}" if n > 1 else "–"
    text = f"{mean:.{digits}f} ± {spread} ({n})"
    if record.get("collapsed"):
        text += f" ⚠{record['collapsed']} collapsed"
    return text


def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, float, str], Mapping]:
    return {(r["row"], float(r["sparsity"]), r["metric"]): r for r in records}


def row_order(records: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.setdefault(r["row"], None)
    return list(seen)


def headline_columns(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[tuple[str, str]] = HEADLINE
) -> list[tuple[str, str]]:
    present = {r["metric"] for r in records}
    return [(m, title) for m, title in metrics if m in present]


def markdown_table(
    records: Sequence[Mapping[str, Any]],
    metrics: Sequence[tuple[str, str]] | None = None,
    rows: Sequence[str] | None = None,
) -> str:
    """One line per (row, sparsity): the headline metrics as mean ± sd (n) in percent."""
    columns = list(metrics) if metrics is not None else headline_columns(records)
    index = _index(records)
    wanted = list(rows) if rows is not None else row_order(records)
    lines = [
        "| setting | sparsity | " + " | ".join(t for _, t in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for row in wanted:
        sparsities = sorted({float(r["sparsity"]) for r in records if r["row"] == row})
        for sparsity in sparsities:
            cells = [cell_text(index.get((row, sparsity, m))) for m, _ in columns]
            shown = "dense" if sparsity == 0 else f"{100 * sparsity:g}%"
            lines.append(f"| {row} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hans_heuristics_table(records: Sequence[Mapping[str, Any]]) -> str:
    """HANS per heuristic, entailed and non-entailed."""
    columns = [
        (f"hans.{h}.{side}", f"{h.replace('_', ' ')} {short}")
        for h in HANS_HEURISTICS
        for side, short in (("entailed", "ent"), ("non_entailed", "non"))
    ]
    return markdown_table(records, headline_columns(records, columns))
