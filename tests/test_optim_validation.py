"""Every optimizer hyper-parameter is checked at construction: a number, finite, in range.

A NaN or infinite learning rate used to be accepted and turned every weight into NaN one step later;
each case below is refused with an error naming the optimizer, the argument and the value, before
any weight can change. ``params`` must be Parameters: a list of plain arrays is refused saying what
to pass.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinycnn as tc

NAN, INF = float("nan"), float("inf")


def _params():
    return [tc.Parameter(np.ones(3)), tc.Parameter(np.ones((2, 2)))]


# (optimizer, argument, allowed minimum or None, whether the minimum itself is allowed, upper bound or None)
RANGES = {
    "SGD": {"lr": 0, "momentum": 0, "weight_decay": 0, "dampening": None},
    "Adam": {"lr": 0, "eps": 0, "weight_decay": 0},
    "AdamW": {"lr": 0, "eps": 0, "weight_decay": 0},
    "RMSprop": {"lr": 0, "alpha": 0, "eps": 0, "weight_decay": 0, "momentum": 0},
}
REQUIRED = {"SGD": dict(lr=0.1)}


def _make(name, **kwargs):
    return getattr(tc, name)(_params(), **{**REQUIRED.get(name, {}), **kwargs})


CASES = [(name, arg, value) for name, args in RANGES.items() for arg, low in args.items()
         for value in [NAN, INF, -INF] + ([-0.5] if low is not None else [])]


@pytest.mark.parametrize("name, arg, value", CASES, ids=[f"{n}-{a}={v}" for n, a, v in CASES])
def test_non_finite_or_negative_hyperparameter_is_refused(name, arg, value):
    with pytest.raises(ValueError) as info:
        _make(name, **{arg: value})
    msg = str(info.value)
    assert msg.startswith(f"{name}: {arg}") and repr(value) in msg, msg


TYPE_CASES = [(name, arg, value) for name, args in RANGES.items() for arg in args
              for value in ["0.1", True, None, [0.1], np.array([0.1, 0.2])]]


@pytest.mark.parametrize("name, arg, value", TYPE_CASES, ids=[f"{n}-{a}={v!r}" for n, a, v in TYPE_CASES])
def test_hyperparameter_that_is_not_a_number_is_refused(name, arg, value):
    with pytest.raises(TypeError, match=rf"^{name}: {arg}.* must be a number \(int or float\), got "):
        _make(name, **{arg: value})


@pytest.mark.parametrize("name, arg", [("SGD", "nesterov"), ("Adam", "amsgrad"), ("AdamW", "amsgrad"),
                                       ("RMSprop", "centered"), ("SGD", "maximize"), ("Adam", "maximize"),
                                       ("AdamW", "maximize"), ("RMSprop", "maximize")])
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_flags_must_be_bools(name, arg, value):
    extra = dict(momentum=0.9) if name == "SGD" else {}
    with pytest.raises(TypeError, match=rf"{name}: {arg} must be True or False, got {re.escape(repr(value))}"):
        _make(name, **{arg: value}, **extra)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("betas", [(NAN, 0.999), (0.9, INF), (0.9, 1.0), (-0.1, 0.9), ("0.9", 0.99),
                                   (True, 0.9), (0.9,), 0.9, (0.9, 0.99, 0.999)])
def test_betas_are_checked(name, betas):
    with pytest.raises(ValueError, match=rf"{name}: betas must be a pair .* in \[0, 1\), got {re.escape(repr(betas))}"):
        _make(name, betas=betas)


@pytest.mark.parametrize("alpha", [1.5, -0.01])
def test_rmsprop_alpha_outside_0_1(alpha):
    with pytest.raises(ValueError, match=rf"RMSprop: alpha must be a finite number >= 0 and <= 1, got {alpha}"):
        tc.RMSprop(_params(), alpha=alpha)


# -- the reported cases, literally ----------------------------------------------------------------

def test_reported_cases():
    params = _params()
    for make, match in [
        (lambda: tc.SGD(params, lr=float("nan")), r"SGD: lr \(learning rate\) must be a finite number >= 0, got nan"),
        (lambda: tc.SGD(params, lr=float("inf")), r"SGD: lr \(learning rate\) .* got inf"),
        (lambda: tc.Adam(params, lr=float("nan")), r"Adam: lr \(learning rate\) .* got nan"),
        (lambda: tc.SGD(params, lr=0.1, momentum=float("nan")), r"SGD: momentum .* got nan"),
        (lambda: tc.SGD(params, lr=0.1, weight_decay=float("nan")), r"SGD: weight_decay .* got nan"),
        (lambda: tc.Adam(params, weight_decay=float("nan")), r"Adam: weight_decay .* got nan"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"SGD: lr \(learning rate\) must be a number \(int or float\), got '0.1' \(str\)"):
        tc.SGD(params, lr="0.1")
    for p in params:                               # nothing was touched by the refused constructions
        assert np.array_equal(p.data, np.ones(p.data.shape))


def test_valid_edge_values_are_accepted_as_torch_accepts_them():
    # zero rates and coefficients, integers, NumPy scalars
    tc.SGD(_params(), lr=0, momentum=0, dampening=-0.5, weight_decay=0)
    tc.SGD(_params(), lr=np.float32(0.1), momentum=np.float64(0.9), nesterov=np.True_)
    tc.Adam(_params(), lr=1, betas=(0, 0), eps=0, weight_decay=0)
    tc.AdamW(_params(), betas=[0.5, 0.25])
    tc.RMSprop(_params(), alpha=0, eps=0, momentum=0)
    tc.RMSprop(_params(), alpha=1)


# -- params ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_plain_arrays_are_refused_saying_what_to_pass(name):
    cls = getattr(tc, name)
    with pytest.raises(TypeError, match=rf"{name}: params\[0\] is a plain ndarray of shape \(3,\), not a "
                                        rf"tc.Parameter.*model.parameters\(\)"):
        cls([np.zeros(3), np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match=rf"{name}: params must be a list of Parameters, got a ndarray.*model.parameters"):
        cls(np.zeros(3), lr=0.1)
    model = tc.Sequential(tc.Dense(2, 2))
    with pytest.raises(TypeError, match=rf"{name}: params must be a list of Parameters, got a Sequential.*model.parameters"):
        cls(model, lr=0.1)
    with pytest.raises(TypeError, match=rf"{name}: params must be a list of Parameters, got a single Parameter"):
        cls(tc.Parameter(np.zeros(2)), lr=0.1)
    with pytest.raises(TypeError, match=rf"{name}: params must be a list of Parameters, got a int"):
        cls(3, lr=0.1)
    p = tc.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match=rf"{name}: params\[1\] is the same Parameter as params\[0\]"):
        cls([p, p], lr=0.1)
    with pytest.raises(TypeError, match=rf"{name}: params\[0\] holds ndarray data of dtype int64"):
        cls([tc.Parameter(np.zeros(2, dtype=np.int64))], lr=0.1)
    cls((q for q in model.parameters()), lr=0.1)             # any iterable of Parameters is fine
