"""SGD(decoupled_weight_decay=True): p = p * (1 - lr * wd) first, then SGD's step on the gradient alone.

torch's SGD has no such option, so two references: a hand-written loop of the documented rule, and
torch's own SGD (momentum, dampening, Nesterov) with weight_decay=0 after torch shrinks the weights
by hand (``p.mul_(1 - lr * wd)``) -- the rule composed from torch's pieces. float64, relative
TORCH_F64_REL_TOL per tensor after every step. Adam(decoupled_weight_decay=True) is torch's option of
that name (and AdamW's rule).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_optim import make_problem
from tolerances import TORCH_F64_REL_TOL

import tinycnn as tc

GRID = [dict(lr=lr, momentum=m, dampening=d, nesterov=n, weight_decay=wd)
        for lr, m, d, n, wd in itertools.product([0.01, 0.2], [0.0, 0.9], [0.0, 0.3], [False, True], [1e-3, 0.1])
        if not (n and (m == 0 or d != 0))]


def reference(params0, grads, lr, momentum, dampening, nesterov, weight_decay):
    """The documented rule, written out: a list (per step) of lists (per parameter) of arrays."""
    ps = [p.copy() for p in params0]
    bufs = [None] * len(ps)
    out = []
    for gs in grads:
        for i, g in enumerate(gs):
            ps[i] = ps[i] * (1 - lr * weight_decay)
            if momentum != 0:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * g
        out.append([p.copy() for p in ps])
    return out


def _assert_rel(ours, want, what):
    diff, scale = float(np.abs(ours - want).max()), float(np.abs(want).max())
    assert diff <= TORCH_F64_REL_TOL * scale, f"{what} NOT OK: {diff:.3e} > {TORCH_F64_REL_TOL} * {scale:.3e}"


def run(options, seed, decoupled=True):
    params0, grads = make_problem(seed, np.float64)
    ps = [tc.Parameter(p.copy()) for p in params0]
    opt = tc.SGD(ps, **options, decoupled_weight_decay=decoupled)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g.copy()
        opt.step()
        yield [p.data.copy() for p in ps]


@pytest.mark.parametrize("options", GRID, ids=[str(i) for i in range(len(GRID))])
def test_matches_the_hand_written_rule(options):
    params0, grads = make_problem(51, np.float64)
    want = reference(params0, grads, **options)
    for step, (ours, theirs) in enumerate(zip(run(options, 51), want)):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _assert_rel(a, b, f"{options} param {i} step {step + 1}")


@pytest.mark.parametrize("options", GRID[::2], ids=[str(i) for i in range(len(GRID[::2]))])
def test_matches_torch_sgd_after_shrinking_by_hand(torch, options):
    params0, grads = make_problem(52, np.float64)
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    rest = {k: v for k, v in options.items() if k != "weight_decay"}
    topt = torch.optim.SGD(theirs, **rest, weight_decay=0.0)
    c = 1 - options["lr"] * options["weight_decay"]
    for step, (ours, gs) in enumerate(zip(run(options, 52), grads)):
        with torch.no_grad():
            for tp, g in zip(theirs, gs):
                tp.mul_(c)
                tp.grad = torch.tensor(g.copy())
            topt.step()
        for i, (a, tp) in enumerate(zip(ours, theirs)):
            _assert_rel(a, tp.detach().numpy(), f"{options} param {i} step {step + 1}")


def test_differs_from_coupled_decay_with_momentum():
    """With momentum the decay term no longer passes through the momentum buffer: a different path."""
    options = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    params0, grads = make_problem(53, np.float64)
    with pytest.raises(AssertionError, match="NOT OK"):
        for step, (ours, coupled) in enumerate(zip(run(options, 53), run(options, 53, decoupled=False))):
            for i, (a, b) in enumerate(zip(ours, coupled)):
                _assert_rel(a, b, f"param {i} step {step + 1}")


@pytest.mark.parametrize("options", [dict(lr=0.01, weight_decay=0.1), dict(lr=0.1, weight_decay=0.3, amsgrad=True)])
def test_adam_decoupled_option_matches_torch_and_adamw(torch, options):
    params0, grads = make_problem(54, np.float64)
    ours = [tc.Parameter(p.copy()) for p in params0]
    twin = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    opt, adamw = tc.Adam(ours, **options, decoupled_weight_decay=True), tc.AdamW(twin, **options)
    topt = torch.optim.Adam(theirs, **options, decoupled_weight_decay=True)
    for step, gs in enumerate(grads):
        for p, q, tp, g in zip(ours, twin, theirs, gs):
            p.grad, q.grad, tp.grad = g.copy(), g.copy(), torch.tensor(g.copy())
        opt.step()
        adamw.step()
        with torch.no_grad():
            topt.step()
        for i, (p, q, tp) in enumerate(zip(ours, twin, theirs)):
            _assert_rel(p.data, tp.detach().numpy(), f"Adam decoupled {options} param {i} step {step + 1}")
            np.testing.assert_array_equal(p.data, q.data)


def test_flag_is_checked_saved_and_loaded():
    ps = [tc.Parameter(np.ones(2))]
    with pytest.raises(TypeError, match=r"SGD: decoupled_weight_decay must be True or False, got 1"):
        tc.SGD(ps, lr=0.1, decoupled_weight_decay=1)
    with pytest.raises(ValueError, match="AdamW's weight decay is decoupled"):
        tc.AdamW([{"params": ps, "decoupled_weight_decay": False}])
    opt = tc.SGD(ps, lr=0.1, weight_decay=0.1, decoupled_weight_decay=True)
    state = opt.state_dict()
    assert state["decoupled_weight_decay"] is True and state["param_groups"][0]["decoupled_weight_decay"] is True
    plain = tc.SGD(ps, lr=0.1)
    plain.load_state_dict(state)
    assert plain.decoupled_weight_decay is True
    ps[0].grad = np.zeros(2)
    plain.step()
    np.testing.assert_array_equal(ps[0].data, np.full(2, 1 - 0.1 * 0.1))
