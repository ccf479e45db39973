"""The study plot (issue 19 items 5 and 8): settings at one sparsity stay next to it however
many rows a study has; error bars stay within 0-100 and a single seed draws none; a collapsed
subnetwork is marked on the panel of the set it collapsed on."""

from __future__ import annotations

from matplotlib.collections import LineCollection, PathCollection

from srcore.jobspec.spec import JobSpec
from srcore.jobspec.study import StudyChild
from srcore.jobspec.study_plot import COLLAPSE_LABEL, SPREAD_PP, study_figure
from srcore.jobspec.study_table import SelectedPoint, study_table


def table(n_rows: int, seeds=(1, 2), hans=None):
    children = [StudyChild(f"r={i}", f"row {i}", "search", {"r": i}, JobSpec.model_construct())
                for i in range(n_rows)]  # fmt: skip
    points = [
        SelectedPoint(child=c.key, kind="subnetwork", seed=seed, sparsity=0.5,
                      metrics={"dev": {"accuracy": 0.99 if seed == 1 else 0.5},
                               "hans": hans or {"accuracy": 0.5}})
        for c in children for seed in seeds
    ]  # fmt: skip
    return study_table(children, points)


def error_segments(ax):
    return [
        seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()
    ]


def test_many_rows_stay_next_to_their_sparsity():
    fig = study_figure(table(30))
    ax = fig.axes[0]
    xs = [x for line in ax.lines for x in line.get_xdata()]
    assert xs and min(xs) >= 50 - SPREAD_PP / 2 - 1e-9 and max(xs) <= 50 + SPREAD_PP / 2 + 1e-9


def test_error_bars_stay_within_0_and_100_and_one_seed_draws_none():
    # seeds at 99% and 50%: mean 74.5, sd 34.6: a plain bar would reach 109.
    ax = study_figure(table(1)).axes[0]
    ys = [y for seg in error_segments(ax) for _, y in seg]
    assert ys and max(ys) <= 100.0 and min(ys) >= 0.0 and max(ys) == 100.0
    single = study_figure(table(1, seeds=(1,))).axes[0]
    assert all(seg[0][1] == seg[1][1] for seg in error_segments(single))  # zero-length


def test_a_collapsed_subnetwork_is_marked_on_the_panel_of_its_set():
    hans = {"accuracy": 0.5, "collapsed": True, "majority_label": "entailment",
            "majority_share": 0.99}  # fmt: skip
    fig = study_figure(table(2, hans=hans))
    titles = [ax.get_title() for ax in fig.axes]
    dev, hans_ax = fig.axes[titles.index("ID dev accuracy")], fig.axes[titles.index("HANS overall")]
    marks = [c for c in hans_ax.collections if isinstance(c, PathCollection)]
    assert len(marks) == 2 and marks[0].get_label() == COLLAPSE_LABEL
    assert not [c for c in dev.collections if isinstance(c, PathCollection)]
    assert COLLAPSE_LABEL in [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_one_seed_shows_no_spread_in_the_table_text():
    from srcore.jobspec.study_format import cell_text

    one = {"metric": "dev.accuracy", "mean": 0.62, "sd": 0.0, "n": 1}
    assert cell_text(one) == "62.0 ± – (1)"
    assert cell_text({**one, "sd": 0.031, "n": 3}) == "62.0 ± 3.1 (3)"


def test_report_png_marks_each_collapsed_seed():
    from srcore.export import REPORT_COLLAPSE_LABEL, report_figure

    points = [
        {"sparsity": 0.5, "seed": 1, "metrics": {"dev": {"accuracy": 0.6},
                                                 "hans": {"accuracy": 0.5, "collapsed": True}}},
        {"sparsity": 0.5, "seed": 2, "metrics": {"dev": {"accuracy": 0.62},
                                                 "hans": {"accuracy": 0.55, "collapsed": False}}},
    ]  # fmt: skip
    ax = report_figure(points).axes[0]
    (marks,) = [c for c in ax.collections if c.get_label() == REPORT_COLLAPSE_LABEL]
    assert marks.get_offsets().tolist() == [[0.5, 0.5]]
    assert REPORT_COLLAPSE_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]
