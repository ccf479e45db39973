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


def seeds_of(row, sparsity, metric, values):
    return [
        {"row": row, "sparsity": sparsity, "metric": metric, "seed": s, "value": v}
        for s, v in enumerate(values, 1)
    ]


def reference_seeds():
    return (
        seeds_of("dense CE", 0.0, "dev.accuracy", [0.640, 0.645, 0.650])
        + seeds_of("dense CE", 0.0, "hans.accuracy", [0.47, 0.48, 0.475])
        + seeds_of("dense poe", 0.0, "hans.non_entailed", [0.15, 0.16, 0.155])
    )


def row_seeds(row, dev, overall, non):
    return (
        seeds_of(row, 0.5, "dev.accuracy", dev)
        + seeds_of(row, 0.5, "hans.accuracy", overall)
        + seeds_of(row, 0.5, "hans.non_entailed", non)
    )


def test_with_per_seed_records_the_verdicts_read_the_paired_intervals():
    records = references()
    seeds = reference_seeds()
    # clears every bound on every seed by a wide, steady margin
    seeds += row_seeds("met", [0.640, 0.645, 0.650], [0.50, 0.51, 0.505], [0.25, 0.26, 0.255])
    # ID 5 points below dense CE on every seed: the whole interval misses "≥ −1"
    seeds += row_seeds("missed", [0.590, 0.595, 0.60], [0.50, 0.51, 0.505], [0.25, 0.26, 0.255])
    # HANS non-entailed +6, −4, +1 points around dense PoE: the interval straddles 0
    seeds += row_seeds("noisy", [0.640, 0.645, 0.650], [0.50, 0.51, 0.505], [0.21, 0.12, 0.165])
    for row in ("met", "missed", "noisy"):
        records += search(row, 0.5, dev=0.6, overall=0.5, non=0.2)
    assert verdicts_with(records, seeds) == {
        "met": "met",
        "missed": "missed",
        "noisy": "not separable at n = 3",
    }
    lines = make_results.goal_lines("mnli", records, seeds)
    noisy = next(line for line in lines if line.startswith("| noisy"))
    assert "HANS non-entailed − dense PoE +1.0 [" in noisy and "not separable at n = 3" in noisy
    assert "numbers (paired differences, 95% interval)" in "\n".join(lines)


def test_a_single_seed_is_never_separable_and_a_collapsed_row_stays_collapsed():
    records = references() + search("one seed", 0.5, dev=0.7, overall=0.6, non=0.3)
    records += search("collapsed", 0.5, dev=0.7, overall=0.6, non=0.9, collapsed=1)
    seeds = reference_seeds()
    seeds += [s for s in row_seeds("one seed", [0.7] * 3, [0.6] * 3, [0.3] * 3) if s["seed"] == 1]
    seeds += row_seeds("collapsed", [0.7] * 3, [0.6] * 3, [0.9] * 3)
    assert verdicts_with(records, seeds) == {
        "one seed": "not separable at n = 1",
        "collapsed": "collapsed",
    }


def verdicts_with(records, seeds):
    lines = make_results.goal_lines("mnli", records, seeds)
    return dict(
        (line.split("|")[1].strip(), line.rsplit("|", 2)[-2].strip())
        for line in lines
        if line.startswith("| ") and not line.startswith("| row")
    )


