"""A study against one numeric axis: which axes qualify, the series per setting and sparsity
(null last), and the PNG."""

from __future__ import annotations

import pytest

from srcore.jobspec.study import StudyAxis, StudySpec, expand_study
from srcore.jobspec.study_axis_plot import axis_plot_png, axis_series, numeric_axes
from srcore.jobspec.study_table import SelectedPoint, study_table

BASE = {
    "task": "mnli",
    "data": {"max_train_examples": 64, "max_eval_examples": 32},
    "pruning": {"method": "mask_training", "sparsities": [0.5]},
    "training": {"seeds": [1, 2]},
}


def test_only_axes_of_numbers_and_nulls_are_plotted_against():
    axes = [
        StudyAxis(path="dense.stop_at_step", values=[141, 282, None]),
        StudyAxis(path="debias.loss", values=["none", "poe"]),
        StudyAxis(path="training.learning_rate", values=[1e-4]),  # one number: no line
        StudyAxis(path="pruning.init", values=[None, "soft"]),
    ]
    assert [a.path for a in numeric_axes(axes)] == ["dense.stop_at_step"]


def test_series_follow_the_axis_with_null_last_and_one_line_per_other_setting():
    study = StudySpec.model_validate(
        {
            "base": BASE,
            "axes": [
                {"path": "dense.stop_at_step", "values": [None, 282, 141]},
                {"path": "debias.loss", "values": ["none", "poe"]},
            ],
        }
    )
    children = expand_study(study)
    points = []
    for i, child in enumerate(children):
        for seed in (1, 2):
            dev = 0.5 + 0.01 * i + 0.002 * seed
            metrics = {"dev": {"accuracy": dev}, "hans": {"accuracy": 0.5, "non_entailed": 0.2}}
            points.append(SelectedPoint(child.key, "subnetwork", seed, 0.5, metrics))
            points.append(SelectedPoint(child.key, "dense", seed, 0.0, metrics))
    rows = study_table(children, points)
    series = axis_series(rows, "dense.stop_at_step", "dev.accuracy")
    assert sorted(series) == ["loss none @ 50%", "loss poe @ 50%"]
    poe = series["loss poe @ 50%"]
    assert [p.value for p in poe] == [141.0, 282.0, None]
    # grid order: (null, none), (null, poe), (282, none), (282, poe), (141, none), (141, poe)
    assert [p.mean for p in poe] == [pytest.approx(0.503 + 0.01 * i) for i in (5, 3, 1)]
    assert all(p.n == 2 for p in poe)
    png = axis_plot_png(rows, study.axes[0], title="early start")
    assert png is not None and png.startswith(b"\x89PNG") and len(png) > 10_000
    assert axis_plot_png(rows, StudyAxis(path="training.learning_rate", values=[1, 2])) is None
