"""`BiasFit`: the one fit-settings object every bias model reads; a job's bias-cache key is
the one default fits always had (the entries on disk stay valid)."""

from __future__ import annotations

import inspect

import pytest

from srcore.bias import BiasFit, bias_probabilities, cache_key_parts
from srcore.bias.cache import training_digest
from srcore.bias.claim_only import claim_only_probabilities
from srcore.bias.overlap import overlap_2way_probabilities, overlap_multiclass_probabilities
from srcore.data.examples import Example, Split

LABELS = ("contradiction", "entailment", "neutral")


def _split() -> Split:
    rows = [Example(f"e{i}", f"the cat sat {i}", "the cat" if i % 3 else "a dog", i % 3)
            for i in range(30)]  # fmt: skip
    return Split("train", rows, LABELS, "memory")


def test_every_bias_model_takes_the_same_settings_object():
    for model in (overlap_2way_probabilities, overlap_multiclass_probabilities,
                  claim_only_probabilities):  # fmt: skip
        assert list(inspect.signature(model).parameters) == ["train", "labels", "gold", "settings"]


def test_settings_are_validated_naming_the_field():
    with pytest.raises(ValueError, match="unknown bias fit 'loo'; known: out_of_fold, in_sample"):
        BiasFit(fit="loo")
    with pytest.raises(ValueError, match="unknown bias class_weight 'auto'"):
        BiasFit(class_weight="auto")
    assert BiasFit().accuracy_key == "oof_accuracy"
    assert BiasFit(fit="in_sample").accuracy_key == "in_sample_accuracy"


def test_the_settings_reach_the_report():
    report = bias_probabilities(
        "overlap", _split(), LABELS, BiasFit(seed=2, folds=3, fit="out_of_fold", negation=True)
    ).report
    assert (report["seed"], report["folds"], report["fit"]) == (2, 3, "out_of_fold")
    assert "negation" in " ".join(report["features"])
    assert (
        "in_sample_accuracy"
        in bias_probabilities("overlap", _split(), LABELS, BiasFit(fit="in_sample")).report
    )


def test_a_default_fit_keys_the_cache_as_before():
    split = _split()
    parts = cache_key_parts("overlap_2way", split, LABELS, BiasFit(seed=0, fit="in_sample"))
    assert parts == {
        "kind": "overlap_2way", "labels": list(LABELS), "seed": 0,
        "train": training_digest(split), "fit": "in_sample", "class_weight": "none",
        "hans": {}, "options": {},
    }  # fmt: skip
    other = cache_key_parts("overlap", split, LABELS, BiasFit(folds=3, negation=True), sha="x")
    assert other["options"] == {"folds": 3, "negation": True, "sha": "x"}
