import json

import numpy as np
import pytest
import torch

from srcore.data.examples import Example, Split
from srcore.evaluation import (
    EvalSet,
    evaluate_split,
    f1_score,
    hans_metrics,
    label_map,
    make_evaluate_fn,
    paws_metrics,
    predict,
    split_metrics,
)
from srcore.training import encode_split
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads

MNLI = ("contradiction", "entailment", "neutral")
HANS = ("entailment", "non-entailment")
FEVER = ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO")

# (heuristic, gold, predicted task label)
HANS_ROWS = [
    ("lexical_overlap", "entailment", "entailment"),
    ("lexical_overlap", "entailment", "entailment"),
    ("lexical_overlap", "non-entailment", "entailment"),
    ("lexical_overlap", "non-entailment", "neutral"),
    ("subsequence", "entailment", "contradiction"),
    ("subsequence", "non-entailment", "entailment"),
    ("subsequence", "non-entailment", "entailment"),
    ("constituent", "entailment", "entailment"),
    ("constituent", "non-entailment", "contradiction"),
    ("constituent", "non-entailment", "neutral"),
    ("constituent", "non-entailment", "entailment"),
]
HANS_EXPECTED = {
    "accuracy": 6 / 11,
    "entailed": 3 / 4,
    "non_entailed": 3 / 7,
    "heuristics": {
        "lexical_overlap": {"accuracy": 3 / 4, "entailed": 1.0, "non_entailed": 1 / 2},
        "subsequence": {"accuracy": 0.0, "entailed": 0.0, "non_entailed": 0.0},
        "constituent": {"accuracy": 3 / 4, "entailed": 1.0, "non_entailed": 2 / 3},
    },
    "n": 11,
}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer([])


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def _flat(metrics, prefix=""):
    """Nested metrics as {"a/b": value}, for pytest.approx."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _one_hot(labels, names):
    logits = np.zeros((len(labels), len(names)), dtype=np.float32)
    logits[np.arange(len(labels)), [names.index(x) for x in labels]] = 1.0
    return logits


def _hans_split(tokenizer):
    examples = [
        Example(f"ex{i}", "the cat sat", "the cat", HANS.index(gold), meta={"heuristic": h})
        for i, (h, gold, _) in enumerate(HANS_ROWS)
    ]
    return encode_split(Split("hans", examples, HANS, "test"), tokenizer, max_length=16)


def test_hans_table_by_hand(tokenizer):
    encoded = _hans_split(tokenizer)
    logits = _one_hot([pred for _, _, pred in HANS_ROWS], MNLI)
    metrics = split_metrics(logits, encoded, "hans", MNLI)
    spread = {"majority_label": "entailment", "majority_share": 7 / 11, "collapsed": False}
    assert _flat(metrics) == pytest.approx(_flat({**HANS_EXPECTED, **spread}))


def test_hans_metrics_on_eval_label_indices():
    pred = [0 if p == "entailment" else 1 for _, _, p in HANS_ROWS]
    gold = [HANS.index(g) for _, g, _ in HANS_ROWS]
    heur = [h for h, _, _ in HANS_ROWS]
    assert _flat(hans_metrics(pred, gold, heur, HANS)) == pytest.approx(_flat(HANS_EXPECTED))


def test_hans_maps_neutral_and_contradiction_to_non_entailment():
    assert label_map(MNLI, HANS, "hans").tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="entailment/non-entailment"):
        label_map(MNLI, MNLI, "hans")


def test_paws_accuracy_f1_and_per_class():
    gold = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    pred = np.array([1, 0, 1, 1, 0, 0, 1, 1])
    # tp 3, fp 2, fn 1
    assert f1_score(pred, gold, positive=1) == pytest.approx(6 / 9)
    expected = {"accuracy": 5 / 8, "f1": 6 / 9, "per_class": {"0": 0.5, "1": 0.75}, "n": 8}
    assert _flat(paws_metrics(pred, gold, ("0", "1"))) == pytest.approx(_flat(expected))
    assert f1_score(np.zeros(4), np.ones(4), positive=1) == 0.0


def test_fever_symmetric_counts_nei_predictions_as_wrong(tokenizer):
    golds = ["SUPPORTS", "REFUTES", "SUPPORTS", "REFUTES"]
    preds = ["SUPPORTS", "NOT ENOUGH INFO", "NOT ENOUGH INFO", "REFUTES"]
    sym = ("SUPPORTS", "REFUTES")
    examples = [Example(str(i), "a", "b", sym.index(g)) for i, g in enumerate(golds)]
    split = Split("sym", examples, sym, "test")
    encoded = encode_split(split, tokenizer, max_length=8)
    metrics = split_metrics(_one_hot(preds, FEVER), encoded, "fever_symmetric", FEVER)
    spread = {"majority_label": "NOT ENOUGH INFO", "majority_share": 0.5, "collapsed": False}
    assert metrics == {"accuracy": 0.5, "n": 4, **spread}


def test_a_model_that_answers_one_class_is_flagged_collapsed(tokenizer):
    encoded = _hans_split(tokenizer)
    never_entails = _one_hot(["neutral"] * len(HANS_ROWS), MNLI)
    metrics = split_metrics(never_entails, encoded, "hans", MNLI)
    assert metrics["non_entailed"] == 1.0 and metrics["entailed"] == 0.0
    assert metrics["majority_label"] == "non-entailment"
    assert metrics["majority_share"] == 1.0 and metrics["collapsed"] is True
    mixed = _one_hot(["neutral"] * 10 + ["entailment"], MNLI)  # 10/11 = 0.91 < 0.95
    assert split_metrics(mixed, encoded, "hans", MNLI)["collapsed"] is False


def test_f1_metric_needs_the_positive_label(tokenizer):
    encoded = encode_split(random_pair_split(6, num_labels=2), tokenizer, max_length=16)
    logits = _one_hot(["1"] * 6, ("0", "1"))
    expected_f1 = 2 * (encoded.labels == 1).sum() / (6 + (encoded.labels == 1).sum())
    metrics = split_metrics(logits, encoded, "f1", ("0", "1"), positive_label="1")
    assert metrics["f1"] == pytest.approx(expected_f1)
    with pytest.raises(ValueError, match="positive_label"):
        split_metrics(logits, encoded, "f1", ("0", "1"))


def test_predict_batched_and_padded_matches_one_by_one(tokenizer):
    model = tiny_bert(tokenizer, num_labels=3, seed=2)
    encoded = encode_split(random_pair_split(37, seed=4), tokenizer, max_length=32)
    logits = predict(model, encoded, batch_size=8, precision="fp32")  # exact floats: pinned
    assert logits.shape == (37, 3) and logits.dtype == np.float32
    model.eval()
    with torch.no_grad():
        for i in (0, 13, 36):
            ids = torch.as_tensor(encoded.tokens(i), dtype=torch.long)[None]
            types = torch.as_tensor(
                encoded.token_type_ids[encoded.offsets[i] : encoded.offsets[i + 1]],
                dtype=torch.long,
            )[None]
            one = model(input_ids=ids, token_type_ids=types).logits[0].numpy()
            np.testing.assert_allclose(logits[i], one, atol=1e-5)
    assert model.training is False  # predict restores the mode it found


def test_evaluate_split_keeps_predictions_and_is_json(tokenizer):
    model = tiny_bert(tokenizer, num_labels=3, seed=2, label_names=MNLI)
    examples = [
        Example(f"ex{i}", "the cat", "dog ran " * (i % 3 + 1), i % 2, meta={"heuristic": h})
        for i, h in enumerate(["lexical_overlap", "subsequence", "constituent"] * 4)
    ]
    encoded = encode_split(Split("hans", examples, HANS, "t"), tokenizer, max_length=32)
    result = evaluate_split(model, encoded, "hans", MNLI, batch_size=5)
    assert set(result.predictions) == {e.uid for e in examples}
    assert set(result.predictions.values()) <= set(MNLI)
    logits = predict(model, encoded)
    assert result.predictions["ex3"] == MNLI[int(logits[3].argmax())]
    assert json.loads(json.dumps(result.metrics)) == result.metrics
    assert set(result.metrics["heuristics"]) == {"lexical_overlap", "subsequence", "constituent"}


def test_evaluate_fn_selects_on_the_id_set(tokenizer):
    model = tiny_bert(tokenizer, num_labels=2, seed=2)
    dev = encode_split(random_pair_split(20, num_labels=2, seed=1), tokenizer, max_length=16)
    ood = encode_split(random_pair_split(10, num_labels=2, seed=2), tokenizer, max_length=16)
    sets = [EvalSet("dev", dev, "f1", positive_label="1"), EvalSet("ood", ood, "paws")]
    metrics = make_evaluate_fn(sets, ("0", "1"), "dev", selection_key="f1")(model)
    assert metrics["selection"] == metrics["dev"]["f1"]
    spread = {"majority_label", "majority_share", "collapsed"}
    assert set(metrics["ood"]) == {"accuracy", "f1", "per_class", "n", *spread}
    with pytest.raises(ValueError, match="selection set"):
        make_evaluate_fn(sets, ("0", "1"), "hans")
