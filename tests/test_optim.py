"""SGD and Adam against torch.optim: random parameters, random gradients, many steps, every option.

Each case runs STEPS optimizer steps on a few parameters of different shapes, feeding both sides the
same random gradient at every step (so the gradient does not depend on the parameters and the two
trajectories can be compared step by step), and compares every parameter after every step:

* float64: max-norm relative difference below 1e-12 per tensor;
* float32: elementwise below a bound derived by running error analysis (``float32_bound_*`` below):
  alongside the exact trajectory (float64 on the same float32 inputs) the bound propagates, to first
  order, how far one float32 implementation of the update can drift from it, charging every rounding
  u * |result| (u = float32 machine epsilon, twice the unit roundoff) and every scalar cast likewise,
  in whichever of the algebraic forms tinycnn and torch use; the two sides differ by at most twice that.

Invalid options must raise an error naming the optimizer and the value.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinycnn as tc

F64_REL_TOL = 1e-12
STEPS = 25
SHAPES = [(4, 3), (7,), (2, 3, 2, 2)]

SGD_GRID = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd)
            for m, d, n, wd in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 1e-2])
            if not (n and (m == 0 or d != 0))]          # torch rejects those (tested below)
ADAM_GRID = [dict(lr=lr, betas=b, eps=e, weight_decay=wd)
             for lr, b, e, wd in itertools.product([1e-3, 0.1], [(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)],
                                                   [1e-8, 1e-3], [0.0, 0.1])]


def _ids(grid):
    return ["-".join(f"{k}={v}" for k, v in cfg.items()) for cfg in grid]


def make_problem(seed, dtype):
    """Initial parameters and STEPS gradients per parameter (some exactly zero, scales varying)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = []
    for _ in range(STEPS):
        scale = 10.0 ** rng.uniform(-3, 1)
        gs = []
        for s in SHAPES:
            g = scale * rng.standard_normal(s)
            g[rng.random(s) < 0.1] = 0.0
            gs.append(g.astype(dtype))
        grads.append(gs)
    return params, grads


def run_both(torch, kind, options, params0, grads):
    """Run tinycnn and torch.optim side by side; yield (step, i, ours, theirs) for every parameter."""
    ours = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    lr = options.get("lr", 0.05)
    rest = {k: v for k, v in options.items() if k != "lr"}
    if kind == "sgd":
        opt, topt = tc.SGD(ours, lr=lr, **rest), torch.optim.SGD(theirs, lr=lr, **rest)
    else:
        opt, topt = tc.Adam(ours, lr=lr, **rest), torch.optim.Adam(theirs, lr=lr, **rest)
    for step, gs in enumerate(grads):
        for p, tp, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        with torch.no_grad():
            topt.step()
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            yield step, i, p.data, tp.detach().numpy()


# ----------------------------------------------------------------------------------------------
# Exact trajectories and first-order float32 error bounds (running error analysis).
# ----------------------------------------------------------------------------------------------

