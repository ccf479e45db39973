"""The bundled sample data loads through the task registry's own sources, in full."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import srcore
from srcore.data.loaders import eval_label_names, load_split, resolve_data_path, sample_data_root
from srcore.jobspec.spec import SourceSpec
from srcore.jobspec.task_registry import TASKS

EXPECTED_ROWS = {
    ("mnli", "train"): 8999,
    ("mnli", "dev"): 9815,
    ("mnli", "hans"): 30000,
    ("qqp", "train"): 8999,
    ("qqp", "dev"): 1000,
    ("qqp", "paws_qqp"): 677,
    ("fever", "fever_symmetric_v1"): 717,
    ("fever", "fever_symmetric_v2"): 712,
}


def _registry_sources():
    for task in TASKS.values():
        for split_name, source in (("train", task.train), ("dev", task.dev), *task.ood.items()):
            if source is not None:
                metric = getattr(source, "metric", "accuracy")
                yield task.name, split_name, source, eval_label_names(metric, task.labels)


def test_every_registry_source_is_covered():
    assert {(t, s) for t, s, _, _ in _registry_sources()} == set(EXPECTED_ROWS)


@pytest.mark.parametrize(
    ("task", "split_name", "source", "labels"),
    list(_registry_sources()),
    ids=[f"{t}-{s}" for t, s, _, _ in _registry_sources()],
)
def test_bundled_split_loads_with_expected_rows(task, split_name, source, labels):
    split = load_split(source, labels, split_name)
    assert len(split) == EXPECTED_ROWS[(task, split_name)]
    assert len({e.uid for e in split.examples}) == len(split)  # ids are unique
    assert all(e.text_a and e.text_b for e in split.examples)
    assert {e.label for e in split.examples} <= set(range(len(labels)))
    assert Path(split.origin).is_relative_to(sample_data_root())


def test_bundled_label_distributions():
    mnli = TASKS["mnli"]
    dev = load_split(mnli.dev, mnli.labels, "dev")
    assert Counter(mnli.labels[e.label] for e in dev.examples) == {
        "entailment": 3479,
        "contradiction": 3213,
        "neutral": 3123,
    }
    paws = load_split(TASKS["qqp"].ood["paws_qqp"], ("0", "1"), "paws")
    assert Counter(e.label for e in paws.examples) == {0: 486, 1: 191}
    fever = TASKS["fever"]
    sym = load_split(fever.ood["fever_symmetric_v1"], fever.labels, "sym")
    assert Counter(fever.labels[e.label] for e in sym.examples) == {"SUPPORTS": 379, "REFUTES": 338}


def test_full_hans_loads_with_heuristics():
    # Its speed is measured in bench/eval_hans.py (load 0.3 s), not asserted here.
    source = TASKS["mnli"].ood["hans"]
    split = load_split(source, eval_label_names("hans", TASKS["mnli"].labels), "hans")
    assert Counter(e.meta["heuristic"] for e in split.examples) == {
        "lexical_overlap": 10000,
        "subsequence": 10000,
        "constituent": 10000,
    }
    assert Counter(e.label for e in split.examples) == {0: 15000, 1: 15000}
    assert len({e.meta["subcase"] for e in split.examples}) == 30
    assert split.examples[29999].uid == "ex29999"


def test_bundled_files_outside_the_registry():
    mnli_dev = load_split(
        SourceSpec(format="pair_json", path="sample:mnli/dev.json"), TASKS["mnli"].labels, "x"
    )
    assert len(mnli_dev) == 1000
    sym_dev = load_split(
        SourceSpec(
            format="fever_symmetric_v2",
            path="sample:fever_symmetric/v0.2/fever_symmetric_dev.jsonl",
        ),
        TASKS["fever"].labels,
        "x",
    )
    assert len(sym_dev) == 708


def test_resolve_data_path(tmp_path, monkeypatch):
    bundled = resolve_data_path("sample:mnli/train.json")
    assert bundled == Path(srcore.__file__).parent / "sample_data" / "mnli" / "train.json"
    assert bundled.is_file()
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "dev.tsv").write_text("x\n", encoding="utf-8")
    assert resolve_data_path("~/dev.tsv") == tmp_path / "dev.tsv"


def test_loaders_import_neither_torch_nor_datasets():
    code = (
        "import sys; import srcore.data.loaders; "
        "print(sorted(m for m in ('torch', 'datasets', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"
