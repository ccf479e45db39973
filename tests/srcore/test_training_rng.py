"""Checkpoints keep the training device's CUDA RNG state only, and still read checkpoints that
hold every visible GPU's (a resume where fewer GPUs are visible must not fail).

No GPU here: torch.cuda's generator functions are replaced by a fake set of devices (the
hardware probed is what we lack); the Python, numpy and CPU torch generators are real.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from srcore.training import checkpoint as ckpt


class FakeGpus:
    """`count` GPUs' generator states, as torch.cuda's get/set functions see them."""

    def __init__(self, count: int) -> None:
        self.states = [torch.full((16,), 100 + i, dtype=torch.uint8) for i in range(count)]
        self.set_calls: list[tuple[int, torch.Tensor]] = []

    def index(self, device) -> int:
        device = torch.device(device) if device is not None else torch.device("cuda")
        return device.index if device.index is not None else 0

    def get_rng_state(self, device="cuda"):
        return self.states[self.index(device)].clone()

    def set_rng_state(self, state, device="cuda"):
        i = self.index(device)
        self.states[i] = state.clone()  # IndexError beyond the visible GPUs, as torch's
        self.set_calls.append((i, state))

    def get_rng_state_all(self):
        return [s.clone() for s in self.states]

    def set_rng_state_all(self, states):
        for i, state in enumerate(states):
            self.states[i] = state.clone()


@pytest.fixture
def gpus(monkeypatch):
    def install(count: int) -> FakeGpus:
        fake = FakeGpus(count)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        for name in ("get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all"):
            monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
        return fake

    return install


def test_capture_keeps_only_the_training_devices_state(gpus):
    fake = gpus(4)
    state = ckpt.capture_rng_state(torch.device("cuda:2"))
    assert isinstance(state["cuda"], torch.Tensor)
    assert torch.equal(state["cuda"], fake.states[2])


def test_cpu_training_saves_no_cuda_state_even_where_gpus_are_visible(gpus):
    gpus(2)
    assert "cuda" not in ckpt.capture_rng_state(torch.device("cpu"))
    assert "cuda" not in ckpt.capture_rng_state()


def test_state_saved_with_one_device_restores_on_that_device(gpus):
    fake = gpus(1)
    saved = ckpt.capture_rng_state(torch.device("cuda"))
    fake.states[0] = torch.zeros(16, dtype=torch.uint8)  # the generator moved on
    ckpt.restore_rng_state(saved, torch.device("cuda"))
    assert fake.set_calls[-1][0] == 0
    assert torch.equal(fake.states[0], torch.full((16,), 100, dtype=torch.uint8))


def old_checkpoint_rng(gpu_count: int) -> dict:
    """What a checkpoint of the earlier code held: every visible GPU's state in a list."""
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": [torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(gpu_count)],
    }


def test_checkpoint_with_four_gpu_states_resumes_where_one_is_visible(gpus):
    fake = gpus(1)
    saved = old_checkpoint_rng(4)
    ckpt.restore_rng_state(saved, torch.device("cuda"))  # was IndexError: 4 states, 1 GPU
    assert [i for i, _ in fake.set_calls] == [0]
    assert torch.equal(fake.states[0], saved["cuda"][0])
    assert torch.equal(torch.get_rng_state(), saved["torch"])  # the rest restored too


def test_list_of_states_gives_the_devices_own_or_the_first():
    states = [torch.full((4,), i, dtype=torch.uint8) for i in range(3)]
    assert torch.equal(ckpt.cuda_rng_state_for(states, torch.device("cuda:2")), states[2])
    assert torch.equal(ckpt.cuda_rng_state_for(states, torch.device("cuda")), states[0])
    assert torch.equal(ckpt.cuda_rng_state_for(states, torch.device("cuda:7")), states[0])
    single = torch.full((4,), 9, dtype=torch.uint8)
    assert ckpt.cuda_rng_state_for(single, torch.device("cuda:3")) is single
    with pytest.raises(ValueError, match="empty"):
        ckpt.cuda_rng_state_for([], torch.device("cuda"))


def test_cuda_state_is_ignored_when_resuming_on_the_cpu(gpus):
    fake = gpus(2)
    ckpt.restore_rng_state(old_checkpoint_rng(2), torch.device("cpu"))
    assert fake.set_calls == []
