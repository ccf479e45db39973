import json
import random
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from srcore.bias import BiasFit, BiasResult, bias_probabilities, overlap_features
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
    return bias_probabilities("overlap_2way", mnli_split(), MNLI, BiasFit(seed=0))


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
    other = bias_probabilities(
        "overlap_2way", mnli_split(hf_order), hf_order, BiasFit(seed=0)
    ).probs
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
    result = bias_probabilities("overlap", mnli_split(), MNLI, BiasFit(seed=0))
    assert result.probs.shape == (8999, 3)
    assert not np.array_equal(result.probs[:, 0], result.probs[:, 2])
    assert result.report["oof_accuracy"] > result.report["majority_rate"] + 0.05


def test_seeded_and_deterministic():
    split = Split("t", mnli_split().examples[:600], MNLI, "mnli head")
    a = bias_probabilities("overlap", split, MNLI, BiasFit(seed=3)).probs
    b = bias_probabilities("overlap", split, MNLI, BiasFit(seed=3)).probs
    c = bias_probabilities("overlap", split, MNLI, BiasFit(seed=4)).probs
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
    result = bias_probabilities("claim_only", split, FEVER, BiasFit(seed=0))
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
    a = bias_probabilities("claim_only", split, FEVER, BiasFit(seed=1)).probs
    b = bias_probabilities("claim_only", leaky, FEVER, BiasFit(seed=1)).probs
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
    oof = bias_probabilities("claim_only", split, FEVER, BiasFit(seed=0)).report["mean_gold_prob"]
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
    result = bias_probabilities(
        "overlap", Split("t", examples, MNLI, "tiny"), MNLI, BiasFit(seed=0)
    )
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
    report = bias_probabilities("claim_only", swapped, MNLI, BiasFit(seed=0)).report
    assert report["oof_accuracy"] > report["majority_rate"] + 0.08


# --- fit (out_of_fold / in_sample), class_weight (none / balanced), HANS report -------------


@cache
def hans_split() -> Split:
    from srcore.data.loaders import eval_label_names, load_split
    from srcore.jobspec.task_registry import TASKS

    return load_split(TASKS["mnli"].ood["hans"], eval_label_names("hans", MNLI), "hans")


@cache
def mnli_option(fit: str, class_weight: str) -> BiasResult:
    return bias_probabilities(
        "overlap_2way",
        mnli_split(),
        MNLI,
        BiasFit(seed=0, fit=fit, class_weight=class_weight),
        hans={"hans": hans_split()},
    )


def _two_way_log_likelihood(probs: np.ndarray) -> float:
    is_entailment = gold_indices(mnli_split(), MNLI) == 1
    p = probs[:, 1].astype(np.float64)
    return float(np.where(is_entailment, np.log(p), np.log1p(-p)).mean())


def test_defaults_are_todays_bias_model():
    # The measurement of today's model: mean p(entailment) 0.43 vs 0.29.
    default, explicit = mnli_2way(), mnli_option("out_of_fold", "none")
    np.testing.assert_array_equal(default.probs, explicit.probs)
    report = default.report
    assert (report["fit"], report["class_weight"], report["out_of_fold"]) == (
        "out_of_fold",
        "none",
        True,
    )
    assert report["mean_p_entailment"]["gold_entailment"] == pytest.approx(0.4284, abs=0.002)
    assert report["mean_p_entailment"]["gold_not_entailment"] == pytest.approx(0.2947, abs=0.002)
    by_gold = report["mean_p_entailment_by_gold"]
    assert by_gold["entailment"] == pytest.approx(0.4284, abs=0.002)
    assert by_gold["contradiction"] > by_gold["neutral"]  # measured 0.313 vs 0.276
    assert set(report["mean_gold_prob_by_class"]) == set(MNLI)


