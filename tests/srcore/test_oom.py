"""Out of device memory: training fails at once with a job error that names the stage, the
batch, the memory and what to lower; evaluation halves its own batch and gives the same
logits. The out-of-memory is injected (torch.OutOfMemoryError, as CUDA raises it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srcore.evaluation import EvalSet, make_evaluate_fn, predict
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split
from srcore.training.memory import DeviceOutOfMemoryError, memory_use
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer([])


def cuda_oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class OomAbove(torch.nn.Module):
    """A forward pre-hook: out of memory for batches larger than `limit`, from call `after`."""

    def __init__(self, limit: int, after: int = 0) -> None:
        super().__init__()
        self.limit, self.after, self.calls, self.sizes = limit, after, 0, []

    def __call__(self, module, args, kwargs):
        self.calls += 1
        size = kwargs["input_ids"].shape[0]
        self.sizes.append(size)
        if self.calls > self.after and size > self.limit:
            raise cuda_oom()


def test_training_step_oom_is_a_job_error_naming_the_batch(tok):
    train = encode_split(random_pair_split(64, seed=0), tok, max_length=24)
    model = tiny_bert(tok, num_labels=3)
    hook = OomAbove(limit=0, after=2)  # steps 1 and 2 run, step 3 runs out of memory
    model.register_forward_pre_hook(hook, with_kwargs=True)
    config = TrainerConfig(max_steps=10, batch_size=16, lr=1e-3, precision="fp32", stage="dense")
    trainer = Trainer(model, train, config, debias_loss_fn("none"))
    with pytest.raises(DeviceOutOfMemoryError) as info:
        trainer.run()
    err = info.value
    assert err.stage == "dense" and err.batch_size == 16 and 1 <= err.tokens <= 24
    message = str(err)
    assert message.startswith("dense: out of memory in training step 3 (batch 16 × ")
    assert " tokens) on cpu (" in message
    assert "Lower training.batch_size or training.max_length" in message
    assert "not retried" in message and "GiB" in message
    assert isinstance(err.__cause__, torch.OutOfMemoryError)
    assert trainer.step == 2  # it did not go on with a smaller batch
    assert hook.sizes == [16, 16, 16]


def test_evaluation_halves_its_batch_and_gives_the_same_logits(tok):
    split = encode_split(random_pair_split(37, seed=1), tok, max_length=24)
    model = tiny_bert(tok, num_labels=3).eval()
    reference = predict(model, split, batch_size=5)
    hook = OomAbove(limit=5)
    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    logits = predict(model, split, batch_size=32)
    handle.remove()
    np.testing.assert_allclose(logits, reference, rtol=0, atol=1e-6)
    assert hook.sizes[:4] == [32, 16, 8, 4]  # halved until it fits, then kept there
    assert set(hook.sizes[3:]) <= {4, 1} and sum(hook.sizes[3:]) == 37


def test_evaluation_at_batch_one_fails_with_a_job_error(tok):
    split = encode_split(random_pair_split(6, seed=2), tok, max_length=24)
    model = tiny_bert(tok, num_labels=3).eval()
    model.register_forward_pre_hook(OomAbove(limit=0), with_kwargs=True)
    expected = r"evaluation: out of memory in predicting random \(batch 1 × \d+ tokens\) on cpu"
    with pytest.raises(DeviceOutOfMemoryError, match=expected):
        predict(model, split, batch_size=4, progress=lambda done: None)


def test_evaluation_oom_inside_training_keeps_its_message(tok):
    train = encode_split(random_pair_split(16, seed=0), tok, max_length=24)
    dev = encode_split(random_pair_split(8, seed=3), tok, max_length=24)
    model = tiny_bert(tok, num_labels=3)
    fn = make_evaluate_fn([EvalSet("dev", dev)], ("0", "1", "2"), "dev", batch_size=4)

    def evaluate(m):
        with torch.no_grad():
            hook = m.register_forward_pre_hook(OomAbove(limit=0), with_kwargs=True)
            try:
                return fn(m)
            finally:
                hook.remove()

    config = TrainerConfig(max_steps=2, batch_size=8, lr=1e-3, precision="fp32", eval_every=1)
    trainer = Trainer(model, train, config, debias_loss_fn("none"), evaluate_fn=evaluate)
    with pytest.raises(DeviceOutOfMemoryError, match=r"predicting random \(batch 1 ×"):
        trainer.run()


def test_memory_use_reads_the_cuda_allocator(monkeypatch):
    class Props:
        name, total_memory = "NVIDIA H100 80GB HBM3", 80 * 1024**3

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 70 * 1024**3)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device: 75 * 1024**3)
    use = memory_use(torch.device("cuda:0"))
    assert use.describe() == (
        "cuda:0 (NVIDIA H100 80GB HBM3, 80.00 GiB; peak 70.00 GiB allocated, "
        "75.00 GiB reserved by this job)"
    )
    assert use.as_json()["total_gib"] == 80.0
