"""Paired comparisons of study rows: differences seed by seed, the 95% t interval, which
sparsities pair, the verdict an interval gives, and the pairs a table carries."""

from __future__ import annotations

import math
import statistics

import pytest

from srcore.jobspec.study import StudySpec, expand_study
from srcore.jobspec.study_compare import (
    ComparisonError,
    compare_rows,
    comparison_text,
    comparisons_csv,
    default_pairs,
    paired_difference,
    study_comparisons,
    t_quantile,
)
from srcore.jobspec.study_table import SelectedPoint, seed_records, study_table


def seed(row, sparsity, metric, seed, value):
    return {"row": row, "sparsity": sparsity, "metric": metric, "seed": seed, "value": value}


def test_t_quantiles_are_the_textbook_ones():
    # two-sided 95%: df 1, 2, 4, 30 from any t table
    assert [round(t_quantile(df), 3) for df in (1, 2, 4, 30)] == [12.706, 4.303, 2.776, 2.042]


def test_paired_difference_mean_sd_and_t_interval():
    a = {1: 0.60, 2: 0.64, 3: 0.62, 9: 0.5}  # seed 9 has no partner: left out
    b = {1: 0.58, 2: 0.60, 3: 0.61}
    d = paired_difference(a, b, row_a="a", sparsity_a=0.5, row_b="b", sparsity_b=0.5, metric="m")
    diffs = [0.02, 0.04, 0.01]
    sd = statistics.stdev(diffs)
    half = 4.302652729911275 * sd / math.sqrt(3)
    assert d.seeds == (1, 2, 3) and d.n == 3
    assert d.mean_difference == pytest.approx(0.07 / 3)
    assert d.sd == pytest.approx(sd)
    assert (d.low, d.high) == (pytest.approx(0.07 / 3 - half), pytest.approx(0.07 / 3 + half))


def test_one_seed_has_no_interval_and_is_never_separable():
    names = {"row_a": "a", "sparsity_a": 0.5, "row_b": "b", "sparsity_b": 0.0, "metric": "m"}
    d = paired_difference({1: 0.7}, {1: 0.5}, **names)
    assert (d.n, d.low, d.high, d.sd) == (1, None, None, 0.0)
    assert d.verdict() == "not separable at n = 1"
    assert paired_difference({1: 0.7}, {2: 0.5}, **names) is None


def test_verdict_reads_the_interval_against_a_bound():
    base = {"row_a": "a", "sparsity_a": 0.5, "row_b": "b", "sparsity_b": 0.0, "metric": "m"}
    clear = paired_difference({1: 0.62, 2: 0.63, 3: 0.64}, {1: 0.60, 2: 0.60, 3: 0.60}, **base)
    assert clear.low > 0 and clear.verdict() == "met"
    # [0.005, 0.055]: a − b ≥ −0.05 holds on the whole interval, a − b ≥ 0.06 fails on it
    assert clear.verdict(-0.05) == "met" and clear.verdict(0.06) == "missed"
    assert clear.verdict(0.05) == "not separable at n = 3"
    noisy = paired_difference({1: 0.70, 2: 0.50, 3: 0.62}, {1: 0.60, 2: 0.60, 3: 0.60}, **base)
    assert noisy.low < 0 < noisy.high and noisy.verdict() == "not separable at n = 3"


