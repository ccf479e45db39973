"""Merging study folders that ran different seeds (srcore.pipeline.study_merge): seeds run in two
folders, one of them for two rows only, give the table that running them in one folder gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srcore.jobspec.study import StudyError, StudySpec
from srcore.jobspec.study_table import read_table_csv
from srcore.pipeline.study_merge import merge_study, read_part
from srcore.pipeline.study_run import run_study
from tests.helpers.tiny_bert import torch_threads
from tests.srcore.test_study_run import two_step_study


def tiny_study(model: str, seeds: list[int], name: str = "tiny") -> StudySpec:
    return two_step_study(model, ["none", "poe"], seeds, name)


def run_in(folder: Path, study: StudySpec, only: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(study.model_dump_json())
    with torch_threads(1):
        run_study(study, folder, log=lambda _line: None, only=only)
    return folder


def by_cell(csv_path: Path) -> dict[tuple, dict]:
    return {(r["row"], r["sparsity"], r["metric"]): r for r in read_table_csv(csv_path.read_text())}


@pytest.fixture(scope="module")
def parts(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge")
    return {
        "both": run_in(root / "both", tiny_study(tiny_model, [1, 2])),
        "first": run_in(root / "first", tiny_study(tiny_model, [1])),
        # the second seed of two rows only, as for the rows a verdict rests on
        "second": run_in(
            root / "second", tiny_study(tiny_model, [2], "more seeds"), ["loss poe", "dense CE"]
        ),
    }


def test_merged_seeds_give_the_table_of_one_run_over_both(parts, tmp_path):
    out = tmp_path / "merged"
    study, _rows = merge_study([read_part(parts["first"]), read_part(parts["second"])], out)
    assert study.base.training.seeds == [1, 2] and study.name == "tiny"
    merged, both = by_cell(out / "table.csv"), by_cell(parts["both"] / "table.csv")
    # the rows the second folder ran have both seeds, with the same numbers as one run of both
    for (row, sparsity, metric), record in merged.items():
        if row in ("loss poe", "dense CE", "magnitude CE"):
            assert record == both[(row, sparsity, metric)], (row, metric)
        else:  # the others only the first seed
            assert record["n"] == 1, (row, metric)
    assert {k for k in merged if k[0] == "loss poe"} == {k for k in both if k[0] == "loss poe"}
    seeds = json.loads((out / "table.json").read_text())["seeds"]
    jobs = {(r["row"], r["seed"]): r["job"] for r in seeds}
    assert jobs[("loss poe", 2)].startswith("second/jobs/")  # traceable to its part
    assert jobs[("loss none", 1)].startswith("first/jobs/")
    info = json.loads((out / "run_info.json").read_text())
    assert info["complete"] is False  # loss none and dense poe have seed 1 only
    assert [p["seeds"] for p in info["parts"]] == [[1], [2]]
    second_rows = info["parts"][1]["rows"]
    assert second_rows["loss poe"] == [2] and "loss none" not in second_rows
    assert json.loads((out / "study.json").read_text())["base"]["training"]["seeds"] == [1, 2]
    comparisons = (out / "comparisons.csv").read_text()
    assert "loss poe,0.500000,dense CE,0.0,dev.accuracy,2," in comparisons  # paired over both seeds


def test_parts_of_another_design_or_with_the_same_seed_are_refused(parts, tiny_model, tmp_path):
    first = read_part(parts["first"])
    with pytest.raises(StudyError, match="is in both") as caught:
        merge_study([first, read_part(parts["both"])], tmp_path / "a")
    assert caught.value.field == "parts"
    other = tmp_path / "other"
    other.mkdir()
    for name in ("run_info.json", "seeds.csv", "table.json"):
        (other / name).write_bytes((parts["second"] / name).read_bytes())
    changed = tiny_study(tiny_model, [2]).model_dump(mode="json")
    changed["base"]["dense"]["learning_rate"] = 2e-3
    (other / "study.json").write_text(json.dumps(changed))
    with pytest.raises(StudyError, match="not the same study"):
        merge_study([first, read_part(other)], tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    info = json.loads((parts["second"] / "run_info.json").read_text())
    picked = json.loads((parts["first"] / "run_info.json").read_text())["auto_precision"]
    info["auto_precision"] = "fp32" if picked == "bf16" else "bf16"
    (other / "run_info.json").write_text(json.dumps(info))
    (other / "study.json").write_bytes((parts["second"] / "study.json").read_bytes())
    with pytest.raises(StudyError, match="seeds of different precisions are not one study"):
        merge_study([first, read_part(other)], tmp_path / "c")
    with pytest.raises(StudyError, match=r"no run_info\.json \(not a study folder\?\)"):
        read_part(tmp_path)


def test_study_merge_cli_writes_the_table_and_refuses_a_part_as_out(parts, tmp_path, capsys):
    from srnet.cli import main

    first, second = str(parts["first"]), str(parts["second"])
    assert main(["study", "merge", "--out", first, first, second]) == 2
    assert "not to a part" in capsys.readouterr().err
    out = tmp_path / "merged"
    assert main(["study", "merge", "--out", str(out), first, second, "--name", "both"]) == 0
    assert "seeds [1, 2] from 2 folders" in capsys.readouterr().out
    assert (out / "plot.png").stat().st_size > 10_000
    assert json.loads((out / "study.json").read_text())["name"] == "both"
    command = json.loads((out / "run_info.json").read_text())["command"]
    assert command == f"srnet study merge --out {out} {first} {second} --name both"
