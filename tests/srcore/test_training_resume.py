"""A run stopped at step k and resumed ends with the same bits as an uninterrupted run."""

import json

import numpy as np
import pytest
import torch

from srcore.evaluation import EvalSet, make_evaluate_fn
from srcore.jobspec.callbacks import Cancelled
from srcore.training import (
    ResumeMismatchError,
    Trainer,
    TrainerConfig,
    TrainerHooks,
    debias_loss_fn,
    encode_split,
)
from srcore.training.checkpoint import load_checkpoint
from tests.helpers.callbacks import RecordingCallbacks
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


TOTAL = 14


@pytest.fixture(scope="module")
def data():
    tok = tiny_tokenizer([])
    train = encode_split(random_pair_split(40, seed=0), tok, max_length=32)  # 5 batches/epoch
    bias = np.random.default_rng(0).dirichlet(np.ones(3), size=len(train))
    dev = encode_split(random_pair_split(24, seed=9), tok, max_length=32)
    return tok, train.with_extras(bias_probs=bias), dev


class Crash(RuntimeError):
    pass


class CountingHooks(TrainerHooks):
    """Resumable hook state, and an optional crash (a dying worker: no checkpoint on exit)."""

    def __init__(self, crash_at=None):
        self.count, self.crash_at = 0, crash_at

    def after_optimizer_step(self, step):
        self.count += 1
        if step == self.crash_at:
            raise Crash(step)

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def _trainer(data, ckpt_dir, callbacks=None, hooks=None, init_seed=0, **cfg):
    """fp32 unless `precision` says otherwise (exact floats must not depend on the host)."""
    tok, train, dev = data
    config = TrainerConfig(
        **{
            "max_steps": TOTAL, "batch_size": 8, "lr": 5e-3, "warmup_ratio": 0.2,
            "eval_every": 4, "checkpoint_every": 5, "checkpoint_dir": ckpt_dir, "seed": 11,
            "weight_decay": 0.01, "precision": "fp32", **cfg,
        }
    )  # fmt: skip
    model = tiny_bert(tok, num_labels=3, seed=init_seed, dropout=0.3)  # dropout uses the RNG
    evaluate_fn = make_evaluate_fn([EvalSet("dev", dev)], ("0", "1", "2"), "dev", batch_size=7)
    return Trainer(
        model, train, config, debias_loss_fn("poe"), evaluate_fn=evaluate_fn,
        callbacks=callbacks, hooks=hooks or CountingHooks(),
    )  # fmt: skip


def _same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    trainer = _trainer(data, tmp_path_factory.mktemp("ref"))
    return trainer, trainer.run()


def test_cancelled_and_resumed_run_is_bit_identical(data, reference, tmp_path):
    ref_trainer, ref = reference
    first = _trainer(data, tmp_path, callbacks=RecordingCallbacks(stop_after_checks=7))
    with pytest.raises(Cancelled):
        first.run()
    assert (tmp_path / "latest").read_text() == "step-00000007"

    hooks = CountingHooks()
    # another initial model: everything must come from the checkpoint
    resumed = _trainer(data, tmp_path, hooks=hooks, init_seed=5)
    result = resumed.run(resume=True)
    assert resumed.step == TOTAL and hooks.count == TOTAL
    assert _same_model(resumed.model, ref_trainer.model)
    assert [h["step"] for h in result.history] == [4, 8, 12, 14]
    assert result.history == ref.history
    assert result.best_step == ref.best_step
    assert all(torch.equal(result.best_snapshot[k], v) for k, v in ref.best_snapshot.items())


def test_crash_resumes_from_the_last_periodic_checkpoint(data, reference, tmp_path):
    ref_trainer, ref = reference
    callbacks = RecordingCallbacks()
    first = _trainer(data, tmp_path, callbacks=callbacks, hooks=CountingHooks(crash_at=8))
    with pytest.raises(Crash):
        first.run()
    assert callbacks.checkpoint_steps() == [5]
    meta = json.loads((tmp_path / "step-00000005" / "meta.json").read_text())
    assert meta["step"] == 5 and meta["config"]["batch_size"] == 8

    resumed = _trainer(data, tmp_path, init_seed=5)
    result = resumed.run(resume=True)
    assert _same_model(resumed.model, ref_trainer.model)
    assert result.history == ref.history
    # only the newest checkpoint and the best snapshot it points to are kept
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"best-{ref.best_step:08d}.pt", "latest", f"step-{TOTAL:08d}"]


def test_resume_after_the_end_returns_the_result_without_training(data, reference):
    ref_trainer, ref = reference
    again = _trainer(data, ref_trainer.config.checkpoint_dir, hooks=CountingHooks(), init_seed=5)
    result = again.run(resume=True)
    assert again.hooks.count == TOTAL  # restored, not trained
    assert _same_model(again.model, ref_trainer.model)
    assert result.best_step == ref.best_step and result.history == ref.history


def test_resume_refuses_changed_settings(data, reference):
    ref_trainer, _ = reference
    changed = _trainer(data, ref_trainer.config.checkpoint_dir, batch_size=4)
    with pytest.raises(ResumeMismatchError, match="batch_size"):
        changed.run(resume=True)


def test_resume_without_checkpoint_starts_fresh(data, tmp_path):
    trainer = _trainer(data, tmp_path / "empty", max_steps=2, eval_every=2)
    assert trainer.run(resume=True).total_steps == 2


def test_a_fresh_run_never_trusts_a_best_file_left_by_an_earlier_run(data, tmp_path):
    # every evaluation is a candidate: step 4 is the best when step 5 is checkpointed
    torch.save({"junk": torch.zeros(1)}, tmp_path / "best-00000004.pt")
    trainer = _trainer(data, tmp_path, hooks=CountingHooks(crash_at=6), select_last_fraction=1.0)
    with pytest.raises(Crash):
        trainer.run()  # a fresh run (resume=False) in the same directory
    _, state, best = load_checkpoint(tmp_path / "step-00000005")
    assert state["best_step"] == 4
    assert set(best) == set(trainer.model.state_dict())


def test_bf16_cancelled_and_resumed_run_is_bit_identical(data, reference, tmp_path):
    # bf16 autocast (native on AMX / AVX512-BF16 hosts, emulated elsewhere): master weights,
    # optimizer state and RNG are fp32 and saved, so a resumed run repeats the same bits.
    ref_trainer = _trainer(data, tmp_path / "ref", precision="bf16")
    ref = ref_trainer.run()
    assert ref.precision == "bf16" and reference[1].precision == "fp32"
    assert not _same_model(ref_trainer.model, reference[0].model)  # bf16 really ran
    assert all(p.dtype == torch.float32 for p in ref_trainer.model.parameters())
    assert all(
        s.dtype == torch.float32
        for state in ref_trainer.optimizer.state.values()
        for s in state.values()
        if s.is_floating_point()
    )

    stop = RecordingCallbacks(stop_after_checks=7)
    first = _trainer(data, tmp_path / "run", callbacks=stop, precision="bf16")
    with pytest.raises(Cancelled):
        first.run()
    resumed = _trainer(data, tmp_path / "run", init_seed=5, precision="bf16")
    result = resumed.run(resume=True)
    assert _same_model(resumed.model, ref_trainer.model)
    assert result.history == ref.history
    assert result.best_step == ref.best_step
    assert all(torch.equal(result.best_snapshot[k], v) for k, v in ref.best_snapshot.items())

    # bf16 and fp32 runs do not mix: an fp32 run refuses the bf16 checkpoint
    with pytest.raises(ResumeMismatchError, match="precision"):
        _trainer(data, tmp_path / "run", precision="fp32").run(resume=True)
