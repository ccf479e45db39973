"""The HANS split for the OOD upper bound: per subcase, no premise/hypothesis pair in both
halves, the bundled halves exactly what the split makes, and a job that trains on one half
and evaluates on the other reads them through the ordinary spec fields."""

from __future__ import annotations

import collections

import pytest

from srcore.data.hans_split import (
    EVAL_HALF,
    SOURCE,
    TRAIN_HALF,
    hans_tsv_bytes,
    pair_of,
    read_hans_rows,
    shared_pairs,
    split_hans,
)
from srcore.data.loaders import load_split, sample_data_root
from srcore.jobspec.spec import SourceSpec


@pytest.fixture(scope="module")
def rows():
    return read_hans_rows(sample_data_root() / SOURCE)


@pytest.fixture(scope="module")
def halves(rows):
    return split_hans(rows)


def test_no_pair_is_in_both_halves_and_every_row_is_in_one(rows, halves):
    train, evaluation = halves
    assert shared_pairs(train, evaluation) == set()
    assert len(train) + len(evaluation) == len(rows) == 30_000
    assert sorted(r["pairID"] for r in train + evaluation) == sorted(r["pairID"] for r in rows)


def test_every_subcase_is_split_in_half(rows, halves):
    train, evaluation = halves
    per_train = collections.Counter(r["subcase"] for r in train)
    per_eval = collections.Counter(r["subcase"] for r in evaluation)
    subcases = {r["subcase"] for r in rows}
    assert len(subcases) == 30 and set(per_train) == set(per_eval) == subcases
    for subcase in subcases:  # 1,000 distinct pairs each: exactly 500 and 500
        assert per_train[subcase] == per_eval[subcase] == 500, subcase
    heuristics = collections.Counter((r["heuristic"], r["gold_label"]) for r in train)
    assert set(heuristics.values()) == {2500}  # 3 heuristics × 2 labels, 5 subcases each


def test_a_pair_repeated_across_subcases_goes_where_it_first_went():
    def row(sub: str, a: str, b: str) -> dict[str, str]:
        return {"subcase": sub, "sentence1": a, "sentence2": b}

    rows = [row("s1", f"p{i}", "h") for i in range(10)]
    rows += [row("s2", "p3", "h"), row("s2", "x", "y")]
    train, evaluation = split_hans(rows)
    assert shared_pairs(train, evaluation) == set()
    where = "train" if ("p3", "h") in {pair_of(r) for r in train} else "eval"
    assert [
        r["subcase"]
        for r in (train if where == "train" else evaluation)
        if pair_of(r) == ("p3", "h")
    ] == ["s1", "s2"]
    assert sum(r["subcase"] == "s1" for r in train) == 5


def test_the_split_is_fixed_by_its_seed(rows, halves):
    again = split_hans(rows)
    assert [r["pairID"] for r in again[0]] == [r["pairID"] for r in halves[0]]
    other = split_hans(rows, seed=1)
    assert {r["pairID"] for r in other[0]} != {r["pairID"] for r in halves[0]}


def test_the_bundled_halves_are_exactly_the_split(halves):
    root = sample_data_root()
    assert (root / TRAIN_HALF).read_bytes() == hans_tsv_bytes(halves[0])
    assert (root / EVAL_HALF).read_bytes() == hans_tsv_bytes(halves[1])


def test_a_job_trains_on_one_half_and_evaluates_on_the_other():
    labels = ("contradiction", "entailment", "neutral")
    train = load_split(
        SourceSpec(
            format="hans_tsv",
            path=f"sample:{TRAIN_HALF}",
            label_map={"non-entailment": "contradiction"},
        ),
        labels,
        "ood_train_0",
    )
    evaluation = load_split(
        SourceSpec(format="hans_tsv", path=f"sample:{EVAL_HALF}"),
        ("entailment", "non-entailment"),
        "hans",
    )
    assert len(train.examples) == len(evaluation.examples) == 15_000
    assert {train.label_names[e.label] for e in train.examples} == {"contradiction", "entailment"}
    assert {e.meta["heuristic"] for e in evaluation.examples} == {
        "lexical_overlap",
        "subsequence",
        "constituent",
    }
    pairs = {(e.text_a, e.text_b) for e in train.examples}
    assert not pairs & {(e.text_a, e.text_b) for e in evaluation.examples}


def test_the_upper_bound_study_trains_on_the_train_half_and_scores_only_the_eval_half(tmp_path):
    import json

    from srcore.jobspec.study import StudySpec, expand_study
    from srcore.pipeline.inputs import load_job_data
    from tests.helpers.tiny_model_dir import save_tiny_model

    root = sample_data_root().parents[1]
    study = json.loads((root / "examples/studies/mnli-upper-bound.json").read_text())
    study["base"]["model"] = {"name_or_path": str(save_tiny_model(tmp_path / "model"))}
    study["base"]["data"].update(max_train_examples=64, max_eval_examples=300)
    children = {c.label: c for c in expand_study(StudySpec.model_validate(study))}
    data = load_job_data(children["loss none"].spec)
    assert len(data.train.examples) == 64 + 1_500  # a seeded sample of the 15,000-row half
    hans_train = {(e.text_a, e.text_b) for e in data.train.examples[64:]}
    assert {data.labels[e.label] for e in data.train.examples[64:]} == {
        "contradiction",
        "entailment",
    }
    assert data.ood["hans"].origin.endswith("eval_half.tsv.gz")
    assert len(data.ood["hans"].examples) == 300
    assert not hans_train & {(e.text_a, e.text_b) for e in data.ood["hans"].examples}
    without = load_job_data(children["without HANS-train"].spec)
    assert len(without.train.examples) == 64
    assert without.ood["hans"].origin == data.ood["hans"].origin
