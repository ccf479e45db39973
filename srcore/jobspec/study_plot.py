"""The study plot the way the paper draws it: ID and OOD accuracy against sparsity, one line
per searched setting, the dense models as dashed reference lines, error bars over seeds.

Drawn in the one plot style (`srcore.jobspec.figures`: no pyplot, no global state), so the API
renders it on request in any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from srcore.jobspec.figures import GRID_ALPHA, line_colours, new_figure, png_bytes
from srcore.jobspec.study_table import TableRow

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


def study_png(rows: Sequence[TableRow], title: str = "") -> bytes:
    panels = panels_for(rows) or [("dev.accuracy", "ID dev accuracy")]
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig = new_figure(4.6 * cols, 3.6 * nrows, dpi=110)
    axes = fig.subplots(nrows, cols, squeeze=False)
    colours = line_colours(len(rows))
    sparsity_ticks = sorted({100 * s for row in rows for s in row.cells if s > 0}) or [50.0]
    for ax, (metric, panel_title) in zip(axes.flat, panels, strict=False):
        for i, row in enumerate(rows):
            colour = colours[i % len(colours)]
            if row.role == "reference":
                stats = row.cells.get(0.0) and row.cells[0.0].stats(metric)
                if stats:
                    mean, sd, n = stats
                    ax.axhline(
                        100 * mean, ls="--", lw=1.2, color=colour, label=f"{row.label} (n={n})"
                    )
                    ax.axhspan(100 * (mean - sd), 100 * (mean + sd), color=colour, alpha=0.08)
                continue
            xs, ys, es = [], [], []
            for sparsity in sorted(s for s in row.cells if s > 0):
                stats = row.cells[sparsity].stats(metric)
                if stats:
                    # a small offset per row keeps settings at the same sparsity apart
                    xs.append(100 * sparsity + 0.35 * (i - len(rows) / 2))
                    ys.append(100 * stats[0])
                    es.append(100 * stats[1])
            if xs:
                style = ":" if row.role == "magnitude" else "-"
                ax.errorbar(
                    xs, ys, yerr=es, marker="o", ls=style, capsize=3, color=colour, label=row.label
                )
        ax.set_xticks(sparsity_ticks)
        ax.set_title(panel_title)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel("%")
        ax.grid(alpha=GRID_ALPHA)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False
        )
    if title:
        fig.suptitle(title)
    legend_rows = (len(labels) + 3) // 4 if handles else 0
    fig.tight_layout(rect=(0, 0.04 * legend_rows + 0.02, 1, 0.97 if title else 1))
    return png_bytes(fig, dpi=110)
