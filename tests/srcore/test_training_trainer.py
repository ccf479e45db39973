import math

import numpy as np
import pytest
import torch

from srcore.jobspec.callbacks import Cancelled
from srcore.training import Trainer, TrainerConfig, TrainerHooks, debias_loss_fn, encode_split
from srcore.training.trainer import linear_warmup_decay, param_groups
from tests.helpers.callbacks import RecordingCallbacks
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer([])


@pytest.fixture(scope="module")
def train(tokenizer):
    return encode_split(random_pair_split(48, seed=0), tokenizer, max_length=32)


class Scripted:
    """An evaluate_fn that returns the next scripted selection value and keeps a copy of the
    classifier weight it saw."""

    def __init__(self, values):
        self.values = list(values)
        self.seen = []

    def __call__(self, model):
        self.seen.append(model.classifier.weight.detach().clone())
        return {"selection": self.values[len(self.seen) - 1], "dev": {"accuracy": 0.5}}


def _trainer(train, tokenizer, evaluate_fn=None, callbacks=None, hooks=None, **cfg):
    cfg = {"max_steps": 20, "batch_size": 8, "lr": 1e-3, "seed": 1, **cfg}
    model = tiny_bert(tokenizer, num_labels=3, seed=0)
    return Trainer(
        model,
        train,
        TrainerConfig(**cfg),
        debias_loss_fn("none"),
        evaluate_fn=evaluate_fn,
        callbacks=callbacks,
        hooks=hooks,
    )


def test_best_is_selected_only_in_the_last_30_percent(train, tokenizer):
    # evaluations at steps 2, 4, ..., 20; the window starts at step 14
    values = [0.1, 0.99, 0.2, 0.3, 0.4, 0.5, 0.5, 0.7, 0.6, 0.4]
    scripted = Scripted(values)
    result = _trainer(train, tokenizer, scripted, eval_every=2).run()
    assert [h["step"] for h in result.history] == list(range(2, 21, 2))
    assert result.best_step == 16
    assert result.best_metrics["selection"] == 0.7
    snap = result.best_snapshot["classifier.weight"]
    assert torch.equal(snap, scripted.seen[7].cpu())
    assert not torch.equal(snap, scripted.seen[-1].cpu())


def test_final_evaluation_is_always_a_candidate(train, tokenizer):
    # evaluations at 7, 14 and the final 20; the window (last 10%) holds only step 20
    result = _trainer(
        train, tokenizer, Scripted([0.9, 0.8, 0.1]), eval_every=7, select_last_fraction=0.1
    ).run()
    assert [h["step"] for h in result.history] == [7, 14, 20]
    assert result.best_step == 20
    assert result.final_metrics["selection"] == 0.1


class Unselectable(TrainerHooks):
    def before_evaluate(self, step):
        return {"sparsity": 0.5, "selectable": False}


def test_hook_can_exclude_evaluations_but_not_leave_none(train, tokenizer):
    result = _trainer(
        train, tokenizer, Scripted([0.9, 0.8, 0.7, 0.1]), hooks=Unselectable(), eval_every=5,
        select_last_fraction=1.0,
    )  # fmt: skip
    result = result.run()
    assert result.best_step == 20
    assert result.history[0]["info"] == {"sparsity": 0.5, "selectable": False}


class CountSteps(TrainerHooks):
    def __init__(self):
        self.steps = []

    def after_optimizer_step(self, step):
        self.steps.append(step)


def test_should_stop_raises_cancelled_between_steps(train, tokenizer):
    callbacks, hooks = RecordingCallbacks(stop_after_checks=7), CountSteps()
    trainer = _trainer(train, tokenizer, callbacks=callbacks, hooks=hooks)
    with pytest.raises(Cancelled, match="after step 7 of 20"):
        trainer.run()
    assert hooks.steps == [1, 2, 3, 4, 5, 6, 7]
    assert trainer.step == 7


def test_progress_and_metrics_reach_the_callbacks(train, tokenizer):
    callbacks = RecordingCallbacks()
    trainer = _trainer(
        train, tokenizer, Scripted([0.5, 0.6]), callbacks=callbacks, eval_every=10,
        progress_every_s=0, stage="dense", detail="seed 1",
    )  # fmt: skip
    result = trainer.run()
    assert [p.step for p in callbacks.progress] == list(range(1, 21))
    last = callbacks.progress[-1]
    assert (last.stage, last.total_steps, last.detail, last.eta_s) == ("dense", 20, "seed 1", 0)
    assert (last.evaluations_done, last.evaluations_total) == (1, 2)  # before the last one
    assert last.examples_per_s > 0 and result.examples_per_s > 0
    assert [(c.stage, step) for c, step, _ in callbacks.metrics] == [("dense", 10), ("dense", 20)]
    assert math.isfinite(callbacks.metrics[0][2]["train_loss"])