def float32_bound_sgd(params0, grads, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """Per step and parameter: bound on |float32 implementation - exact| (a list of lists of arrays)."""
    u = float(np.finfo(np.float32).eps)
    out = []
    for i, p0 in enumerate(params0):
        p = p0.astype(np.float64)
        ep = np.zeros_like(p)
        buf = eb = None
        bounds = []
        for gs in grads:
            g = gs[i].astype(np.float64)
            eg = np.zeros_like(p)
            if weight_decay:                                   # g + wd * p: cast, product, sum
                g_new = g + weight_decay * p
                eg = weight_decay * ep + u * (2 * np.abs(weight_decay * p) + np.abs(g_new))
                g = g_new
            if momentum:
                if buf is None:
                    buf, eb = g.copy(), eg.copy()
                else:
                    b_new = momentum * buf + (1 - dampening) * g
                    eb = (momentum * eb + (1 - dampening) * eg
                          + u * (2 * np.abs(momentum * buf) + 2 * np.abs((1 - dampening) * g) + np.abs(b_new)))
                    buf = b_new
                if nesterov:
                    g_new = g + momentum * buf
                    eg = eg + momentum * eb + u * (2 * np.abs(momentum * buf) + np.abs(g_new))
                    g = g_new
                else:
                    g, eg = buf, eb
            p_new = p - lr * g
            ep = ep + lr * eg + u * (2 * np.abs(lr * g) + np.abs(p_new))
            p = p_new
            bounds.append(ep.copy())
        out.append(bounds)
    return out


def float32_bound_adam(params0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    u = float(np.finfo(np.float32).eps)
    b1, b2 = betas
    w = 1 - b1
    out = []
    for i, p0 in enumerate(params0):
        p = p0.astype(np.float64)
        m, v = np.zeros_like(p), np.zeros_like(p)
        ep, em, ev = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        bounds = []
        for t, gs in enumerate(grads, start=1):
            g = gs[i].astype(np.float64)
            eg = np.zeros_like(p)
            if weight_decay:
                g_new = g + weight_decay * p
                eg = weight_decay * ep + u * (2 * np.abs(weight_decay * p) + np.abs(g_new))
                g = g_new
            # m <- m + w (g - m)  (or torch's lerp form g - (g - m)(1 - w)): 3 roundings on |g - m|, 1 on m
            m_new = m + w * (g - m)
            em = (1 - w) * em + w * eg + u * (3 * np.abs(g - m) + np.abs(m_new))
            m = m_new
            # v <- b2 v + (1 - b2) g g
            v_new = b2 * v + (1 - b2) * g * g
            ev = b2 * ev + (1 - b2) * 2 * np.abs(g) * eg + u * (2 * b2 * v + 3 * (1 - b2) * g * g + v_new)
            v = v_new
            step_size = lr / (1 - b1 ** t)
            bc2 = np.sqrt(1 - b2 ** t)
            sv = np.sqrt(v)
            with np.errstate(divide="ignore", invalid="ignore"):
                e_sqrt = np.minimum(np.where(sv > 0, ev / (2 * sv), np.inf), np.sqrt(ev)) + u * sv
            d = sv / bc2 + eps
            ed = e_sqrt / bc2 + 2 * u * sv / bc2 + u * d + u * eps
            r = m / d
            er = em / d + np.abs(m) * ed / d ** 2 + u * np.abs(r)
            p_new = p - step_size * r
            ep = ep + step_size * er + u * (3 * np.abs(step_size * r) + np.abs(p_new))
            p = p_new
            bounds.append(ep.copy())
        out.append(bounds)
    return out


def _assert_trajectories(torch, kind, options, dtype, seed):
    params0, grads = make_problem(seed, dtype)
    if dtype == np.float32:
        lr = options.get("lr", 0.05)
        rest = {k: v for k, v in options.items() if k != "lr"}
        bound = (float32_bound_sgd if kind == "sgd" else float32_bound_adam)(params0, grads, lr, **rest)
    for step, i, ours, theirs in run_both(torch, kind, options, params0, grads):
        where = f"{kind} {options} {np.dtype(dtype).name}: param {i} {SHAPES[i]} after step {step + 1}"
        assert ours.dtype == dtype, f"{where}: dtype became {ours.dtype}"
        diff = np.abs(ours.astype(np.float64) - theirs)
        if dtype == np.float64:
            scale = float(np.abs(theirs).max())
            assert diff.max() <= F64_REL_TOL * scale, (
                f"{where} NOT OK: max diff {diff.max():.3e} at {np.unravel_index(int(diff.argmax()), diff.shape)}"
                f" > {F64_REL_TOL:.0e} * {scale:.3e}")
        else:
            allowed = 2 * bound[i][step]
            k = np.unravel_index(int(np.argmax(diff - allowed)), diff.shape)
            assert diff[k] <= allowed[k], (f"{where} NOT OK: |diff| {diff[k]:.3e} at {k} exceeds the "
                                           f"derived bound {allowed[k]:.3e}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", SGD_GRID, ids=_ids(SGD_GRID))
def test_sgd_matches_torch(torch, options, dtype):
    _assert_trajectories(torch, "sgd", options, dtype, seed=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("options", ADAM_GRID, ids=_ids(ADAM_GRID))
def test_adam_matches_torch(torch, options, dtype):
    _assert_trajectories(torch, "adam", options, dtype, seed=2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind, options, wrong", [
    ("adam", dict(lr=1e-3, weight_decay=0.1), "AdamW"),          # decoupled weight decay: another rule
    ("sgd", dict(momentum=0.9, nesterov=True), "plain momentum"),  # torch without nesterov
    ("sgd", dict(momentum=0.9, dampening=0.3), "no dampening"),
])
def test_comparison_catches_a_different_update_rule(torch, kind, options, wrong, dtype):
    """The checks are not vacuous: tinycnn against torch running a slightly different rule fails."""
    params0, grads = make_problem(4, dtype)
    real_sgd, real_adam = torch.optim.SGD, torch.optim.Adam
    try:
        if wrong == "AdamW":
            torch.optim.Adam = torch.optim.AdamW
        else:
            drop = "nesterov" if wrong == "plain momentum" else "dampening"
            torch.optim.SGD = lambda params, **kw: real_sgd(params, **{k: v for k, v in kw.items() if k != drop})
        with pytest.raises(AssertionError, match="NOT OK"):
            _assert_trajectories(torch, kind, options, dtype, seed=4)
    finally:
        torch.optim.SGD, torch.optim.Adam = real_sgd, real_adam


def test_step_keeps_dtype_and_parameter_identity():
    for dtype in (np.float32, np.float64):
        p = tc.Parameter(np.ones((3, 2), dtype=dtype))
        data = p.data
        for opt in (tc.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), tc.Adam([p], weight_decay=0.1)):
            p.grad = np.full((3, 2), 0.5, dtype=dtype)
            opt.step()
            assert p.data is data and p.data.dtype == dtype       # updated in place, dtype kept


def test_zero_grad_clears_gradients():
    p = tc.Parameter(np.ones(4))
    p.grad = np.arange(4.0)
    tc.SGD([p], lr=0.1).zero_grad()
    assert np.array_equal(p.grad, np.zeros(4))


# ----------------------------------------------------------------------------------------------
# Invalid options: torch.optim rejects each of these; so must tinycnn, naming the optimizer and value.
# ----------------------------------------------------------------------------------------------

def _param():
    return [tc.Parameter(np.zeros(3))]


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-0.1), r"SGD.*learning rate.*-0\.1"),
    (dict(lr=0.1, momentum=-0.5), r"SGD.*momentum.*-0\.5"),
    (dict(lr=0.1, weight_decay=-1e-4), r"SGD.*weight_decay.*-0\.0001"),
    (dict(lr=0.1, nesterov=True), r"SGD.*nesterov.*momentum > 0"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"SGD.*nesterov.*dampening=0\.1"),
])
def test_sgd_rejects_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tc.SGD(_param(), **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-1e-3), r"Adam.*learning rate.*-0\.001"),
    (dict(betas=(1.0, 0.999)), r"Adam.*betas.*\(1\.0, 0\.999\)"),
    (dict(betas=(0.9, -0.1)), r"Adam.*betas.*\(0\.9, -0\.1\)"),
    (dict(eps=-1e-8), r"Adam.*eps.*-1e-08"),
    (dict(weight_decay=-0.1), r"Adam.*weight_decay.*-0\.1"),
])
def test_adam_rejects_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tc.Adam(_param(), **kwargs)


@pytest.mark.parametrize("cls", [tc.SGD, tc.Adam])
def test_empty_parameter_list_is_rejected(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}.*empty parameter list"):
        cls([], lr=0.1)
