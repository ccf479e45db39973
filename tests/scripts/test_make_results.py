"""scripts/make_results.py: the fidelity verdicts and the bias-model table it writes into
docs/results.md, from records shaped as a study's table.csv."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("make_results", ROOT / "scripts/make_results.py")
make_results = importlib.util.module_from_spec(_spec)
sys.modules["make_results"] = make_results  # dataclasses look their module up there
_spec.loader.exec_module(make_results)


def record(row, role, sparsity, metric, mean, collapsed=0):
    return {"row": row, "role": role, "sparsity": sparsity, "metric": metric, "mean": mean,
            "sd": 0.0, "n": 3, "collapsed": collapsed}  # fmt: skip


def references():
    return [
        record("dense CE", "reference", 0.0, "dev.accuracy", 0.645),
        record("dense CE", "reference", 0.0, "hans.accuracy", 0.476),
        record("dense CE", "reference", 0.0, "hans.non_entailed", 0.05),
        record("dense poe", "reference", 0.0, "hans.non_entailed", 0.155),
    ]


def search(row, sparsity, dev, overall, non, collapsed=0):
    return [
        record(row, "search", sparsity, "dev.accuracy", dev, collapsed),
        record(row, "search", sparsity, "hans.accuracy", overall, collapsed),
        record(row, "search", sparsity, "hans.non_entailed", non, collapsed),
    ]


def verdicts(records):
    lines = make_results.goal_lines("mnli", records)
    return dict(
        (line.split("|")[1].strip(), line.rsplit("|", 2)[-2].strip())
        for line in lines
        if line.startswith("| ") and not line.startswith("| row")
    )


def test_a_50_percent_row_meets_the_goal_only_with_all_three_bounds():
    records = references()
    records += search("meets", 0.5, dev=0.637, overall=0.497, non=0.163)
    records += search("dev too low", 0.5, dev=0.630, overall=0.497, non=0.163)
    records += search("non-entailed too low", 0.5, dev=0.64, overall=0.497, non=0.15)
    records += search("overall too low", 0.5, dev=0.64, overall=0.47, non=0.163)
    assert verdicts(records) == {
        "meets": "yes",
        "dev too low": "no",
        "non-entailed too low": "no",
        "overall too low": "no",
    }


def test_70_percent_allows_three_points_and_a_collapsed_row_is_never_a_gain():
    records = references()
    records += search("70 ok", 0.7, dev=0.62, overall=0.40, non=0.2)
    records += search("70 low", 0.7, dev=0.61, overall=0.50, non=0.2)
    records += search("collapsed", 0.7, dev=0.64, overall=0.52, non=0.998, collapsed=1)
    assert verdicts(records) == {"70 ok": "yes", "70 low": "no", "collapsed": "collapsed"}


def test_no_dense_ce_reference_means_no_goals_checked():
    records = search("alone", 0.5, dev=0.6, overall=0.5, non=0.2)
    assert make_results.goal_lines("mnli", records) == [
        "No dense CE reference in this study: goals not checked."
    ]


def test_bias_models_table_reads_bias_models_json(tmp_path):
    (tmp_path / "bias_models.json").write_text(
        json.dumps(
            [
                {
                    "kind": "overlap_2way",
                    "fit": "out_of_fold",
                    "class_weight": "none",
                    "mean_p_entailment": {"gold_entailment": 0.428, "gold_not_entailment": 0.295},
                    "ood": {"hans": {"accuracy": 0.479, "entailment_share": 1.0}},
                    "rows": ["dense poe", "loss poe"],
                }
            ]
        )
    )
    lines = make_results.bias_lines(tmp_path)
    row = next(line for line in lines if line.startswith("| overlap_2way"))
    assert "0.428 / 0.295" in row
    assert "hans: 47.9%, 100.0% called entailment" in row
    assert row.rstrip().endswith("| dense poe, loss poe |")
    assert make_results.bias_lines(tmp_path / "missing") == []


def test_headline_table_is_built_from_the_study_records(tmp_path):
    records = [
        {**rec, "sd": 0.004}
        for rec in references()
        + search("loss none", 0.5, dev=0.632, overall=0.485, non=0.112)
        + search("loss poe", 0.5, dev=0.630, overall=0.489, non=0.144)
        + search("poe gradual 50→70%", 0.7, dev=0.522, overall=0.475, non=0.17)
        + search("class_weight balanced", 0.5, dev=0.625, overall=0.501, non=0.233)
    ]
    records += [
        record("dense CE", "reference", 0.0, "hans.entailed", 0.918),
        record("dense poe", "reference", 0.0, "dev.accuracy", 0.594),
        record("dense poe", "reference", 0.0, "hans.accuracy", 0.481),
        record("dense poe", "reference", 0.0, "hans.entailed", 0.838),
    ]
    records += [
        record(row, "search", sp, "hans.entailed", 0.8)
        for row, sp in (
            ("loss none", 0.5),
            ("loss poe", 0.5),
            ("poe gradual 50→70%", 0.7),
            ("class_weight balanced", 0.5),
        )
    ]
    studies = [
        make_results.Study(tmp_path / name, records, {"base": {}})
        for name in ("mnli-hans-full", "mnli-bias-model")
    ]
    lines = make_results.headline_table(studies).splitlines()
    assert lines[0].startswith("| model | n | MNLI dev")
    srnet = next(line for line in lines if "PoE loss (SRNet)" in line)
    assert srnet == (
        "| **50% mask, PoE loss (SRNet)** | 3 | 63.0 ± 0.4 | 48.9 ± 0.4 | 80.0 ± 0.0 | 14.4 ± 0.4 |"
    )
    assert len(lines) == 2 + len(make_results.HEADLINE)
