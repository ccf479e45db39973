"""The typed evaluation (issue 17 item 2): `Evaluation.from_payload` tells the evaluated sets
from the extras of the flat payload that metrics.json histories and Metric rows hold; each set
is a `SetMetrics` (headline, HANS heuristics, PAWS classes, collapse fields); and what is read
is written back with the same keys, so files and rows keep their bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srcore.evaluation import hans_metrics, paws_metrics, prediction_spread
from srcore.jobspec.results import (
    DenseFineTune,
    Evaluation,
    HistoryEntry,
    SearchResult,
    SetMetrics,
    SummaryRow,
    evaluation_payload,
)
from srcore.jobspec.study_table import flatten_metrics

ENT = ("entailment", "non-entailment")


def real_payload() -> dict:
    """A payload as the trainer records it, from the real metric functions."""
    gold = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 0, 0, 0])
    heuristics = [
        "lexical_overlap",
        "lexical_overlap",
        "subsequence",
        "subsequence",
        "constituent",
        "constituent",
    ]
    hans = {**hans_metrics(pred, gold, heuristics, ENT), **prediction_spread(pred, ENT)}
    paws = {**paws_metrics(pred, gold, ("0", "1")), **prediction_spread(pred, ("0", "1"))}
    dev = {"accuracy": 0.75, "n": 8, **prediction_spread(np.zeros(8, dtype=int), ("a", "b"))}
    entry = {
        "step": 40,
        "metrics": {"dev": dev, "hans": hans, "paws": paws, "selection": 0.75},
        "train_loss": 0.42,
        "info": {"sparsity": 0.5, "selectable": True},
    }
    return json.loads(json.dumps(evaluation_payload(entry)))  # as stored: JSON


def test_sets_and_extras_apart():
    payload = {**real_payload(), "movement": {"differ_fraction": 0.01, "n": 12}}
    evaluation = Evaluation.from_payload(payload)
    assert sorted(evaluation.sets) == ["dev", "hans", "paws"]
    assert evaluation.selection == 0.75 and evaluation.sparsity == 0.5
    assert evaluation.train_loss == 0.42
    assert evaluation.movement == {"differ_fraction": 0.01, "n": 12}  # a dict with n: no set
    assert evaluation.extras == {"selectable": True}

    hans = evaluation.sets["hans"]
    assert hans.n == 6 and hans.accuracy == pytest.approx(3 / 6)
    assert hans.heuristics is not None
    assert list(hans.heuristics) == ["lexical_overlap", "subsequence", "constituent"]
    assert hans.heuristics["lexical_overlap"].entailed == 0.5
    assert hans.heuristics["subsequence"].non_entailed == 0.5
    assert hans.majority_label in ENT and hans.collapsed is False
    paws = evaluation.sets["paws"]
    assert paws.per_class == {"0": pytest.approx(2 / 3), "1": pytest.approx(1 / 3)}
    assert paws.headline == paws.accuracy and paws.f1 is not None
    dev = evaluation.sets["dev"]
    assert dev.collapsed is True and dev.majority_share == 1.0  # one class for every example


def test_read_and_written_back_byte_for_byte():
    payload = real_payload()
    evaluation = Evaluation.from_payload(payload)
    assert json.dumps(evaluation.payload()) == json.dumps(payload)
    for name, values in payload.items():
        if name in evaluation.sets:  # no null fields added to a set that lacked them
            assert json.dumps(evaluation.sets[name].as_json()) == json.dumps(values)
    assert "f1" not in evaluation.sets["dev"].as_json()


def test_headline_is_accuracy_else_f1_and_finite():
    assert SetMetrics(f1=0.4, n=3).headline == 0.4
    assert SetMetrics(accuracy=0.7, f1=0.4).headline == 0.7
    assert SetMetrics(accuracy=float("nan"), f1=0.4).headline == 0.4
    assert SetMetrics(n=3).headline is None


def test_numbers_are_the_study_tables_and_unknown_metrics_are_kept():
    payload = real_payload()
    evaluation = Evaluation.from_payload(payload)
    sets = {name: payload[name] for name in evaluation.sets}
    flat = {f"{n}.{k}": v for n, m in evaluation.sets.items() for k, v in m.numbers().items()}
    assert flat == flatten_metrics(sets)
    assert flat["hans.constituent.non_entailed"] == 0.0
    assert "hans.lexical_overlap.non_entailed" not in flat  # None: no such pairs
    assert "dev.n" not in flat and "dev.majority_share" not in flat
    custom = SetMetrics.model_validate({"accuracy": 0.5, "n": 4, "brier": 0.2})
    assert custom.numbers() == {"accuracy": 0.5, "brier": 0.2}
    assert custom.as_json() == {"accuracy": 0.5, "n": 4, "brier": 0.2}


def test_old_and_odd_payloads_still_read():
    # Before sets were dicts, some rows held flat numbers; they are extras, not sets.
    odd = Evaluation.from_payload({"dev_accuracy": 0.61, "hans": 0.51, "train_loss": None})
    assert odd.sets == {} and odd.extras == {"dev_accuracy": 0.61, "hans": 0.51}
    assert odd.payload() == {"dev_accuracy": 0.61, "hans": 0.51, "train_loss": None}
    # A set a magnitude baseline scored with accuracy only.
    bare = Evaluation.from_payload({"dev": {"accuracy": 0.5}, "sparsity": 0.9})
    assert bare.sets["dev"].headline == 0.5 and bare.train_loss is None


def test_history_entries_are_typed():
    entry = HistoryEntry.model_validate(
        {
            "step": 4,
            "metrics": {"dev": {"accuracy": 0.6, "n": 2}, "selection": 0.6},
            "train_loss": 1.5,
            "info": {"sparsity": 0.7},
        }
    )
    evaluation = entry.evaluation
    assert evaluation.sets["dev"].accuracy == 0.6
    assert (evaluation.selection, evaluation.sparsity, evaluation.train_loss) == (0.6, 0.7, 1.5)
    assert evaluation_payload(entry) == evaluation_payload(entry.model_dump())


OLD_DENSE_RESULT = {  # result.json of a stage-cache entry as the untyped code wrote it
    "loss": "none",
    "seed": 2,
    "selected_step": 20,
    "selected": {"dev": {"accuracy": 0.8, "n": 64}, "hans": {"accuracy": 0.5}, "selection": 0.8},
    "history": [
        {
            "step": 20,
            "metrics": {"dev": {"accuracy": 0.8}, "selection": 0.8},
            "train_loss": 0.3,
            "info": {},
        }
    ],
    "total_steps": 20,
    "examples_per_s": 123.4,
}


def test_a_cached_dense_result_reads_and_gives_its_point(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps(OLD_DENSE_RESULT, indent=1))
    result = DenseFineTune.read(tmp_path)  # an older entry: no "precision"
    assert result.precision is None and result.total_steps == 20
    point = result.point(cached=True)
    assert point.metrics == {"dev": {"accuracy": 0.8, "n": 64}, "hans": {"accuracy": 0.5}}
    assert (point.seed, point.loss, point.selected_step, point.cached) == (2, "none", 20, True)
    assert point.sets["hans"].headline == 0.5
    again = tmp_path / "again"
    again.mkdir()
    DenseFineTune.model_validate({**OLD_DENSE_RESULT, "precision": "bf16"}).write(again)
    assert json.loads((again / "result.json").read_text()) == {
        **OLD_DENSE_RESULT,
        "precision": "bf16",
    }


def test_an_old_metrics_json_reads_with_its_summary_typed(tmp_path):
    summary = [
        {
            "sparsity": 0.5,
            "seeds": [1, 2],
            "sets": {"dev": {"accuracy": {"mean": 0.7, "std": 0.01, "n": 2}}},
        }
    ]
    body = {
        "spec": {"task": "mnli"},
        "spec_hash": "ab" * 32,
        "task": "mnli",
        "labels": ["contradiction", "entailment", "neutral"],
        "selection_metric": "accuracy",
        "data": {"train": 64},
        "bias": None,
        "dense": [],
        "results": [],
        "summary": summary,
        "versions": {"srcore": "0.1.0"},
        "seconds": 12.5,
    }
    (tmp_path / "metrics.json").write_text(json.dumps(body))
    result = SearchResult.read(tmp_path)
    assert isinstance(result.summary[0], SummaryRow)
    assert result.summary[0].sets["dev"]["accuracy"].mean == 0.7
    assert result.summary_json() == summary
    assert result.report()["summary"] == summary


def test_history_and_spec_are_typed_on_read(tmp_path):
    from srcore.jobspec.spec import JobSpec

    spec = JobSpec.model_validate({"name": "typed", "task": "mnli"}).model_dump(mode="json")
    entry = {
        "step": 4,
        "metrics": {"dev": {"accuracy": 0.6}, "selection": 0.6},
        "train_loss": 0.2,
        "info": {"sparsity": 0.0},
    }
    dense = {
        "seed": 1,
        "selected_step": 4,
        "metrics": {"dev": {"accuracy": 0.6}},
        "history": [entry],
        "cached": False,
    }
    body = {
        "spec": spec,
        "spec_hash": "cd" * 32,
        "task": "mnli",
        "labels": ["a", "b", "c"],
        "selection_metric": "accuracy",
        "data": {},
        "bias": None,
        "dense": [dense],
        "results": [],
        "summary": [],
        "versions": {},
        "seconds": 1.0,
    }
    (tmp_path / "metrics.json").write_text(json.dumps(body))
    result = SearchResult.read(tmp_path)
    (history_entry,) = result.dense[0].history
    assert isinstance(history_entry, HistoryEntry) and history_entry.step == 4
    assert history_entry.evaluation.sets["dev"].accuracy == 0.6
    assert result.report()["dense"][0]["history"] == [entry]  # written back as it was
    assert result.job_spec.name == "typed" and result.job_spec.task == "mnli"


def test_evaluated_sets_of_a_trainer_evaluation():
    from srcore.jobspec.results import evaluated_sets

    metrics = real_payload()
    sets = evaluated_sets({**metrics, "empty": {"accuracy": None, "n": 0}})
    assert list(sets) == ["dev", "hans", "paws", "empty"]
    assert sets["hans"] is not None and sets["empty"] == {"accuracy": None, "n": 0}
