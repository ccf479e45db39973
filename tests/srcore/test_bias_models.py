import json
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from srcore.bias import BiasResult, bias_probabilities, overlap_features
from srcore.bias.crossfit import out_of_fold_probabilities
from srcore.bias.overlap import entailment_index, spread_two_way
from srcore.bias.result import gold_indices
from srcore.data.examples import Example, Split

MNLI = ("contradiction", "entailment", "neutral")
FEVER = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")
MNLI_TRAIN = Path(__file__).parents[2] / "srcore/sample_data/mnli/train.json"


@cache
def mnli_split(label_names: tuple[str, ...] = MNLI) -> Split:
    """The bundled 8,999 real MNLI train rows, read directly (loaders live elsewhere)."""
    raw = json.loads(MNLI_TRAIN.read_text(encoding="utf-8"))
    examples = [
        Example(uid=k, text_a=v["text_a"], text_b=v["text_b"], label=label_names.index(v["label"]))
        for k, v in raw.items()
    ]
    return Split("train", examples, label_names, str(MNLI_TRAIN))


@cache
def mnli_2way() -> BiasResult:
    return bias_probabilities("overlap_2way", mnli_split(), MNLI, seed=0)


def test_spread_two_way_by_hand():
    out = spread_two_way(np.array([0.8, 0.2]), 3, entail=1)
    np.testing.assert_allclose(out, [[0.1, 0.8, 0.1], [0.4, 0.2, 0.4]])


def test_entailment_column_found_by_name():
    assert entailment_index(MNLI) == 1
    assert entailment_index(("Entailment", "neutral", "contradiction")) == 0
    with pytest.raises(ValueError, match="needs an 'entailment' label"):
        entailment_index(("0", "1"))


def test_gold_indices_follow_task_order_not_split_order():
    hf_order = ("entailment", "neutral", "contradiction")
    split = Split("t", [Example("a", "x", "y", 0), Example("b", "x", "y", 2)], hf_order, "mem")
    assert gold_indices(split, MNLI).tolist() == [1, 0]
    with pytest.raises(ValueError, match="not task labels"):
        gold_indices(split, ("0", "1"))


