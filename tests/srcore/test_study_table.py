"""A study's results table: mean ± sd (n) over seeds per row and sparsity, collapses counted."""

import math

import pytest

from srcore.jobspec.study import expand_study
from srcore.jobspec.study_table import (
    SelectedPoint,
    flatten_metrics,
    read_seeds_csv,
    read_table_csv,
    seed_records,
    seeds_csv,
    study_table,
    table_csv,
)
from tests.helpers.study import small_study as _study


def _hans(acc, ent, non, collapsed=False):
    return {
        "accuracy": acc,
        "entailed": ent,
        "non_entailed": non,
        "n": 10,
        "heuristics": {"lexical_overlap": {"accuracy": acc, "entailed": ent, "non_entailed": non}},
        "majority_share": 0.99 if collapsed else 0.6,
        "collapsed": collapsed,
    }


def test_table_gives_mean_sd_and_n_over_seeds_and_counts_collapses():
    study = _study(axes=[{"path": "debias.loss", "values": ["poe"]}])
    children = expand_study(study)
    poe, ref_ce = children[0].key, "reference:none"
    points = [
        SelectedPoint(
            poe,
            "subnetwork",
            1,
            0.5,
            {"dev": {"accuracy": 0.60}, "hans": _hans(0.5, 0.9, 0.1)},
            {"differ_fraction": 0.02, "flipped_fraction": 0.03},
        ),
        SelectedPoint(
            poe,
            "subnetwork",
            2,
            0.5,
            {"dev": {"accuracy": 0.64}, "hans": _hans(0.6, 0.8, 0.4, True)},
            {"differ_fraction": 0.04, "flipped_fraction": 0.05},
        ),
        SelectedPoint(poe, "dense", 1, 0.0, {"dev": {"accuracy": 0.9}}),  # not repeated
        SelectedPoint(
            ref_ce, "dense", 1, 0.0, {"dev": {"accuracy": 0.66}, "hans": _hans(0.5, 1, 0)}
        ),
        SelectedPoint(ref_ce, "subnetwork", 1, 0.5, {"dev": {"accuracy": 0.55}}),
    ]
    rows = study_table(children, points)
    labels = [r.label for r in rows]
    assert labels == ["loss poe", "dense CE", "magnitude CE", "dense poe", "magnitude poe"]
    cell = rows[0].cells[0.5]
    mean, sd, n = cell.stats("dev.accuracy")
    assert (mean, n) == (pytest.approx(0.62), 2) and sd == pytest.approx(math.sqrt(0.0008))
    assert cell.stats("hans.lexical_overlap.non_entailed")[0] == pytest.approx(0.25)
    assert cell.stats("mask.differ_fraction")[0] == pytest.approx(0.03)
    assert cell.collapsed == {"hans": 1}
    assert 0.0 not in rows[0].cells
    assert rows[1].cells[0.0].stats("dev.accuracy") == (0.66, 0.0, 1)
    assert rows[2].cells[0.5].stats("dev.accuracy") == (0.55, 0.0, 1)
    records = read_table_csv(table_csv(rows))
    hans_non = [r for r in records if r["row"] == "loss poe" and r["metric"] == "hans.non_entailed"]
    assert hans_non == [{**hans_non[0], "mean": pytest.approx(0.25), "n": 2, "collapsed": 1}]


def test_flatten_metrics_keeps_numbers_only():
    flat = flatten_metrics(
        {
            "paws_qqp": {
                "accuracy": 0.5,
                "f1": 0.4,
                "per_class": {"0": 0.3, "1": 0.7},
                "n": 5,
                "collapsed": False,
                "majority_label": "1",
            },
            "selection": 0.5,
        }
    )
    assert flat == {
        "paws_qqp.accuracy": 0.5,
        "paws_qqp.f1": 0.4,
        "paws_qqp.0": 0.3,
        "paws_qqp.1": 0.7,
    }