def test_in_sample_differs_and_is_more_confident_on_its_own_rows():
    oof, ins = mnli_option("out_of_fold", "none"), mnli_option("in_sample", "none")
    assert not np.array_equal(oof.probs, ins.probs)
    assert np.abs(oof.probs - ins.probs).max() > 0.01  # measured 0.032 (mean 0.002)
    # 4 features cannot memorise: the in-sample gain is real but small on 9k rows
    # (measured log-likelihood -0.57265 vs -0.57306).
    assert _two_way_log_likelihood(ins.probs) > _two_way_log_likelihood(oof.probs)
    assert ins.report["fit"] == "in_sample" and ins.report["folds"] is None
    assert "in_sample_accuracy" in ins.report and "oof_accuracy" not in ins.report
    assert ins.report["out_of_fold"] is False


def test_in_sample_claim_only_memorises_noise():
    # The reason out-of-fold is the default: an expressive model read on its own rows is
    # confident on pure noise (measured mean p(gold) 0.51 in-sample vs 0.34 out-of-fold).
    rng = np.random.default_rng(0)
    examples = [
        Example(str(i), f"claim w{rng.integers(10**9)} w{rng.integers(10**9)}", "", int(y))
        for i, y in enumerate(rng.integers(0, 3, size=600))
    ]
    split = Split("train", examples, FEVER, "noise")
    oof = bias_probabilities("claim_only", split, FEVER, BiasFit(seed=0)).report["mean_gold_prob"]
    ins = bias_probabilities("claim_only", split, FEVER, BiasFit(seed=0, fit="in_sample")).report
    assert ins["mean_gold_prob"] > oof + 0.1


@pytest.mark.parametrize("fit", ["out_of_fold", "in_sample"])
def test_balanced_moves_mean_p_entailment_towards_half(fit):
    # MNLI is 34% entailment: unweighted, the 2-way prior is 0.34; balanced, close to 0.5
    # (measured 0.340 -> 0.478; by gold entailment 0.43 -> 0.57, others 0.29 -> 0.43).
    plain = mnli_option(fit, "none").report
    balanced = mnli_option(fit, "balanced").report
    assert balanced["class_weight"] == "balanced"
    before = plain["mean_probs"]["entailment"]
    after = balanced["mean_probs"]["entailment"]
    assert abs(after - 0.5) < abs(before - 0.5) - 0.1
    assert after == pytest.approx(0.478, abs=0.01)
    for name in MNLI:
        assert (
            balanced["mean_p_entailment_by_gold"][name] > plain["mean_p_entailment_by_gold"][name]
        )
    # still a bias that separates entailment from the rest
    by_gold = balanced["mean_p_entailment_by_gold"]
    assert by_gold["entailment"] > max(by_gold["contradiction"], by_gold["neutral"]) + 0.1


@pytest.mark.parametrize("fit", ["out_of_fold", "in_sample"])
@pytest.mark.parametrize("class_weight", ["none", "balanced"])
def test_overlap_model_calls_nearly_every_hans_pair_entailment(fit, class_weight):
    # Every HANS hypothesis is made of premise words: the overlap model says entailment to
    # all of them (measured 1.000 for every option, mean p(entailment) 0.92 / 0.96 balanced),
    # so its HANS accuracy is the 50% of entailed pairs.
    hans = mnli_option(fit, class_weight).report["ood"]["hans"]
    assert hans["n"] == 30000 and hans["metric"] == "hans"
    assert hans["fitted_on"] == "all training rows"
    assert hans["entailment_share"] > 0.95
    assert hans["entailment_share_by_gold"]["entailment"] > 0.95
    assert hans["entailment_share_by_gold"]["non-entailment"] > 0.95
    assert hans["accuracy"] == pytest.approx(0.5, abs=0.03)
    assert hans["mean_p_entailment_by_gold"]["non-entailment"] > 0.85
    assert set(hans["entailment_share_by_heuristic"]) == {
        "lexical_overlap",
        "subsequence",
        "constituent",
    }


def test_hans_is_scored_by_the_model_fitted_on_all_rows():
    # Same full-data model whatever `fit` is: identical HANS summaries.
    assert (
        mnli_option("out_of_fold", "none").report["ood"]
        == mnli_option("in_sample", "none").report["ood"]
    )