def test_two_way_on_real_mnli_spreads_and_sums_to_one():
    result = mnli_2way()
    probs = result.probs
    assert probs.shape == (8999, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    # p_non/2 on contradiction and neutral, p_ent in the middle column.
    np.testing.assert_array_equal(probs[:, 0], probs[:, 2])
    np.testing.assert_allclose(probs[:, 0] * 2 + probs[:, 1], 1.0, atol=1e-6)
    assert result.report["kind"] == "overlap_2way" and result.report["folds"] == 5
    assert result.report["class_distribution"] == {
        "contradiction": 2958,
        "entailment": 3061,
        "neutral": 2980,
    }


def test_two_way_columns_follow_any_label_order():
    hf_order = ("entailment", "neutral", "contradiction")
    other = bias_probabilities("overlap_2way", mnli_split(hf_order), hf_order, seed=0).probs
    np.testing.assert_array_equal(other[:, 1], other[:, 2])
    # Same model, same folds: the same numbers, columns permuted by name.
    np.testing.assert_allclose(other[:, 0], mnli_2way().probs[:, 1], atol=1e-6)


def test_overlap_predicts_entailment_on_real_mnli():
    split, probs = mnli_split(), mnli_2way().probs
    x = overlap_features((e.text_a, e.text_b) for e in split.examples)
    high = x[:, 1] == 1.0  # every hypothesis word is in the premise
    low = x[:, 2] < 0.5
    assert high.sum() > 100 and low.sum() > 1000
    assert probs[high, 1].mean() > probs[low, 1].mean() + 0.3


def test_two_way_beats_majority_out_of_fold():
    report = mnli_2way().report
    assert report["accuracy_space"] == "entailment vs not-entailment"
    assert report["majority_rate"] == pytest.approx(1 - 3061 / 8999, abs=1e-6)
    assert report["oof_accuracy"] > report["majority_rate"] + 0.02
    gold = gold_indices(mnli_split(), MNLI)
    recomputed = ((mnli_2way().probs[:, 1] >= 0.5) == (gold == 1)).mean()
    assert report["oof_accuracy"] == pytest.approx(recomputed, abs=1e-3)
    assert report["mean_gold_prob"] > 1 / 3


def test_multiclass_overlap_beats_majority_on_mnli():
    result = bias_probabilities("overlap", mnli_split(), MNLI, seed=0)
    assert result.probs.shape == (8999, 3)
    assert not np.array_equal(result.probs[:, 0], result.probs[:, 2])
    assert result.report["oof_accuracy"] > result.report["majority_rate"] + 0.05


def test_seeded_and_deterministic():
    split = Split("t", mnli_split().examples[:600], MNLI, "mnli head")
    a = bias_probabilities("overlap", split, MNLI, seed=3).probs
    b = bias_probabilities("overlap", split, MNLI, seed=3).probs
    c = bias_probabilities("overlap", split, MNLI, seed=4).probs
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _claims(n: int, seed: int = 0) -> Split:
    """Synthetic FEVER: "not" in the claim means REFUTES 95% of the time; evidence is noise."""
    rng = random.Random(seed)
    subjects = ["Paris", "The Beatles", "Mount Everest", "Jupiter", "Ada Lovelace", "Python"]
    predicates = ["a city", "a band", "a mountain", "a planet", "a person", "a language"]
    examples = []
    for i in range(n):
        negated = rng.random() < 0.4
        claim = f"{rng.choice(subjects)} is {'not ' if negated else ''}{rng.choice(predicates)} ."
        if negated:
            label = 1 if rng.random() < 0.95 else rng.choice([0, 2])
        else:
            label = rng.choice([0, 2])
        examples.append(Example(str(i), claim, f"evidence {rng.random():.6f}", label))
    return Split("train", examples, FEVER, "synthetic")


def test_claim_only_learns_the_negation_cue():
    split = _claims(1500)
    result = bias_probabilities("claim_only", split, FEVER, seed=0)
    negated = np.array([" not " in e.text_a for e in split.examples])
    assert result.probs[negated, 1].mean() > 0.8
    assert result.probs[~negated, 1].mean() < 0.1
    assert result.report["oof_accuracy"] > result.report["majority_rate"] + 0.2


def test_claim_only_never_reads_the_evidence():
    split = _claims(300)
    leaky = Split(
        "train",
        [Example(e.uid, e.text_a, FEVER[e.label], e.label) for e in split.examples],
        FEVER,
        "leaky",
    )
    a = bias_probabilities("claim_only", split, FEVER, seed=1).probs
    b = bias_probabilities("claim_only", leaky, FEVER, seed=1).probs
    np.testing.assert_array_equal(a, b)


def test_out_of_fold_does_not_memorise():
    # Unique random claims with random labels: nothing generalises. A model scored on its own
    # training claims looks confident on the gold label; out-of-fold it is at chance.
    rng = np.random.default_rng(0)
    examples = [
        Example(str(i), f"claim w{rng.integers(10**9)} w{rng.integers(10**9)}", "", int(y))
        for i, y in enumerate(rng.integers(0, 3, size=600))
    ]
    split = Split("train", examples, FEVER, "noise")
    oof = bias_probabilities("claim_only", split, FEVER, seed=0).report["mean_gold_prob"]
    assert oof < 0.4

    from srcore.bias.claim_only import claim_classifier

    model = claim_classifier().fit([e.text_a for e in examples], [e.label for e in examples])
    in_sample = model.predict_proba([e.text_a for e in examples])
    gold = np.array([e.label for e in examples])
    assert in_sample[np.arange(len(gold)), gold].mean() > oof + 0.1


def test_tiny_and_one_class_folds_still_give_distributions():
    examples = [
        Example(str(i), "a b c", "a b" if i % 4 else "d", 1 if i % 4 else 0) for i in range(8)
    ]
    result = bias_probabilities("overlap", Split("t", examples, MNLI, "tiny"), MNLI, seed=0)
    np.testing.assert_allclose(result.probs.sum(axis=1), 1.0, atol=1e-6)
    # a fold whose fitting part lacks a class gives that class probability 0, never garbage
    probs = out_of_fold_probabilities(
        lambda: None, np.zeros((4, 1)), np.array([2, 2, 2, 2]), n_classes=3, folds=2
    )
    np.testing.assert_array_equal(probs, np.tile([0.0, 0.0, 1.0], (4, 1)))


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown bias model 'hypothesis_only'"):
        bias_probabilities("hypothesis_only", mnli_split(), MNLI)


def test_text_a_only_model_finds_the_real_mnli_hypothesis_bias():
    # The claim-only model on MNLI hypotheses (as text_a) is the known hypothesis-only
    # bias (Gururangan et al. 2018): well above the majority rate on real rows.
    swapped = Split(
        "train",
        [Example(e.uid, e.text_b, e.text_a, e.label) for e in mnli_split().examples],
        MNLI,
        "mnli hypotheses",
    )
    report = bias_probabilities("claim_only", swapped, MNLI, seed=0).report
    assert report["oof_accuracy"] > report["majority_rate"] + 0.08