def test_seed_records_trace_every_mean_to_its_job_step_and_mask():
    study = _study(axes=[{"path": "debias.loss", "values": ["poe"]}])
    children = expand_study(study)
    poe = children[0].key
    points = [
        SelectedPoint(
            poe,
            "subnetwork",
            2,
            0.5,
            {"dev": {"accuracy": 0.64}, "hans": _hans(0.6, 0.8, 0.4, True)},
            {"differ_fraction": 0.04, "by_type": {"Q": {"differ_fraction": 0.1}}},
            job="job-b",
            selected_step=40,
            mask_sha256="b" * 64,
        ),
        SelectedPoint(
            poe,
            "subnetwork",
            1,
            0.5,
            {"dev": {"accuracy": 0.60}},
            job="job-a",
            selected_step=30,
            mask_sha256="a" * 64,
        ),
        SelectedPoint(
            "reference:none",
            "dense",
            1,
            0.0,
            {"dev": {"accuracy": 0.66}},
            job="job-c",
            selected_step=12,
        ),
    ]
    rows = study_table(children, points)
    records = read_seeds_csv(seeds_csv(rows))
    assert records == seed_records(rows)
    dev = [
        (r["row"], r["seed"], r["value"], r["job"], r["selected_step"], r["mask_sha256"])
        for r in records
        if r["metric"] == "dev.accuracy"
    ]
    assert dev == [
        ("loss poe", 1, 0.60, "job-a", 30, "a" * 64),  # seeds in order, whatever came first
        ("loss poe", 2, 0.64, "job-b", 40, "b" * 64),
        ("dense CE", 1, 0.66, "job-c", 12, None),
    ]
    by_metric = {r["metric"]: r for r in records if r["seed"] == 2}
    assert by_metric["hans.non_entailed"]["collapsed"] == 1
    assert by_metric["dev.accuracy"]["collapsed"] == 0
    assert by_metric["mask.differ_fraction"]["value"] == 0.04
    assert by_metric["mask.Q.differ_fraction"]["value"] == 0.1
    assert "mask.K.differ_fraction" not in by_metric  # only the types the report names
    assert all(r["child"] == poe for r in records if r["row"] == "loss poe")


def test_a_search_whose_dense_model_no_reference_holds_shows_it_once():
    """An early-stopped dense model (or one trained on other data) is not the reference's: the
    first search from it shows its dense points as `<search>: dense start`; a second search
    from the same dense model does not repeat them, and a search from the reference's dense
    model shows none."""
    study = _study(
        axes=[{"path": "debias.loss", "values": ["poe"]}],
        rows=[
            {"name": "early", "overrides": {"dense.stop_at_step": 4}},
            {"name": "early lr", "overrides": {"dense.stop_at_step": 4,
                                               "training.learning_rate": 2e-4}},
        ],
        dense_references=True,
    )  # fmt: skip
    children = expand_study(study)
    keys = {c.label: c.key for c in children}
    points = [
        SelectedPoint(keys[label], kind, 1, sparsity, {"dev": {"accuracy": acc}})
        for label, kind, sparsity, acc in (
            ("loss poe", "dense", 0.0, 0.9),  # the dense CE reference's model: not repeated
            ("loss poe", "subnetwork", 0.5, 0.6),
            ("early", "dense", 0.0, 0.4),
            ("early", "subnetwork", 0.5, 0.5),
            ("early lr", "dense", 0.0, 0.4),
            ("early lr", "subnetwork", 0.5, 0.55),
        )
    ]
    rows = study_table(children, points)
    assert [(r.label, r.role) for r in rows][:4] == [
        ("loss poe", "search"),
        ("early: dense start", "reference"),
        ("early", "search"),
        ("early lr", "search"),
    ]
    assert rows[1].cells[0.0].stats("dev.accuracy") == (0.4, 0.0, 1)
    assert set(rows[1].cells) == {0.0} and 0.0 not in rows[0].cells | rows[3].cells
    without_references = study.model_copy(update={"dense_references": False})
    labels = [r.label for r in study_table(expand_study(without_references), points)]
    assert labels == ["loss poe", "early", "early lr"]
