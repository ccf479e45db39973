"""A study plotted against one of its numeric axes (the dense steps a search started from, the
score learning rate, …) instead of sparsity: one panel per headline metric, one line per
setting of the other axes at each sparsity, mean ± sd over seeds, the dense references dashed.

Used by `srnet study run` for every axis whose values are numbers (at least two of them; a
null value, such as `dense.stop_at_step: null` for "the end of training", is drawn at the right
as "unset"). matplotlib is imported on use (srcore.jobspec.figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from srcore.jobspec.figures import GRID_ALPHA, line_colours, new_figure, png_bytes
from srcore.jobspec.study import StudyAxis
from srcore.jobspec.study_format import HEADLINE
from srcore.jobspec.study_table import TableRow

UNSET = "unset"


@dataclass(frozen=True)
class AxisPoint:
    value: float | None  # the axis value; None: the axis left unset (null)
    mean: float
    sd: float
    n: int


def numeric_axes(axes: Sequence[StudyAxis]) -> list[StudyAxis]:
    """The axes a plot can use as its x: at least two numbers, otherwise only nulls."""
    found = []
    for axis in axes:
        numbers = [v for v in axis.values if _is_number(v)]
        if len(numbers) >= 2 and all(_is_number(v) or v is None for v in axis.values):
            found.append(axis)
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def axis_series(rows: Sequence[TableRow], path: str, metric: str) -> dict[str, list[AxisPoint]]:
    """Search rows that set `path`, grouped by the rest of their setting and sparsity:
    {"<other settings> @ 50%": [AxisPoint, …] in axis order (null last)}."""
    series: dict[str, list[AxisPoint]] = {}
    for row in rows:
        if row.role != "search" or path not in row.setting:
            continue
        value = row.setting[path]
        rest = ", ".join(f"{p.rsplit('.', 1)[-1]} {v}" for p, v in row.setting.items() if p != path)
        for sparsity, cell in sorted(row.cells.items()):
            stats = cell.stats(metric)
            if stats is None:
                continue
            label = f"{rest + ' ' if rest else ''}@ {100 * sparsity:g}%"
            point = AxisPoint(float(value) if _is_number(value) else None, *stats)
            series.setdefault(label, []).append(point)
    for points in series.values():
        points.sort(key=lambda p: (p.value is None, p.value or 0.0))
    return series


def _positions(values: Sequence[float | None], log: bool) -> dict[float | None, float]:
    numbers = sorted({v for v in values if v is not None})
    scale = (lambda v: math.log10(v)) if log else (lambda v: v)
    spots: dict[float | None, float] = {v: scale(v) for v in numbers}
    if None in values:
        span = scale(numbers[-1]) - scale(numbers[0]) if len(numbers) > 1 else 1.0
        spots[None] = scale(numbers[-1]) + span / max(1, len(numbers) - 1)
    return spots


def axis_plot_png(rows: Sequence[TableRow], axis: StudyAxis, title: str = "") -> bytes | None:
    """The PNG of the study against `axis`, or None when no search row has a number there."""
    panels = [(m, t) for m, t in HEADLINE if axis_series(rows, axis.path, m)]
    if not panels:
        return None
    numbers = [float(v) for v in axis.values if _is_number(v)]
    log = min(numbers) > 0 and max(numbers) / min(numbers) >= 4
    spots = _positions([float(v) if _is_number(v) else None for v in axis.values], log)
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    figure = new_figure(4.6 * cols, 3.6 * nrows + 0.6)
    name = axis.path.rsplit(".", 1)[-1]
    labels: list[str] = []
    for i, (metric, panel_title) in enumerate(panels):
        ax = figure.add_subplot(nrows, cols, i + 1)
        series = axis_series(rows, axis.path, metric)
        colours = line_colours(len(series))
        for colour, (label, points) in zip(colours, series.items(), strict=False):
            xs = [spots[p.value] for p in points]
            ax.errorbar(
                xs,
                [100 * p.mean for p in points],
                yerr=[100 * p.sd if p.n > 1 else 0.0 for p in points],
                marker="o",
                capsize=3,
                color=colour,
                label=label,
            )
            if label not in labels:
                labels.append(label)
        for row in rows:
            stats = row.role == "reference" and 0.0 in row.cells and row.cells[0.0].stats(metric)
            if stats:
                ax.axhline(100 * stats[0], ls="--", lw=1.0, color="grey")
                ax.annotate(
                    row.label,
                    (0.01, 100 * stats[0]),
                    xycoords=("axes fraction", "data"),
                    fontsize=7,
                    color="grey",
                )
        ticks = sorted(spots.items(), key=lambda kv: kv[1])
        ax.set_xticks([x for _, x in ticks])
        ax.set_xticklabels([UNSET if v is None else f"{v:g}" for v, _ in ticks], fontsize=8)
        ax.set_title(panel_title)
        ax.set_xlabel(name + (" (log scale)" if log else ""))
        ax.set_ylabel("%")
        ax.grid(alpha=GRID_ALPHA)
    handles, shown = figure.axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles, shown, loc="lower center", ncol=min(4, len(shown)), fontsize=8, frameon=False
        )
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95 if title else 1))
    return png_bytes(figure)
