"""The one plot style: every figure (a job's report plot, a study's plot, rendered by workers,
`srnet study run` or the API on request) is drawn on matplotlib's object API — a `Figure` on its
own Agg canvas, never pyplot — so no global figure state exists and figures can be drawn in
several threads at once without a lock.

matplotlib is imported inside the functions: the API imports this module and must start fast.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GRID_ALPHA = 0.3  # the light grid of every panel


def new_figure(width: float, height: float, dpi: int = 120) -> Figure:
    """A blank figure of `width` × `height` inches with its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def line_colours(n: int) -> list[Any]:
    """`n` colours, one per line: the default cycle, or tab20 when it has too few (no two
    settings look alike)."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    if n <= len(cycle):
        return list(cycle)
    tab20 = matplotlib.colormaps["tab20"]
    return [tab20(i % 20) for i in range(n)]


def png_bytes(figure: Figure, dpi: int | None = None) -> bytes:
    """The figure as PNG (at `dpi`, else the figure's own)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure")
    return buffer.getvalue()
