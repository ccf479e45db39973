"""The science in miniature: a debiasing loss must make a model ignore a shortcut.

A synthetic pair task. The true signal is a word in text_a (one of 5 "pos" words for label 1,
one of 5 "neg" words for label 0; it agrees with the label 90% of the time). The shortcut is
the token "cue" in text_b: in training it appears in 95% of label-1 pairs and 5% of label-0
pairs; in the OOD split it appears exactly in the label-0 pairs. The bias model sees only the
cue: its probabilities are the training set's empirical P(label | cue present or not).

Plain cross-entropy latches onto the cue (higher ID accuracy than the signal allows, OOD near
0); PoE and reweighting learn the signal (OOD near 100%). Measured over 11 seeds the OOD gap
was never below 80 points; the test asks for 30.
"""

import random

import numpy as np
import pytest

from srcore.data.examples import Example, Split
from srcore.evaluation import evaluate_split
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split
from tests.helpers.tiny_bert import tiny_bert, tiny_tokenizer, torch_threads

POS = [f"pos{i}" for i in range(5)]
NEG = [f"neg{i}" for i in range(5)]
FILLER = [f"w{i}" for i in range(60)]
CUE = "cue"
LABELS = ("0", "1")


def shortcut_split(n: int, seed: int, cue_agrees: float, signal_agrees: float) -> Split:
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        label = rng.randrange(2)
        signal = label if rng.random() < signal_agrees else 1 - label
        a = [rng.choice(FILLER) for _ in range(3)]
        a.insert(rng.randrange(4), rng.choice(POS if signal else NEG))
        b = [rng.choice(FILLER) for _ in range(2)]
        cue = rng.random() < (cue_agrees if label == 1 else 1 - cue_agrees)
        if cue:
            b.insert(rng.randrange(3), CUE)
        examples.append(Example(f"s{i}", " ".join(a), " ".join(b), label))
    return Split(f"shortcut-{seed}", examples, LABELS, "synthetic")


def cue_only_bias(split: Split) -> np.ndarray:
    """The bias model: empirical P(label | cue) on the training set, (N, 2)."""
    has_cue = np.array([CUE in e.text_b.split() for e in split.examples])
    labels = np.array([e.label for e in split.examples])
    p1 = np.where(has_cue, labels[has_cue].mean(), labels[~has_cue].mean())
    return np.stack([1 - p1, p1], axis=1)


@pytest.fixture(scope="module")
def task():
    tokenizer = tiny_tokenizer(POS + NEG + FILLER + [CUE])
    train = shortcut_split(2000, seed=1, cue_agrees=0.95, signal_agrees=0.9)
    encoded = encode_split(train, tokenizer, max_length=32)
    encoded = encoded.with_extras(bias_probs=cue_only_bias(train))
    dev = encode_split(shortcut_split(600, 3, 0.95, 0.9), tokenizer, max_length=32)
    ood = encode_split(shortcut_split(600, 2, cue_agrees=0.0, signal_agrees=1.0), tokenizer, 32)
    return tokenizer, encoded, dev, ood


def train_and_evaluate(task, loss: str, seed: int) -> tuple[float, float]:
    tokenizer, train, dev, ood = task
    # A wider init than BERT's 0.02 gets a 32-wide model off its initial plateau reliably.
    model = tiny_bert(tokenizer, num_labels=2, seed=seed, initializer_range=0.1)
    config = TrainerConfig(max_steps=200, batch_size=32, lr=2e-3, warmup_ratio=0.1, seed=seed)
    with torch_threads(1):
        Trainer(model, train, config, debias_loss_fn(loss), device="cpu").run()
        id_acc = evaluate_split(model, dev, "accuracy", LABELS).metrics["accuracy"]
        ood_acc = evaluate_split(model, ood, "accuracy", LABELS).metrics["accuracy"]
    return id_acc, ood_acc


def test_bias_model_sees_the_cue(task):
    _, train, _, _ = task
    bias = train.extras["bias_probs"]
    assert bias[:, 1].max() == pytest.approx(0.95, abs=0.02)
    assert bias[:, 1].min() == pytest.approx(0.05, abs=0.02)


@pytest.mark.parametrize("seed", [0, 1])
def test_poe_and_reweight_beat_plain_cross_entropy_out_of_distribution(task, seed):
    results = {loss: train_and_evaluate(task, loss, seed) for loss in ("none", "poe", "reweight")}
    none_id, none_ood = results["none"]
    assert none_id > 0.92  # above the 90% the signal allows: it uses the cue
    assert none_ood < 0.4
    for loss in ("poe", "reweight"):
        id_acc, ood_acc = results[loss]
        assert ood_acc >= none_ood + 0.3, (loss, results)
        assert ood_acc > 0.75, (loss, results)
        assert id_acc > 0.75, (loss, results)  # still solves the task in distribution
