"""The bundled MiniLM learns real MNLI in a few dozen steps of our own loop."""

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from srcore.data.loaders import load_split
from srcore.evaluation import EvalSet, make_evaluate_fn
from srcore.jobspec.spec import SourceSpec
from srcore.models import resolve_model_path
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split
from tests.helpers.tiny_bert import torch_threads

MNLI = ("contradiction", "entailment", "neutral")
STEPS, BATCH = 48, 16


@pytest.mark.slow
def test_minilm_beats_chance_on_held_out_mnli():
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = load_split(
        SourceSpec(format="pair_json", path="sample:mnli/train.json"), MNLI, "train",
        max_examples=STEPS * BATCH, seed=0,
    )  # fmt: skip
    held_out = load_split(
        SourceSpec(format="pair_json", path="sample:mnli/dev.json"), MNLI, "dev",
        max_examples=300, seed=0,
    )  # fmt: skip
    dev = encode_split(held_out, tokenizer, max_length=128)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    # A faster learning rate for the new classifier and the pooler (the sentence-embedding
    # training of this model mean-pools and never trained the pooler).
    is_head = lambda name: name.startswith(("classifier", "bert.pooler"))  # noqa: E731
    head = [p for n, p in model.named_parameters() if is_head(n)]
    body = [p for n, p in model.named_parameters() if not is_head(n)]
    config = TrainerConfig(
        max_steps=STEPS, batch_size=BATCH, lr=2e-4, warmup_ratio=0.1, eval_every=STEPS, seed=0
    )
    evaluate_fn = make_evaluate_fn([EvalSet("dev", dev)], MNLI, "dev", batch_size=128)
    with torch_threads(1):  # predictable on a shared CPU; ~40 s on one core
        result = Trainer(
            model, encode_split(train, tokenizer, max_length=128), config,
            debias_loss_fn("none"), params=[{"params": body}, {"params": head, "lr": 1e-3}],
            evaluate_fn=evaluate_fn, device="cpu",
        ).run()  # fmt: skip
    assert result.best_step == STEPS
    accuracy = result.best_metrics["dev"]["accuracy"]
    assert result.best_metrics["dev"]["n"] == 300
    assert accuracy > 0.40, accuracy  # chance is 1/3