def test_rows_pair_at_the_same_sparsity_and_a_dense_row_with_every_sparsity():
    seeds = [
        seed("mask", 0.5, "dev.accuracy", 1, 0.60),
        seed("mask", 0.5, "dev.accuracy", 2, 0.62),
        seed("mask", 0.7, "dev.accuracy", 1, 0.55),
        seed("mask", 0.7, "dev.accuracy", 2, 0.57),
        seed("ce mask", 0.5, "dev.accuracy", 1, 0.61),
        seed("ce mask", 0.5, "dev.accuracy", 2, 0.60),
        seed("dense", 0.0, "dev.accuracy", 1, 0.65),
        seed("dense", 0.0, "dev.accuracy", 2, 0.66),
        seed("dense", 0.0, "hans.accuracy", 1, 0.5),  # the mask rows lack it: not compared
    ]
    vs_dense = compare_rows(seeds, "mask", "dense")
    assert [(d.sparsity_a, d.sparsity_b, d.metric) for d in vs_dense] == [
        (0.5, 0.0, "dev.accuracy"),
        (0.7, 0.0, "dev.accuracy"),
    ]
    assert vs_dense[1].mean_difference == pytest.approx(-0.095)
    (same,) = compare_rows(seeds, "mask", "ce mask")
    assert (same.sparsity_a, same.mean_difference) == (0.5, pytest.approx(0.005))
    assert [d.sparsity_a for d in compare_rows(seeds, "mask", "dense", sparsity=0.7)] == [0.7]
    with pytest.raises(ComparisonError) as err:
        compare_rows(seeds, "mask", "nope")
    assert err.value.field == "row_b" and "`dense`" in err.value.message
    with pytest.raises(ComparisonError) as err:
        compare_rows(seeds, "mask", "ce mask", sparsity=0.7)
    assert err.value.field == "sparsity" and "50%, 70%" in err.value.message


BASE = {
    "task": "mnli",
    "data": {"max_train_examples": 64, "max_eval_examples": 32},
    "pruning": {"method": "mask_training", "sparsities": [0.5]},
    "training": {"seeds": [1, 2]},
}


def test_a_tables_comparisons_pair_each_srnet_with_its_ce_mask_and_the_dense_models():
    study = StudySpec.model_validate(
        {
            "base": BASE,
            "axes": [
                {"path": "debias.loss", "values": ["none", "poe"]},
                {"path": "training.learning_rate", "values": [1e-4, 2e-4]},
            ],
        }
    )
    children = expand_study(study)
    points = []
    for i, child in enumerate(children):
        for s in (1, 2):
            dev = {"dev": {"accuracy": 0.5 + 0.01 * i + 0.001 * s}}
            unit = SelectedPoint(child.key, "subnetwork", s, 0.5, dev, job=f"job{i}")
            points.append(unit)
            points.append(SelectedPoint(child.key, "dense", s, 0.0, dev, job=f"job{i}"))
    rows = study_table(children, points)
    pairs = default_pairs(rows, "none")
    assert ("loss poe, learning_rate 0.0001", "loss none, learning_rate 0.0001") in pairs
    assert ("loss poe, learning_rate 0.0002", "loss none, learning_rate 0.0002") in pairs
    assert ("loss poe, learning_rate 0.0002", "loss none, learning_rate 0.0001") not in pairs
    assert ("loss poe, learning_rate 0.0001", "dense poe") in pairs
    assert ("magnitude poe", "magnitude CE") in pairs and ("dense poe", "dense CE") in pairs
    assert all(b != a for a, b in pairs)
    seeds = seed_records(rows)
    diffs = study_comparisons(rows, seeds, "none")
    by_pair = {(d.row_a, d.row_b): d for d in diffs}
    # grid order: none/1e-4, none/2e-4, poe/1e-4, poe/2e-4 (dev +0.01 per child)
    d = by_pair[("loss poe, learning_rate 0.0001", "loss none, learning_rate 0.0001")]
    assert d.mean_difference == pytest.approx(0.02) and d.sd == pytest.approx(0.0)
    assert (d.low, d.high) == (pytest.approx(0.02), pytest.approx(0.02))
    text = comparisons_csv(diffs)
    assert text.splitlines()[0] == (
        "row_a,sparsity_a,row_b,sparsity_b,metric,n,mean_difference,sd,low,high,seeds"
    )
    assert "| loss poe, learning_rate 0.0001 @ 50% | loss none" in comparison_text(diffs)
