"""The one plot style: figures on matplotlib's object API, never pyplot, so the API can render
study plots in several threads at once (no plot lock) and no figure state is global."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from srcore.jobspec.spec import JobSpec
from srcore.jobspec.study import StudyChild
from srcore.jobspec.study_plot import plot_study, study_png
from srcore.jobspec.study_table import SelectedPoint, study_table

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def rows():
    children = [StudyChild(f"debias.loss={loss}", loss, "search", {"debias.loss": loss},
                           JobSpec.model_construct()) for loss in ("none", "poe")]  # fmt: skip
    points = [
        SelectedPoint(child=c.key, kind="subnetwork", seed=seed, sparsity=sparsity,
                      metrics={"dev": {"accuracy": 0.6 + 0.1 * i - 0.2 * sparsity + 0.01 * seed},
                               "hans": {"accuracy": 0.5, "entailed": 0.9, "non_entailed": 0.1}})
        for i, c in enumerate(children) for seed in (1, 2) for sparsity in (0.5, 0.7)
    ]  # fmt: skip
    return study_table(children, points)


def test_plots_never_import_pyplot():
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from srcore.export import plot_report\n"
        "from srcore.jobspec.study_plot import study_png\n"
        "png = study_png([], title='empty')\n"
        "import tempfile\n"
        "with tempfile.TemporaryDirectory() as d: plot_report([], Path(d) / 'r.png')\n"
        "print(json.dumps([png[:8].hex(), 'matplotlib.pyplot' in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    head, pyplot = json.loads(run.stdout)
    assert bytes.fromhex(head) == PNG and pyplot is False


def test_study_plots_render_in_parallel_threads_identically(tmp_path):
    table = rows()
    alone = study_png(table, title="losses")
    assert alone.startswith(PNG) and len(alone) > 10_000
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: study_png(table, title="losses"), range(8)))
    assert all(png == alone for png in together)
    path = plot_study(table, tmp_path / "deep" / "plot.png", title="losses")
    assert path.read_bytes() == alone


def test_the_report_plot_is_drawn_in_the_same_style(tmp_path):
    from srcore.export import plot_report

    points = [{"sparsity": s, "seed": 1, "metrics": {"dev": {"accuracy": 0.8 - s / 2}}}
              for s in (0.5, 0.7)]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda i: plot_report(points, tmp_path / f"r{i}.png"), range(2)))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes().startswith(PNG)
