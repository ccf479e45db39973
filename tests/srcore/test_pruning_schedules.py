"""The cubic sparsity schedule and which evaluations a gradual run may select."""

from __future__ import annotations

import itertools

import pytest

from srcore.pruning import ConstantSparsity, CubicSparsity, at_sparsity, cubic_sparsity


def test_cubic_values() -> None:
    assert cubic_sparsity(0, 100, 0.7, 0.9) == pytest.approx(0.7)
    assert cubic_sparsity(50, 100, 0.7, 0.9) == pytest.approx(0.9 - 0.2 * 0.125)
    assert cubic_sparsity(25, 100, 0.7, 0.9) == pytest.approx(0.9 - 0.2 * 0.75**3)
    assert cubic_sparsity(100, 100, 0.7, 0.9) == pytest.approx(0.9)
    assert cubic_sparsity(150, 100, 0.7, 0.9) == pytest.approx(0.9)
    values = [cubic_sparsity(s, 10, 0.5, 0.9) for s in range(11)]
    assert values == sorted(values)  # monotone towards the final sparsity
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert steps == sorted(steps, reverse=True)  # fast first, slow at the end


def test_only_final_sparsity_is_selectable() -> None:
    schedule = CubicSparsity(initial=0.7, final=0.9, ramp_steps=60)
    assert not schedule.is_final(0) and not schedule.is_final(59)
    assert schedule.is_final(60) and schedule.sparsity_at(60) == pytest.approx(0.9)
    assert not at_sparsity(schedule.sparsity_at(30), 0.9)
    assert at_sparsity(schedule.sparsity_at(80), 0.9)
    constant = ConstantSparsity(0.5)
    assert constant.is_final(0) and constant.sparsity_at(7) == 0.5