def test_epochs_give_the_step_count(train, tokenizer):
    trainer = _trainer(train, tokenizer, max_steps=None, epochs=2.5)  # 6 batches per epoch
    assert trainer.total_steps == 15
    assert trainer.run().total_steps == 15


def test_lr_warms_up_then_decays_to_zero():
    factor = linear_warmup_decay(warmup_steps=2, total_steps=10)
    assert [factor(s) for s in (0, 1, 2, 9, 10)] == [0.5, 1.0, 1.0, 0.125, 0.0]


def test_weight_decay_skips_biases_and_layer_norm(tokenizer):
    model = tiny_bert(tokenizer, num_labels=2)
    decay, no_decay = param_groups(model.parameters(), 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    ln = model.bert.embeddings.LayerNorm.weight
    assert any(p is ln for p in no_decay["params"])


def test_only_the_given_parameters_train(train, tokenizer):
    model = tiny_bert(tokenizer, num_labels=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(
        model, train, TrainerConfig(max_steps=3, batch_size=8, lr=1e-2),
        debias_loss_fn("none"), params=[model.classifier.weight],
    )  # fmt: skip
    trainer.run()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.weight"}


def test_extras_reach_the_loss(train, tokenizer):
    bias = np.tile([0.98, 0.01, 0.01], (len(train), 1))
    seen = []

    def loss_fn(logits, batch):
        seen.append(batch.extras["bias_probs"])
        return debias_loss_fn("poe")(logits, batch)

    model = tiny_bert(tokenizer, num_labels=3)
    cfg = TrainerConfig(max_steps=2, batch_size=8)
    Trainer(model, train.with_extras(bias_probs=bias), cfg, loss_fn).run()
    assert len(seen) == 2 and seen[0].shape == (8, 3)
    assert torch.allclose(seen[0][:, 0], torch.full((8,), 0.98))


def test_a_diverging_loss_stops_the_run(train, tokenizer):
    def nan_loss(logits, batch):
        return logits.sum() * float("nan")

    model = tiny_bert(tokenizer, num_labels=3)
    trainer = Trainer(model, train, TrainerConfig(max_steps=4), nan_loss)
    with pytest.raises(FloatingPointError, match="step 1"):  # the first step is reported
        trainer.run()


def test_missing_selection_metric_is_an_error(train, tokenizer):
    trainer = _trainer(train, tokenizer, lambda model: {"dev": 1.0}, max_steps=2)
    with pytest.raises(KeyError, match="selection"):
        trainer.run()


def test_progress_is_on_a_timer_not_a_step_count(train, tokenizer):
    """A long interval: only the first and the last step are reported, however many steps."""
    callbacks = RecordingCallbacks()
    _trainer(train, tokenizer, callbacks=callbacks, progress_every_s=3600).run()
    assert [p.step for p in callbacks.progress] == [1, 20]


class Evaluating:
    """An evaluate_fn that takes `progress` and reports 3 batches of 10 examples."""

    def __call__(self, model, progress=None):
        for done in (0, 10, 20, 30):
            progress(done, 30)
        return {"selection": 0.5, "dev": {"accuracy": 0.5}}


def test_progress_is_reported_while_evaluating(train, tokenizer):
    callbacks = RecordingCallbacks()
    _trainer(
        train, tokenizer, Evaluating(), callbacks=callbacks, eval_every=10, progress_every_s=0
    ).run()
    evaluating = [p for p in callbacks.progress if p.phase == "evaluate"]
    # two evaluations (steps 10 and 20), each reported from its start to its end
    assert [(p.step, p.eval_examples_done) for p in evaluating] == [
        (10, 0), (10, 10), (10, 20), (10, 30), (20, 0), (20, 10), (20, 20), (20, 30)
    ]  # fmt: skip
    assert all(p.eval_examples_total == 30 and p.evaluations_total == 2 for p in evaluating)
    assert evaluating[4].evaluations_done == 1  # the first evaluation is finished by then
    assert evaluating[0].eta_s > 0  # the run is not over while it evaluates
