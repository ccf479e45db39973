import math

import pytest
import torch

from srcore.losses import debias_loss

Z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
Y = torch.tensor([0, 2])
B = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
T = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])


def _softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def _ce(row, y):
    return -math.log(_softmax(row)[y])


def test_none_is_cross_entropy():
    expected = (_ce([2.0, 0.0, -1.0], 0) + _ce([0.5, 0.5, 1.0], 2)) / 2
    assert debias_loss("none", Z, Y).item() == pytest.approx(expected, rel=1e-6)


def test_poe_by_hand():
    total = 0.0
    for z, y, b in zip(Z.tolist(), Y.tolist(), B.tolist(), strict=True):
        logp = [math.log(p) for p in _softmax(z)]
        combined = [lp + math.log(bb) for lp, bb in zip(logp, b, strict=True)]
        total += _ce(combined, y)
    assert debias_loss("poe", Z, Y, B).item() == pytest.approx(total / 2, rel=1e-6)


def test_reweight_by_hand():
    w = [1 - 0.7, 1 - 0.5]
    ce = [_ce([2.0, 0.0, -1.0], 0), _ce([0.5, 0.5, 1.0], 2)]
    expected = (w[0] * ce[0] + w[1] * ce[1]) / (w[0] + w[1])
    assert debias_loss("reweight", Z, Y, B).item() == pytest.approx(expected, rel=1e-6)


def test_conf_reg_by_hand():
    total = 0.0
    for z, y, b, t in zip(Z.tolist(), Y.tolist(), B.tolist(), T.tolist(), strict=True):
        s = [tj ** (1 - b[y]) for tj in t]
        s = [v / sum(s) for v in s]
        p = _softmax(z)
        total += -sum(sj * math.log(pj) for sj, pj in zip(s, p, strict=True))
    got = debias_loss("conf_reg", Z, Y, B, T).item()
    assert got == pytest.approx(total / 2, rel=1e-6)


def test_conf_reg_with_certain_bias_keeps_teacher():
    # b_y = 1 → exponent 0 → uniform targets; b_y = 0 → the teacher itself.
    b = torch.tensor([[1.0, 0.0, 0.0]])
    z = torch.tensor([[0.3, -0.2, 0.1]])
    got = debias_loss("conf_reg", z, torch.tensor([0]), b, torch.tensor([[0.9, 0.05, 0.05]]))
    expected = -sum(math.log(p) for p in _softmax([0.3, -0.2, 0.1])) / 3
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_missing_bias_is_an_error():
    with pytest.raises(ValueError, match="bias"):
        debias_loss("poe", Z, Y)
    with pytest.raises(ValueError, match="teacher"):
        debias_loss("conf_reg", Z, Y, B)