def test_hans_scoring_gives_task_columns_for_every_row():
    from srcore.bias.overlap import overlap_2way_probabilities

    gold = gold_indices(mnli_split(), MNLI)
    _, _, predict = overlap_2way_probabilities(
        mnli_split(), MNLI, gold, BiasFit(seed=0, folds=5, full_model=True)
    )
    assert predict is not None
    probs = predict(hans_split())  # 30k rows in about 0.4 s (measured, not asserted)
    assert probs.shape == (30000, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)


def test_hans_report_by_hand_and_multiclass_decision():
    from srcore.bias.result import hans_summary

    split = Split(
        "hans",
        [
            Example("a", "x", "y", 0, {"heuristic": "subsequence"}),
            Example("b", "x", "y", 1, {"heuristic": "subsequence"}),
            Example("c", "x", "y", 1, {"heuristic": "constituent"}),
        ],
        ("entailment", "non-entailment"),
        "mem",
    )
    probs = np.array([[0.2, 0.6, 0.2], [0.3, 0.4, 0.3], [0.1, 0.3, 0.6]])
    two_way = hans_summary(probs, split, MNLI, two_way=True)
    assert two_way["entailment_share_by_gold"] == {"entailment": 1.0, "non-entailment": 0.0}
    assert two_way["accuracy"] == 1.0
    argmax = hans_summary(probs, split, MNLI, two_way=False)  # 0.4 is row b's argmax
    assert argmax["entailment_share_by_gold"] == {"entailment": 1.0, "non-entailment": 0.5}
    assert argmax["entailment_share_by_heuristic"]["constituent"]["non-entailment"] == 0.0


def test_hans_without_an_entailment_label_is_skipped_not_fatal():
    labels = ("0", "1")
    examples = [Example(str(i), "a b c", "a b" if i % 2 else "d e", i % 2) for i in range(20)]
    result = bias_probabilities(
        "overlap", Split("t", examples, labels, "mem"), labels, hans={"hans": hans_split()}
    )
    assert "no 'entailment'" in result.report["ood"]["hans"]["skipped"]


def test_unknown_fit_and_class_weight():
    with pytest.raises(ValueError, match="unknown bias fit 'loo'"):
        bias_probabilities("overlap_2way", mnli_split(), MNLI, BiasFit(fit="loo"))
    with pytest.raises(ValueError, match="unknown bias class_weight 'auto'"):
        bias_probabilities("overlap_2way", mnli_split(), MNLI, BiasFit(class_weight="auto"))


def test_spec_options_default_and_validate():
    from pydantic import ValidationError

    from srcore.jobspec.spec import JobSpec

    bias = JobSpec().debias.bias
    assert (bias.fit, bias.class_weight) == ("out_of_fold", "none")
    spec = JobSpec.model_validate(
        {"debias": {"loss": "poe", "bias": {"fit": "in_sample", "class_weight": "balanced"}}}
    )
    assert (spec.debias.bias.fit, spec.debias.bias.class_weight) == ("in_sample", "balanced")
    # a dumped file-source spec (defaults written out) validates again
    file_bias = {"source": "file", "path": "b.npy"}
    dumped = JobSpec.model_validate({"debias": {"loss": "poe", "bias": file_bias}}).model_dump()
    JobSpec.model_validate(dumped)
    for option in ({"fit": "in_sample"}, {"class_weight": "balanced"}):
        with pytest.raises(ValidationError, match="source 'auto'"):
            JobSpec.model_validate({"debias": {"loss": "poe", "bias": {**file_bias, **option}}})
    for bad in ({"fit": "loo"}, {"class_weight": "auto"}):
        with pytest.raises(ValidationError):
            JobSpec.model_validate({"debias": {"loss": "poe", "bias": bad}})
    props = JobSpec.model_json_schema()["$defs"]["BiasSpec"]["properties"]
    assert "out_of_fold" in props["fit"]["description"]
    assert "balanced" in props["class_weight"]["description"]
