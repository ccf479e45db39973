"""`srnet study compare DIR ROW_A ROW_B` on a folder `srnet study run` wrote: paired
differences from its table.json's per-seed records; an older folder without them is refused
with the way to rebuild it."""

from __future__ import annotations

import json
from pathlib import Path

from srnet.cli import main


def seed(row, sparsity, metric, seed, value):
    return {"row": row, "role": "search", "child": row, "job": f"jobs/{row}", "seed": seed,
            "sparsity": sparsity, "metric": metric, "value": value, "selected_step": 4,
            "mask_sha256": None, "collapsed": 0}  # fmt: skip


def write_study(folder: Path, seeds: list | None) -> Path:
    folder.mkdir()
    body = {"study": {}, "records": []}
    if seeds is not None:
        body["seeds"] = seeds
    (folder / "table.json").write_text(json.dumps(body))
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compare_reads_a_local_study_folder(tmp_path, capsys):
    seeds = [
        seed("loss poe", 0.5, "hans.non_entailed", s, v) for s, v in ((1, 0.2), (2, 0.3), (3, 0.1))
    ] + [
        seed("dense CE", 0.0, "hans.non_entailed", s, v) for s, v in ((1, 0.1), (2, 0.1), (3, 0.1))
    ]
    folder = write_study(tmp_path / "study", seeds)
    code, out, err = run(capsys, "study", "compare", str(folder), "loss poe", "dense CE")
    assert code == 0, err
    # differences 0.1, 0.2, 0: mean 0.1, sd 0.1, t(0.975, 2) = 4.303 → ± 24.84 points
    assert "| loss poe @ 50% | dense CE @ dense | hans.non_entailed | 3 | +10.00 |" in out
    assert "[-14.84, +34.84]" in out and "t interval" in out
    code, out, _ = run(capsys, "study", "compare", str(folder), "loss poe", "dense CE", "--json")
    (diff,) = json.loads(out)
    assert diff["seeds"] == [1, 2, 3] and round(diff["high"], 4) == 0.3484
    code, _, err = run(capsys, "study", "compare", str(folder), "loss poe", "dense CE",
                        "--sparsity", "0.7")  # fmt: skip
    assert code == 2 and "sparsity: `loss poe` (50%) and `dense CE` (dense)" in err
    code, _, err = run(capsys, "study", "compare", str(folder), "loss none", "dense CE")
    assert code == 2 and "row_a: no row `loss none`" in err


def test_an_old_study_folder_without_per_seed_records_is_refused(tmp_path, capsys):
    folder = write_study(tmp_path / "old", None)
    code, _, err = run(capsys, "study", "compare", str(folder), "loss poe", "dense CE")
    assert code == 2 and "no per-seed records" in err and "srnet study run" in err
