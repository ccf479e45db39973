"""The cheaper evaluation (batches sorted and padded once per set, each linear's weight
computed and cast once per evaluation) gives the logits of a straightforward evaluation bit
for bit, in fp32 and in bf16, for a plain and a mask-training model, on random pairs and on
the bundled MNLI and HANS rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from srcore import eval_batches as eb
from srcore.data.loaders import eval_label_names, load_split
from srcore.evaluation import EvalSet, make_evaluate_fn, predict, split_metrics
from srcore.jobspec.spec import SourceSpec
from srcore.pruning import prunable_weights
from srcore.pruning.mask_training import ScoreMasker
from srcore.training import EncodedSplit, encode_split
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, torch_threads, word_tokenizer

_spec = importlib.util.spec_from_file_location(
    "eval_speed", Path(__file__).resolve().parents[2] / "bench/eval_speed.py"
)
eval_speed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_speed)

MNLI = ("contradiction", "entailment", "neutral")
PRECISIONS = ("fp32", "bf16")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def _pack_lightly_padded_batches(monkeypatch):
    """Tiny random batches are less padded than MNLI's longest: pack from 5% so they are."""
    monkeypatch.setattr(eb, "PACK_MIN_PADDING", 0.05)


# The evaluation as it was written first (sort, then collate and forward each batch under
# autocast, every weight read and its parametrization run on every call): the bench's baseline.
reference_predict = eval_speed.baseline_predict


def masked(model: nn.Module, sparsity: float = 0.5) -> ScoreMasker:
    names = prunable_weights(model, include_classifier=True)
    return ScoreMasker(model, names, sparsity, init="soft")


@pytest.fixture(scope="module")
def random_split() -> EncodedSplit:
    return encode_split(random_pair_split(150, seed=3), word_tokenizer(), max_length=40)


@pytest.fixture(scope="module")
def sample_sets() -> dict[str, EncodedSplit]:
    """300 bundled MNLI dev pairs and 300 HANS pairs, with the tiny word tokenizer."""
    tok = word_tokenizer()
    dev = load_split(
        SourceSpec(format="mnli_dev_tsv", path="sample:mnli/dev_matched.tsv"),
        MNLI, "dev", max_examples=300, seed=0,
    )  # fmt: skip
    hans = load_split(
        SourceSpec(format="hans_tsv", path="sample:hans/heuristics_evaluation_set.txt.gz"),
        eval_label_names("hans", MNLI), "hans", max_examples=300, seed=0,
    )  # fmt: skip
    return {s.name: encode_split(s, tok, max_length=64) for s in (dev, hans)}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("with_mask", [False, True], ids=["dense", "masked"])
def test_predict_is_the_reference_bit_for_bit(random_split, precision, with_mask):
    model = tiny_bert(word_tokenizer(), num_labels=3, seed=5)
    if with_mask:
        masked(model)
    # some batches are padded enough that bf16 multiplies only their real tokens
    assert any(r is not None for r in eb.eval_batches(random_split, 16).real)
    expected = reference_predict(model, random_split, 16, precision)
    got = predict(model, random_split, batch_size=16, precision=precision)
    assert np.array_equal(got, expected)  # not approximately: the same floats
    # the model is as it was: no linear keeps a frozen forward
    assert all("forward" not in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("precision", PRECISIONS)
def test_bundled_mnli_and_hans_metrics_are_the_reference(sample_sets, precision):
    model = tiny_bert(word_tokenizer(), num_labels=3, seed=1, label_names=MNLI)
    masked(model)
    sets = [EvalSet("dev", sample_sets["dev"]), EvalSet("hans", sample_sets["hans"], "hans")]
    assert any(r is not None for r in eb.eval_batches(sample_sets["dev"], 64).real)
    metrics = make_evaluate_fn(sets, MNLI, "dev", batch_size=64, precision=precision)(model)
    for s in sets:
        logits = reference_predict(model, s.encoded, 64, precision)
        assert metrics[s.name] == split_metrics(logits, s.encoded, s.metric, MNLI)


def test_evaluate_fn_pads_each_set_once_and_follows_the_model(random_split, monkeypatch):
    made = []
    real = eb.eval_batches

    def counting(encoded, batch_size, pad_multiple=None):
        made.append(encoded.name)
        return real(encoded, batch_size, pad_multiple)

    monkeypatch.setattr(eb, "eval_batches", counting)
    model = tiny_bert(word_tokenizer(), num_labels=3, seed=2)
    masker = masked(model)
    fn = make_evaluate_fn([EvalSet("dev", random_split)], ("0", "1", "2"), "dev", batch_size=8)
    labels = ("0", "1", "2")
    for sparsity in (0.3, 0.7):  # the mask changes between evaluations, as in training
        masker.reset_thresholds(sparsity)
        expected = reference_predict(model, random_split, 8, "auto")
        assert fn(model)["dev"] == split_metrics(expected, random_split, "accuracy", labels)
    assert made == ["random"]  # sorted and padded for the first evaluation only


def test_frozen_linears_cast_once_and_restore():
    model = tiny_bert(word_tokenizer(), num_labels=3, seed=0)
    masker = masked(model)
    linear = model.bert.encoder.layer[0].attention.self.query
    calls = []
    handle = masker._masks[
        "bert.encoder.layer.0.attention.self.query.weight"
    ].register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(4, 32)
    with torch.inference_mode(), eb.frozen_linears(model, torch.bfloat16) as count:
        assert count == sum(isinstance(m, nn.Linear) for m in model.modules())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = linear(x), linear(x)
    assert len(calls) == 1 and torch.equal(a, b) and a.dtype == torch.bfloat16
    handle.remove()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(linear(x), a)  # the plain forward, the same numbers
    assert "forward" not in linear.__dict__
