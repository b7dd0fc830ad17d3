"""PiecewiseLinearLR: lr_t = base_lr * interp(t, milestones, factors), for every group.

torch has no class of its own for it; ``LambdaLR(opt, lambda t: np.interp(t, milestones, factors))``
is the documented equivalent and computes base_lr * factor exactly as tinycnn does, so the rates
must be equal, not close. The points are also checked by hand.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.schedules import CosineAnnealingLR, PiecewiseLinearLR, SequentialLR


def _sgd(lrs=(0.1,)):
    return tc.SGD([{"params": [tc.Parameter(np.zeros(2))], "lr": lr} for lr in lrs], lr=1.0)


@st.composite
def shapes(draw):
    n = draw(st.integers(1, 5))
    gaps = draw(st.lists(st.floats(0.25, 40.0), min_size=n, max_size=n))
    first = draw(st.sampled_from([0.0, 0.5, 3.0]))
    milestones = list(first + np.cumsum([0.0] + gaps[1:]))
    factors = draw(st.lists(st.floats(0.0, 2.0), min_size=n, max_size=n))
    return milestones, factors


@given(shape=shapes(), lrs=st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=3), steps=st.integers(1, 120))
def test_matches_torch_lambda_lr_with_np_interp(torch, shape, lrs, steps):
    milestones, factors = shape
    ours_opt = _sgd(lrs)
    theirs_opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs], lr=1.0)
    ours = PiecewiseLinearLR(ours_opt, milestones, factors)
    theirs = torch.optim.lr_scheduler.LambdaLR(theirs_opt, lambda t: float(np.interp(t, milestones, factors)))
    for step in range(steps):
        assert ours.get_last_lrs() == theirs.get_last_lr(), f"step {step}"
        assert [g["lr"] for g in ours_opt.param_groups] == theirs.get_last_lr()
        theirs_opt.step()
        theirs.step()
        ours.step()


def test_the_triangle_by_hand():
    # base 0.5, points (0, 0.2), (3, 1), (10, 0): t=0 0.1, t=3 0.5 (the peak), t=6.5 halfway down 0.25,
    # t=10 and after 0; a second group at 2.0 keeps its ratio (x4).
    opt = _sgd((0.5, 2.0))
    sched = PiecewiseLinearLR(opt, [0, 3, 10], [0.2, 1, 0])
    seq = []
    for _ in range(13):
        seq.append(sched.get_last_lrs())
        sched.step()
    assert seq[0] == pytest.approx([0.1, 0.4]) and seq[3] == [0.5, 2.0]
    assert seq[10] == seq[12] == [0.0, 0.0]
    assert sched.factor(6.5) == pytest.approx(0.5) and sched.factor(-1) == pytest.approx(0.2)
    assert seq[1][0] == pytest.approx(0.5 * (0.2 + 0.8 / 3))


def test_in_a_sequence_and_resumed_from_json():
    opt = _sgd()
    warm = PiecewiseLinearLR(opt, [0, 4], [0.0, 1.0])
    seq = SequentialLR(opt, [warm, CosineAnnealingLR(opt, 6)], [4])
    rates = []
    for _ in range(10):
        rates.append(opt.lr)
        seq.step()
    assert rates[:5] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1])
    sched = PiecewiseLinearLR(_sgd(), [0, 2.5, 9], [0.1, 1.0, 0.0])
    for _ in range(4):
        sched.step()
    saved = json.loads(json.dumps(sched.state_dict()))
    fresh = PiecewiseLinearLR(_sgd((0.3,)), [0, 1, 2], [1.0, 1.0, 1.0])
    fresh.load_state_dict(saved)
    for _ in range(6):
        sched.step()
        fresh.step()
        assert fresh.get_last_lrs() == sched.get_last_lrs()
    with pytest.raises(ValueError, match="milestones must be strictly increasing numbers >= 0 and factors >= 0"):
        fresh.load_state_dict({**saved, "factors": [0.1, -1.0, 0.0]})


@pytest.mark.parametrize("milestones, factors, err, match", [
    ([0, 5, 5], [0.1, 1, 0], ValueError, r"PiecewiseLinearLR: milestones must be strictly increasing, got \[0, 5, 5\]"),
    ([0, 5], [0.1, 1, 0], ValueError, "PiecewiseLinearLR: 2 milestones but 3 factors"),
    ([0, -1], [1, 0], ValueError, r"PiecewiseLinearLR: milestones\[1\] must be a finite number >= 0, got -1"),
    ([0, 5], [1, float("nan")], ValueError, r"PiecewiseLinearLR: factors\[1\] must be a finite number >= 0"),
    ([], [], TypeError, "PiecewiseLinearLR: milestones must be a non-empty list of numbers"),
    (5, [1], TypeError, "PiecewiseLinearLR: milestones must be a non-empty list of numbers, got 5"),
    ([0, "3"], [1, 0], TypeError, r"PiecewiseLinearLR: milestones\[1\] must be a number"),
])
def test_bad_arguments(milestones, factors, err, match):
    with pytest.raises(err, match=match):
        PiecewiseLinearLR(_sgd(), milestones, factors)
