"""The study plot the way the paper draws it: ID and OOD accuracy against sparsity, one line
per searched setting, the dense models as dashed reference lines, error bars over seeds.

Drawn in the one plot style (`srcore.jobspec.figures`: no pyplot, no global state), so the API
renders it on request in any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from srcore.jobspec.figures import GRID_ALPHA, line_colours, new_figure, png_bytes
from srcore.jobspec.study_table import TableRow

if TYPE_CHECKING:  # matplotlib loads when a plot is drawn: the API starts without it
    from matplotlib.figure import Figure

# metric → panel title; only the metrics a study actually has are drawn
PANELS = (
    ("dev.accuracy", "ID dev accuracy"),
    ("dev.f1", "ID dev F1"),
    ("hans.accuracy", "HANS overall"),
    ("hans.non_entailed", "HANS non-entailed"),
    ("hans.entailed", "HANS entailed"),
    ("paws_qqp.accuracy", "PAWS-QQP accuracy"),
    ("paws_qqp.0", "PAWS-QQP non-duplicate"),
    ("fever_symmetric_v1.accuracy", "FEVER-Symmetric v1"),
    ("fever_symmetric_v2.accuracy", "FEVER-Symmetric v2"),
)


def panels_for(rows: Sequence[TableRow]) -> list[tuple[str, str]]:
    present = {m for row in rows for cell in row.cells.values() for m in cell.values}
    return [(metric, title) for metric, title in PANELS if metric in present]


def plot_study(rows: Sequence[TableRow], path: Path, title: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(study_png(rows, title))
    return path


# The settings at one sparsity are spread over this many percentage points of the axis, at
# most: the points stay next to their sparsity however many rows a study has.
SPREAD_PP = 2.0
COLLAPSE_MARK = {"marker": "x", "s": 70, "color": "#c0392b", "linewidths": 2.0, "zorder": 5}
COLLAPSE_LABEL = "collapsed: one class for ≥ 95% of the set (not robustness)"


def _set_of(metric: str) -> str:
    return metric.split(".", 1)[0]


def _clipped_errors(means: Sequence[float], sds: Sequence[float], ns: Sequence[int]):
    """Error bars of one sd, cut at 0 and 100 (an accuracy cannot leave them); none for a
    single seed (its spread is unknown, not zero)."""
    lower = [0.0 if n < 2 else min(sd, mean) for mean, sd, n in zip(means, sds, ns, strict=True)]
    upper = [
        0.0 if n < 2 else min(sd, 100.0 - mean) for mean, sd, n in zip(means, sds, ns, strict=True)
    ]
    return [lower, upper]


def study_png(rows: Sequence[TableRow], title: str = "") -> bytes:
    return png_bytes(study_figure(rows, title), dpi=110)


def study_figure(rows: Sequence[TableRow], title: str = "") -> Figure:
    panels = panels_for(rows) or [("dev.accuracy", "ID dev accuracy")]
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig = new_figure(4.6 * cols, 3.6 * nrows, dpi=110)
    axes = fig.subplots(nrows, cols, squeeze=False)
    colours = line_colours(len(rows))
    sparsity_ticks = sorted({100 * s for row in rows for s in row.cells if s > 0}) or [50.0]
    searched = [i for i, row in enumerate(rows) if row.role != "reference"]
    step = SPREAD_PP / max(1, len(searched) - 1)
    collapse_drawn = False
    for ax, (metric, panel_title) in zip(axes.flat, panels, strict=False):
        set_name = _set_of(metric)
        for i, row in enumerate(rows):
            colour = colours[i % len(colours)]
            if row.role == "reference":
                cell = row.cells.get(0.0)
                stats = cell and cell.stats(metric)
                if stats:
                    mean, sd, n = stats
                    collapsed = cell.collapsed.get(set_name, 0)
                    label = f"{row.label} (n={n})" + (
                        f" ⚠ {collapsed} collapsed" if collapsed else ""
                    )
                    ax.axhline(100 * mean, ls="--", lw=1.2, color=colour, label=label)
                    if n > 1:
                        low, high = max(0.0, mean - sd), min(1.0, mean + sd)
                        ax.axhspan(100 * low, 100 * high, color=colour, alpha=0.08)
                continue
            # a small offset per searched row keeps settings at the same sparsity apart
            offset = SPREAD_PP / 2 * -1 + step * searched.index(i) if len(searched) > 1 else 0.0
            xs, ys, es, ns, marks = [], [], [], [], []
            for sparsity in sorted(s for s in row.cells if s > 0):
                cell = row.cells[sparsity]
                stats = cell.stats(metric)
                if stats:
                    xs.append(100 * sparsity + offset)
                    ys.append(100 * stats[0])
                    es.append(100 * stats[1])
                    ns.append(stats[2])
                    if cell.collapsed.get(set_name):
                        marks.append((xs[-1], ys[-1]))
            if xs:
                style = ":" if row.role == "magnitude" else "-"
                ax.errorbar(xs, ys, yerr=_clipped_errors(ys, es, ns), marker="o", ls=style,
                            capsize=3, color=colour, label=row.label)  # fmt: skip
            if marks:
                label = None if collapse_drawn else COLLAPSE_LABEL
                ax.scatter([x for x, _ in marks], [y for _, y in marks], label=label,
                           **COLLAPSE_MARK)  # fmt: skip
                collapse_drawn = True
        ax.set_xticks(sparsity_ticks)
        ax.set_title(panel_title)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("%")
        ax.grid(alpha=GRID_ALPHA)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:  # the collapse mark may first appear on a later panel
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
        )
    if title:
        fig.suptitle(title)
    legend_rows = (len(labels) + 3) // 4 if handles else 0
    fig.tight_layout(rect=(0, 0.04 * legend_rows + 0.02, 1, 0.97 if title else 1))
    return fig
