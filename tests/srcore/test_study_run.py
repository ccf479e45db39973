"""A whole study on a tiny random BERT and real sample rows: every child runs, the dense
fine-tune is shared through the stage cache, the table and plot come from the runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from srcore.jobspec.results import SearchResult
from srcore.jobspec.study import StudySpec
from srcore.jobspec.study_table import read_seeds_csv, read_table_csv
from srcore.pipeline.study_run import run_study
from tests.helpers.tiny_bert import torch_threads


def two_step_study(
    model: str, losses: list[str], seeds: list[int], name: str | None = None
) -> StudySpec:
    """A study of 2-step jobs on 48 rows: one search per loss, with its dense references."""
    base = {
        "task": "mnli",
        "model": {"name_or_path": model},
        "data": {"max_train_examples": 48, "max_eval_examples": 24},
        "pruning": {"sparsities": [0.5]},
        "dense": {"max_steps": 2, "learning_rate": 1e-3},
        "training": {"max_steps": 2, "batch_size": 16, "max_length": 32, "seeds": seeds},
    }
    axes = [{"path": "debias.loss", "values": losses}]
    return StudySpec.model_validate({"name": name, "base": base, "axes": axes})


def test_study_runs_every_child_and_tables_them_over_seeds(tiny_model, tmp_path):
    base = {
        "task": "mnli",
        "model": {"name_or_path": tiny_model},
        "data": {"max_train_examples": 64, "max_eval_examples": 32},
        "pruning": {"sparsities": [0.5]},
        "dense": {"max_steps": 4, "learning_rate": 1e-3},
        "training": {
            "max_steps": 4,
            "eval_every": 2,
            "batch_size": 16,
            "max_length": 32,
            "seeds": [1, 2],
        },
        "evaluation": {"batch_size": 64},
    }
    study = StudySpec.model_validate(
        {"name": "tiny", "base": base, "axes": [{"path": "debias.loss", "values": ["none", "poe"]}]}
    )
    logged: list[str] = []
    with torch_threads(1):
        run = run_study(study, tmp_path / "study", log=logged.append)
    assert len(logged) == 4  # 2 searches + dense references for CE and PoE
    records = read_table_csv(run.csv_path.read_text())
    rows = {r["row"] for r in records}
    assert rows == {
        "loss none",
        "loss poe",
        "dense CE",
        "magnitude CE",
        "dense poe",
        "magnitude poe",
    }
    dev = {(r["row"], r["sparsity"]): r for r in records if r["metric"] == "dev.accuracy"}
    assert dev[("loss poe", 0.5)]["n"] == 2 and dev[("dense CE", 0.0)]["n"] == 2
    assert {r["metric"] for r in records} >= {"hans.non_entailed", "mask.differ_fraction"}
    # the dense CE fine-tune of each seed was built once and reused by the other jobs
    dense_entries = [p for p in (tmp_path / "study/cache").iterdir() if p.name.startswith("dense-")]
    assert len(dense_entries) == 2 * 2  # CE and PoE per seed
    assert run.plot_path.stat().st_size > 10_000
    table = json.loads(run.json_path.read_text())
    assert table["study"]["name"] == "tiny"
    # per-seed records: every mean is traceable to a child folder, its step and its mask
    seeds = read_seeds_csv(run.seeds_path.read_text())
    assert set(seeds[0]) == {"row", "role", "child", "job", "seed", "sparsity", "metric",
                             "value", "selected_step", "mask_sha256", "collapsed"}  # fmt: skip
    poe_dev = [r for r in seeds if (r["row"], r["metric"]) == ("loss poe", "dev.accuracy")]
    assert [r["seed"] for r in poe_dev] == [1, 2]
    mean = dev[("loss poe", 0.5)]["mean"]
    assert sum(r["value"] for r in poe_dev) / 2 == pytest.approx(mean, abs=1e-6)
    for r in poe_dev:
        mask = tmp_path / "study" / r["job"] / f"masks/seed-{r['seed']}/mask-0.50.safetensors"
        assert hashlib.sha256(mask.read_bytes()).hexdigest() == r["mask_sha256"]
        assert r["selected_step"] in (2, 4)
    # the report breaks each mask's movement down per matrix type and per layer
    unit = SearchResult.read(tmp_path / "study" / poe_dev[0]["job"]).units[0]
    assert {"Q", "K", "V", "AO", "I", "O"} <= set(unit.movement["by_type"])
    by_layer = unit.movement["by_layer"]
    assert by_layer and sum(g["entries"] for g in by_layer.values()) < unit.movement["entries"]
    dense_ce = [r for r in seeds if (r["row"], r["metric"]) == ("dense CE", "dev.accuracy")]
    assert [r["mask_sha256"] for r in dense_ce] == [None, None]
    assert len(table["seeds"]) == len(seeds)
    # paired comparisons: the PoE mask against the CE mask, seed by seed
    pairs = {(c["row_a"], c["row_b"], c["metric"]): c for c in table["comparisons"]}
    poe_vs_ce = pairs[("loss poe", "loss none", "dev.accuracy")]
    ce_dev = {r["seed"]: r["value"] for r in seeds
              if (r["row"], r["metric"]) == ("loss none", "dev.accuracy")}  # fmt: skip
    diffs = [r["value"] - ce_dev[r["seed"]] for r in poe_dev]
    assert poe_vs_ce["mean_difference"] == pytest.approx(sum(diffs) / 2)
    assert poe_vs_ce["n"] == 2 and poe_vs_ce["low"] <= poe_vs_ce["mean_difference"]
    assert ("loss poe", "dense poe", "hans.non_entailed") in pairs
    assert run.comparisons_path.read_text().startswith("row_a,sparsity_a,row_b,sparsity_b,")
    # one bias model (the overlap model of PoE), with its HANS predictions and its rows
    (bias,) = json.loads((tmp_path / "study/bias_models.json").read_text())
    assert (bias["kind"], bias["fit"], bias["class_weight"]) == (
        "overlap_2way",
        "out_of_fold",
        "none",
    )
    assert set(bias["mean_p_entailment"]) == {"gold_entailment", "gold_not_entailment"}
    assert 0.0 <= bias["ood"]["hans"]["entailment_share"] <= 1.0
    assert sorted(bias["rows"]) == ["dense poe", "loss poe"]
    # a second run reads every child back
    again = run_study(study, tmp_path / "study", log=logged.append)
    assert len(logged) == 4
    assert again.csv_path.read_text() == run.csv_path.read_text()


def test_runners_sharing_a_study_folder_skip_a_child_another_one_holds(tiny_model, tmp_path):
    from srcore.files import exclusive_lock
    from srcore.jobspec.layout import child_dir_name

    study = two_step_study(tiny_model, ["poe"], [1])
    out = tmp_path / "study"
    held = out / "jobs" / child_dir_name("debias.loss=poe")
    held.mkdir(parents=True)
    logged: list[str] = []
    with torch_threads(1), exclusive_lock(held / ".running"):  # another runner has it
        run = run_study(study, out, log=logged.append)
    assert any("another runner has it" in line for line in logged)
    info = json.loads((out / "run_info.json").read_text())
    assert (info["jobs_done"], info["jobs"], info["complete"]) == (2, 3, False)
    assert "loss poe" not in {
        r["row"] for r in read_table_csv(run.csv_path.read_text()) if r["metric"] == "dev.accuracy"
    }
    with torch_threads(1):
        run = run_study(study, out, log=logged.append)
    assert json.loads((out / "run_info.json").read_text())["complete"] is True
    assert "loss poe" in {r["row"] for r in read_table_csv(run.csv_path.read_text())}


def test_a_child_report_written_before_per_seed_records_still_tables(tmp_path):
    """metrics.json as the code of 68a8353 wrote it (the studies running when per-seed
    records arrived): `srnet study run` on that folder rebuilds the table, its per-seed
    records and comparisons (no mask file there: no sha256) without running the child."""
    from srcore.jobspec.layout import child_dir_name
    from srcore.jobspec.study import expand_study
    from srcore.pipeline.study_run import _write_outputs

    fixture = Path(__file__).parents[1] / "fixtures/reports/metrics-68a8353.json"
    report = json.loads(fixture.read_text())
    study = StudySpec.model_validate(
        {"base": report["spec"], "axes": [{"path": "debias.loss", "values": ["poe"]}],
         "dense_references": False}
    )  # fmt: skip
    children = expand_study(study)
    child_dir = tmp_path / "jobs" / child_dir_name(children[0].key)
    child_dir.mkdir(parents=True)
    (child_dir / "metrics.json").write_text(fixture.read_text())
    run = _write_outputs(study, children, tmp_path, None)
    seeds = read_seeds_csv(run.seeds_path.read_text())
    dev = [r for r in seeds if r["metric"] == "dev.accuracy"]
    assert [(r["row"], r["seed"], r["sparsity"]) for r in dev] == [("loss poe", 1, 0.5)]
    (unit,) = report["results"]
    assert dev[0]["value"] == pytest.approx(unit["metrics"]["dev"]["accuracy"], abs=1e-6)
    assert dev[0]["selected_step"] == unit["selected_step"]
    assert dev[0]["job"] == f"jobs/{child_dir_name(children[0].key)}"
    assert dev[0]["mask_sha256"] is None
    assert json.loads((tmp_path / "run_info.json").read_text())["complete"] is True


def test_only_runs_the_named_rows_and_leaves_the_others_unrun(tiny_model, tmp_path):
    study = two_step_study(tiny_model, ["poe"], [1])
    out = tmp_path / "study"
    with torch_threads(1):
        run = run_study(study, out, log=lambda _line: None, source="s.json", only=["dense CE"])
    info = json.loads((out / "run_info.json").read_text())
    assert (info["jobs_done"], info["jobs"], info["complete"]) == (1, 3, False)
    assert info["auto_precision"] in ("bf16", "fp32")
    rows = {r["row"] for r in read_table_csv(run.csv_path.read_text())}
    assert "dense CE" in rows and "loss poe" not in rows and "dense poe" not in rows
    assert not (out / "jobs" / "debias.loss=poe" / "metrics.json").exists()
    assert info["command"] == "srnet study run s.json --out study --only 'dense CE'"


def test_only_names_a_row_the_study_lacks_before_any_work(tmp_path):
    from srcore.jobspec.study import StudyError

    study = StudySpec.model_validate(
        {"base": {"task": "mnli"}, "axes": [{"path": "debias.loss", "values": ["poe"]}]}
    )
    with pytest.raises(StudyError) as caught:
        run_study(study, tmp_path / "study", only=["loss poe", "dense reweight"])
    assert caught.value.field == "only"
    assert "'dense reweight'" in caught.value.message and "`loss poe`" in caught.value.message
    assert not (tmp_path / "study").exists()


def test_study_run_cli_refuses_an_unknown_only_row_with_exit_2(tmp_path, capsys):
    from srnet.cli import main

    path = tmp_path / "study.json"
    path.write_text(json.dumps({"base": {"task": "mnli"}}))
    code = main(["study", "run", str(path), "--out", str(tmp_path / "out"), "--only", "nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "only: no row 'nope'" in err and "`base`" in err
