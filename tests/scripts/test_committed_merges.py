"""The committed merged studies (results/studies/*/parts/) come back from their parts: merging
the parts again gives the committed table, per-seed records and comparisons byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from srcore.pipeline.study_merge import merge_study, read_part

ROOT = Path(__file__).resolve().parents[2]
MERGED = sorted(p.parent for p in (ROOT / "results" / "studies").glob("*/parts"))


def test_there_are_merged_studies_to_check():
    assert {p.name for p in MERGED} >= {"mnli-structured", "mnli-early-start"}


@pytest.mark.parametrize("folder", MERGED, ids=[p.name for p in MERGED])
def test_a_merged_study_is_its_parts_merged_again(folder, tmp_path):
    info = json.loads((folder / "run_info.json").read_text())
    parts = [read_part(ROOT / part["folder"], root=ROOT) for part in info["parts"]]
    assert all(p.folder.parent == folder / "parts" for p in parts)  # every part is committed
    name = json.loads((folder / "study.json").read_text())["name"]
    merge_study(parts, tmp_path, name)
    for file in ("table.csv", "seeds.csv", "comparisons.csv", "study.json"):
        assert (tmp_path / file).read_bytes() == (folder / file).read_bytes(), file