def test_an_old_study_without_per_seed_records_says_so_and_keeps_its_mean_verdicts(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    records = references() + search("loss poe", 0.5, dev=0.637, overall=0.497, non=0.163)
    (folder / "run_info.json").write_text(json.dumps({"jobs": 4, "complete": True}))
    meta = {"base": {"task": "mnli", "data": {}, "training": {"seeds": [1, 2, 3]}}}
    lines = make_results.study_section(make_results.Study(folder, records, meta))
    text = "\n".join(lines)
    assert "no per-seed records" in text and "numbers (seed means)" in text
    assert "| loss poe | 50% |" in text and text.count("| yes |") == 1


def test_a_study_section_shows_its_plots_against_numeric_axes(tmp_path):
    folder = tmp_path / "early"
    folder.mkdir()
    (folder / "run_info.json").write_text(json.dumps({"jobs": 3}))
    for name in ("plot.png", "plot-stop_at_step.png"):
        (folder / name).write_bytes(b"\x89PNG")
    meta = {"name": "early", "base": {"task": "mnli", "data": {}, "training": {"seeds": [1]}}}
    text = "\n".join(make_results.study_section(make_results.Study(folder, references(), meta)))
    assert "![early](../results/studies/early/plot.png)" in text
    assert "![early: against stop_at_step](../results/studies/early/plot-stop_at_step.png)" in text


def test_a_merged_study_section_names_each_folder_its_seeds_rows_and_precision(tmp_path):
    folder = tmp_path / "merged"
    folder.mkdir()
    parts = [
        {"folder": "results/studies/s", "command": "srnet study run s.json --out s",
         "seeds": [1, 2, 3], "rows": {"dense CE": [1, 2, 3], "loss poe": [1, 2, 3]},
         "job_seconds_total": 7200, "cpu": "AMD EPYC"},
        {"folder": "out/studies/s45", "command": "srnet study run s45.json --out s45",
         "seeds": [4, 5], "rows": {"dense CE": [4, 5]}, "job_seconds_total": 3600,
         "cpu": "AMD EPYC", "auto_precision": "bf16"},
    ]  # fmt: skip
    info = {"jobs": 2, "complete": False, "parts": parts}
    (folder / "run_info.json").write_text(json.dumps(info))
    meta = {
        "name": "m",
        "base": {"task": "mnli", "data": {}, "training": {"seeds": [1, 2, 3, 4, 5]}},
    }
    text = "\n".join(make_results.study_section(make_results.Study(folder, references(), meta)))
    assert "**Incomplete:**" not in text  # a merged table's rows may hold different seeds
    assert "**Merged** from 2 study folders" in text
    assert (
        "`srnet study run s45.json --out s45`: seeds [4, 5] of 1 rows (dense CE [4, 5]); "
        "1.00 h of job wall time on AMD EPYC, `precision: auto` → bf16." in text
    )
    assert "2.00 h of job wall time on AMD EPYC, `precision: auto` → not recorded." in text


def test_each_finding_gets_a_verdict_from_its_study_or_says_it_has_not_run(tmp_path):
    seeds = seeds_of("dense CE", 0.0, "dev.accuracy", [0.640, 0.645, 0.650])
    seeds += seeds_of("dense CE", 0.0, "hans.accuracy", [0.47, 0.48, 0.475])
    seeds += seeds_of("dense CE", 0.0, "hans.non_entailed", [0.05, 0.06, 0.055])
    row = "unstructured poe 50%"
    seeds += row_seeds(row, [0.640, 0.645, 0.650], [0.50, 0.51, 0.505], [0.25, 0.26, 0.255])
    # early start: 25% is 5 points below the finished start on dev (missed), 50% straddles
    for stop, dev in (("141", [0.59, 0.595, 0.60]), ("282", [0.65, 0.62, 0.66])):
        seeds += seeds_of(f"stop_at_step {stop}", 0.5, "dev.accuracy", dev)
        seeds += seeds_of(f"stop_at_step {stop}", 0.5, "hans.accuracy", [0.5, 0.51, 0.505])
    seeds += seeds_of("stop_at_step null", 0.5, "dev.accuracy", [0.64, 0.645, 0.65])
    seeds += seeds_of("stop_at_step null", 0.5, "hans.accuracy", [0.5, 0.51, 0.505])
    studies = [
        make_results.Study(tmp_path / name, [], {"name": name, "base": {}}, seeds)
        for name in ("mnli-structured", "mnli-early-start")
    ]
    text = "\n".join(make_results.finding_lines(studies))
    first, second, third = text.split("### ")[1:]
    assert "Verdict: **reproduced** at this scale" in first
    assert "| dev − dense CE | +0.0 (n = 3) | [" in first and first.count("| met |") == 3
    assert "`mnli-upper-bound` has not been run" in second
    assert "Verdict: **not reproduced**" in third
    assert "| dev: 25% − 100% of dense steps | -5.0 (n = 3) |" in third and "| missed |" in third
    assert "not separable at n = 3" in third


def test_a_structured_study_section_carries_the_measured_size_and_speed(tmp_path):
    meta = {
        "name": "structured",
        "base": {"task": "mnli", "data": {"max_train_examples": 64},
                 "pruning": {"method": "mask_training", "sparsities": [0.5],
                             "structure": "ffn_neurons"}},
        "axes": [{"path": "debias.loss", "values": ["poe"]}],
        "rows": [{"name": "unstructured poe", "overrides": {"pruning.structure": "unstructured"}}],
    }  # fmt: skip
    assert make_results.row_structures(meta) == {
        "loss poe": "ffn_neurons", "unstructured poe": "unstructured",
        "dense CE": "dense", "dense poe": "dense",
    }  # fmt: skip
    speed = {"MNLI-length b32": 1.0, "HANS-length b32": 1.0, "MNLI-length b1": 1.0}
    report = {
        "date": "2026-12-03", "cpu": "AMD EPYC", "threads": 1, "load_average": 2.0,
        "repeats": 5, "sparsity": 0.5,
        "variants": {
            "dense": {"params": 22714371, "mb": 90.9, "speedup": speed},
            "unstructured": {"params": 22714371, "mb": 90.9, "speedup": speed},
            "ffn_neurons": {"params": 19170819, "mb": 76.7,
                            "speedup": {**speed, "MNLI-length b32": 1.34}},
            "ffn_neurons onnx int8": {"params": 1, "mb": 19.5,
                                      "speedup": {"MNLI-length b32": 2.31}},
        },
    }  # fmt: skip
    path = tmp_path / "speed.json"
    path.write_text(json.dumps(report))
    study = make_results.Study(tmp_path / "structured", [], meta)
    text = "\n".join(make_results.speed_lines(study, path))
    assert "| ffn_neurons | loss poe | 19,170,819 | 76.7 | 1.34× | 1.00× | 1.00× | 2.31× |" in text
    assert "| dense | dense CE, dense poe | 22,714,371 | 90.9 |" in text
    unstructured_only = {**meta, "base": {**meta["base"], "pruning": {"method": "magnitude"}}}
    assert (
        make_results.speed_lines(
            make_results.Study(tmp_path, [], {**unstructured_only, "rows": []}), path
        )
        == []
    )


def test_the_upper_bound_finding_pairs_the_mask_with_both_dense_models(tmp_path):
    """Finding 2: the HANS-train mask against the dense model trained the same way (`dense CE`
    of that study) and against dense CE without HANS-train (the row's dense start)."""
    without = "without HANS-train: dense start"
    seeds = seeds_of("dense CE", 0.0, "dev.accuracy", [0.640, 0.645, 0.650])
    seeds += seeds_of("dense CE", 0.0, "hans.accuracy", [0.90, 0.91, 0.92])
    seeds += seeds_of(without, 0.0, "hans.accuracy", [0.50, 0.51, 0.50])
    seeds += seeds_of(without, 0.0, "hans.non_entailed", [0.05, 0.06, 0.05])
    seeds += row_seeds("loss none", [0.641, 0.646, 0.651], [0.90, 0.91, 0.92], [0.85, 0.86, 0.87])
    study = make_results.Study(tmp_path / "ub", [], {"name": "ub", "base": {}}, seeds)
    second = "\n".join(make_results.finding_lines([study])).split("### ")[2]
    assert second.startswith("2. Sparse and almost unbiased")
    assert "`mnli-upper-bound` has not been run" in second  # the study is found by folder name
    study = make_results.Study(tmp_path / "mnli-upper-bound", [], {"name": "ub", "base": {}}, seeds)
    second = "\n".join(make_results.finding_lines([study])).split("### ")[2]
    assert "Verdict: **reproduced** at this scale" in second and second.count("| met |") == 4
    assert "| HANS: mask with HANS-train − dense CE without | +40.7 (n = 3) |" in second


def test_the_score_lr_section_reads_finding_one_at_each_rate_and_names_the_rates_that_meet_it(
    tmp_path,
):
    meta = {
        "name": "lr",
        "base": {"task": "mnli", "data": {"max_train_examples": 64},
                 "pruning": {"method": "mask_training", "sparsities": [0.5]},
                 "training": {"seeds": [1, 2, 3]}},
        "axes": [{"path": "debias.loss", "values": ["poe", "none"]},
                 {"path": "training.learning_rate", "values": [0.00005, 0.0001, 0.0002]}],
        "dense_references": True,
    }  # fmt: skip
    seeds = seeds_of("dense CE", 0.0, "dev.accuracy", [0.640, 0.645, 0.650])
    seeds += seeds_of("dense CE", 0.0, "hans.accuracy", [0.47, 0.48, 0.475])
    seeds += seeds_of("dense CE", 0.0, "hans.non_entailed", [0.05, 0.06, 0.055])
    # 5e-5: dev 3 points below dense CE on every seed (missed); 1e-4 clears every bound
    slow, fast = "loss poe, learning_rate 5e-05", "loss poe, learning_rate 0.0001"
    seeds += row_seeds(slow, [0.610, 0.615, 0.620], [0.50, 0.51, 0.505], [0.25, 0.26, 0.255])
    seeds += row_seeds(fast, [0.640, 0.645, 0.650], [0.50, 0.51, 0.505], [0.25, 0.26, 0.255])
    seeds += row_seeds("loss none, learning_rate 0.0001", [0.64, 0.645, 0.65], [0.5] * 3,
                       [0.15, 0.16, 0.155])  # fmt: skip
    moved = dict(record(fast, "search", 0.5, "mask.differ_fraction", 0.031), sd=0.002)
    study = make_results.Study(tmp_path / "mnli-score-lr", [moved], meta, seeds)
    text = "\n".join(make_results.score_lr_lines([study]))
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    assert "| missed |" in rows["| 5e-05"] and "-3.0 [" in rows["| 5e-05"]
    assert rows["| 0.0001"].endswith("| 3.10 ± 0.20 (3) | met |")
    assert "| +0.0 [+0.0, +0.0] | +10.0 [+10.0, +10.0] |" in rows["| 0.0001"]  # vs the CE mask
    assert rows["| 0.0002"].startswith("| 0.0002 | 0 | not run yet |")
    assert rows["| 0.0002"].count("|") == rows["| score lr"].count("|")
    assert "Rates meeting every check: 0.0001." in text
    assert make_results.score_lr_lines([]) == []
