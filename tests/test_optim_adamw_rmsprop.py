"""AdamW, RMSprop and Adam(amsgrad=True) against torch.optim, trajectories over many steps.

As in test_optim.py: a few parameters of different shapes, the same random gradient fed to both sides
at every step (some entries exactly zero, the scale varying over four decades), every parameter
compared after every step, float64, max-norm relative difference below TORCH_F64_REL_TOL (1e-10).
A run on a small CNN with real gradients (the loss's) follows the same path as torch within
TRAJECTORY_F64_REL_TOL. Each comparison is shown able to fail against a slightly different rule.
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import tinycnn as tc
from test_optim import SHAPES, make_problem
from tolerances import TORCH_F64_REL_TOL, TRAJECTORY_F64_REL_TOL, assert_rel_close

ADAMW_GRID = [dict(lr=lr, betas=b, eps=e, weight_decay=wd, amsgrad=a)
              for lr, b, e, wd, a in itertools.product([1e-3, 0.1], [(0.9, 0.999), (0.3, 0.9)], [1e-8, 1e-3],
                                                      [0.0, 1e-2, 0.3], [False, True])]
ADAM_AMSGRAD_GRID = [dict(lr=lr, betas=b, eps=1e-8, weight_decay=wd, amsgrad=True)
                     for lr, b, wd in itertools.product([1e-3, 0.1], [(0.9, 0.999), (0.0, 0.5)], [0.0, 0.1])]
RMSPROP_GRID = [dict(lr=lr, alpha=al, eps=e, weight_decay=wd, momentum=m, centered=c)
                for lr, al, e, wd, m, c in itertools.product([1e-3, 0.05], [0.99, 0.3], [1e-8, 1e-2], [0.0, 0.1],
                                                             [0.0, 0.9], [False, True])]
MAKERS = {"adamw": (lambda p, **kw: tc.AdamW(p, **kw), lambda torch: torch.optim.AdamW),
          "adam": (lambda p, **kw: tc.Adam(p, **kw), lambda torch: torch.optim.Adam),
          "rmsprop": (lambda p, **kw: tc.RMSprop(p, **kw), lambda torch: torch.optim.RMSprop),
          "sgd": (lambda p, **kw: tc.SGD(p, **kw), lambda torch: torch.optim.SGD)}


def _ids(grid):
    return ["-".join(f"{k}={v}" for k, v in cfg.items()) for cfg in grid]


def assert_same_trajectory(torch, kind, options, seed, torch_cls=None, rel=TORCH_F64_REL_TOL):
    params0, grads = make_problem(seed, np.float64)
    ours = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    make, torch_cls_of = MAKERS[kind]
    opt = make(ours, **options)
    topt = (torch_cls or torch_cls_of(torch))(theirs, **options)
    moved = 0.0
    for step, gs in enumerate(grads):
        for p, tp, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        with torch.no_grad():
            topt.step()
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            theirs_np = tp.detach().numpy()
            diff = float(np.abs(p.data - theirs_np).max())
            scale = float(np.abs(theirs_np).max())
            assert diff <= rel * scale, (f"{kind} {options}: param {i} {SHAPES[i]} after step {step + 1} NOT OK: "
                                         f"max diff {diff:.3e} > {rel:.0e} * {scale:.3e}")
            moved = max(moved, float(np.abs(p.data - params0[i]).max()))
    assert moved > 0 or options.get("lr", 1) == 0, "the parameters never moved"


@pytest.mark.parametrize("options", ADAMW_GRID, ids=_ids(ADAMW_GRID))
def test_adamw_matches_torch(torch, options):
    assert_same_trajectory(torch, "adamw", options, seed=5)


@pytest.mark.parametrize("options", ADAM_AMSGRAD_GRID, ids=_ids(ADAM_AMSGRAD_GRID))
def test_adam_amsgrad_matches_torch(torch, options):
    assert_same_trajectory(torch, "adam", options, seed=6)


@pytest.mark.parametrize("options", RMSPROP_GRID, ids=_ids(RMSPROP_GRID))
def test_rmsprop_matches_torch(torch, options):
    assert_same_trajectory(torch, "rmsprop", options, seed=7)


MAXIMIZE_CASES = [("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
                  ("sgd", dict(lr=0.05)),
                  ("adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
                  ("adamw", dict(lr=0.01, weight_decay=0.1)),
                  ("rmsprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1))]


@pytest.mark.parametrize("kind, options", MAXIMIZE_CASES, ids=[f"{k}-" + _ids([c])[0] for k, c in MAXIMIZE_CASES])
def test_maximize_matches_torch(torch, kind, options):
    assert_same_trajectory(torch, kind, {**options, "maximize": True}, seed=11)
    with pytest.raises(AssertionError, match="NOT OK"):       # and differs from descending
        real = MAKERS[kind][1](torch)
        assert_same_trajectory(torch, kind, {**options, "maximize": True}, seed=11,
                               torch_cls=lambda ps, **kw: real(ps, **{**kw, "maximize": False}))


def test_defaults_are_torchs(torch):
    p = [tc.Parameter(np.zeros(2))]
    adamw, rms = tc.AdamW(p), tc.RMSprop(p)
    t_adamw = torch.optim.AdamW([torch.zeros(2, requires_grad=True)]).defaults
    t_rms = torch.optim.RMSprop([torch.zeros(2, requires_grad=True)]).defaults
    assert (adamw.lr, adamw.betas, adamw.eps, adamw.weight_decay, adamw.amsgrad) == (
        t_adamw["lr"], tuple(t_adamw["betas"]), t_adamw["eps"], t_adamw["weight_decay"], t_adamw["amsgrad"])
    assert (rms.lr, rms.alpha, rms.eps, rms.weight_decay, rms.momentum, rms.centered) == (
        t_rms["lr"], t_rms["alpha"], t_rms["eps"], t_rms["weight_decay"], t_rms["momentum"], t_rms["centered"])
    assert tc.Adam(p).amsgrad is False


@pytest.mark.parametrize("kind, options, wrong", [
    ("adamw", dict(lr=0.1, weight_decay=0.3), "Adam"),                      # L2 instead of decoupled decay
    ("adam", dict(lr=0.1, amsgrad=True), "Adam-no-amsgrad"),
    ("rmsprop", dict(lr=0.05, centered=True), "RMSprop-uncentered"),
    ("rmsprop", dict(lr=0.05, momentum=0.9), "RMSprop-no-momentum"),
])
def test_comparison_catches_a_different_update_rule(torch, kind, options, wrong):
    """The checks are not vacuous: against torch running a slightly different rule, they fail."""
    drop = {"Adam-no-amsgrad": "amsgrad", "RMSprop-uncentered": "centered", "RMSprop-no-momentum": "momentum"}
    if wrong == "Adam":
        cls = torch.optim.Adam
    else:
        real = MAKERS[kind][1](torch)
        cls = lambda params, **kw: real(params, **{k: v for k, v in kw.items() if k != drop[wrong]})  # noqa: E731
    with pytest.raises(AssertionError, match="NOT OK"):
        assert_same_trajectory(torch, kind, options, seed=8, torch_cls=cls)


# ----------------------------------------------------------------------------------------------
# float32: elementwise within a bound derived by running error analysis, as in test_optim.py
# (alongside the exact trajectory, float64 on the same float32 inputs, propagate to first order how
# far one float32 implementation can drift from it, every rounding and scalar cast charged
# u * |result|, u = float32 machine epsilon; the two sides differ by at most twice that).
# ----------------------------------------------------------------------------------------------

def _sqrt_err(x, ex):
    """Bound on |sqrt(x + d) - sqrt(x)| for |d| <= ex: |d| / sqrt(x), and never more than sqrt(|d|)."""
    sx = np.sqrt(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(np.where(sx > 0, ex / sx, np.inf), np.sqrt(ex))


def float32_bound_adam_family(params0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                              decoupled=False):
    """Adam / AdamW (decoupled=True), with or without amsgrad: per step and parameter, the bound."""
    u = float(np.finfo(np.float32).eps)
    b1, b2 = betas
    w = 1 - b1
    out = []
    for i, p0 in enumerate(params0):
        p = p0.astype(np.float64)
        m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        ep, em, ev, evmax = (np.zeros_like(p) for _ in range(4))
        bounds = []
        for t, gs in enumerate(grads, start=1):
            g = gs[i].astype(np.float64)
            eg = np.zeros_like(p)
            if weight_decay and decoupled:                     # p * (1 - lr wd): scalar cast, product
                c = 1 - lr * weight_decay
                p_new = c * p
                ep = abs(c) * ep + 2 * u * np.abs(p_new)
                p = p_new
            elif weight_decay:
                g_new = g + weight_decay * p
                eg = weight_decay * ep + u * (2 * np.abs(weight_decay * p) + np.abs(g_new))
                g = g_new
            m_new = m + w * (g - m)                            # either lerp form: 3 roundings on |g - m|, 1 on m
            em = (1 - w) * em + w * eg + u * (3 * np.abs(g - m) + np.abs(m_new))
            m = m_new
            v_new = b2 * v + (1 - b2) * g * g
            ev = b2 * ev + (1 - b2) * 2 * np.abs(g) * eg + u * (2 * b2 * v + 3 * (1 - b2) * g * g + v_new)
            v = v_new
            if amsgrad:                                        # max is exact and 1-Lipschitz
                vmax = np.maximum(vmax, v)
                evmax = np.maximum(evmax, ev)
                vv, evv = vmax, evmax
            else:
                vv, evv = v, ev
            step_size = lr / (1 - b1 ** t)
            bc2 = np.sqrt(1 - b2 ** t)
            sv = np.sqrt(vv)
            e_sqrt = _sqrt_err(vv, evv) + u * sv
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


def float32_bound_rmsprop(params0, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    u = float(np.finfo(np.float32).eps)
    w = 1 - alpha
    out = []
    for i, p0 in enumerate(params0):
        p = p0.astype(np.float64)
        s, a, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        ep, es, ea, eb = (np.zeros_like(p) for _ in range(4))
        bounds = []
        for gs in grads:
            g = gs[i].astype(np.float64)
            eg = np.zeros_like(p)
            if weight_decay:
                g_new = g + weight_decay * p
                eg = weight_decay * ep + u * (2 * np.abs(weight_decay * p) + np.abs(g_new))
                g = g_new
            s_new = alpha * s + w * g * g                      # scalar casts, 2 products, 1 sum
            es = alpha * es + w * 2 * np.abs(g) * eg + u * (2 * alpha * s + 3 * w * g * g + s_new)
            s = s_new
            if centered:
                a_new = a + w * (g - a)
                ea = (1 - w) * ea + w * eg + u * (3 * np.abs(g - a) + np.abs(a_new))
                a = a_new
                r = s - a * a                                  # a*a and the difference: 2 roundings
                er = es + 2 * np.abs(a) * ea + u * (a * a + np.abs(r))
            else:
                r, er = s, es
            r = np.maximum(r, 0.0)
            sr = np.sqrt(r)
            d = sr + eps
            ed = _sqrt_err(r, er) + u * sr + u * d + u * eps   # sqrt, the sum, the cast of eps
            q = g / d
            eq = eg / d + np.abs(g) * ed / d ** 2 + u * np.abs(q)
            if momentum > 0:
                b_new = momentum * buf + q
                eb = momentum * eb + eq + u * (2 * momentum * np.abs(buf) + np.abs(b_new))
                buf = b_new
                step, estep = buf, eb
            else:
                step, estep = q, eq
            p_new = p - lr * step
            ep = ep + lr * estep + u * (2 * np.abs(lr * step) + np.abs(p_new))
            p = p_new
            bounds.append(ep.copy())
        out.append(bounds)
    return out


def assert_float32_within_bound(torch, kind, options, seed, torch_cls=None):
    params0, grads = make_problem(seed, np.float32)
    if kind == "rmsprop":
        bound = float32_bound_rmsprop(params0, grads, **options)
    else:
        bound = float32_bound_adam_family(params0, grads, **options, decoupled=(kind == "adamw"))
    ours = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    opt = MAKERS[kind][0](ours, **options)
    topt = (torch_cls or MAKERS[kind][1](torch))(theirs, **options)
    for step, gs in enumerate(grads):
        for p, tp, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        with torch.no_grad():
            topt.step()
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            assert p.data.dtype == np.float32
            diff = np.abs(p.data.astype(np.float64) - tp.detach().numpy().astype(np.float64))
            allowed = 2 * bound[i][step]
            k = np.unravel_index(int(np.argmax(diff - allowed)), diff.shape)
            assert diff[k] <= allowed[k], (f"{kind} {options} float32: param {i} after step {step + 1} NOT OK: "
                                           f"|diff| {diff[k]:.3e} at {k} exceeds the derived bound {allowed[k]:.3e}")


F32_CASES = ([("adamw", c) for c in ADAMW_GRID[::3]] + [("adam", c) for c in ADAM_AMSGRAD_GRID]
             + [("rmsprop", c) for c in RMSPROP_GRID[::2]])


@pytest.mark.parametrize("kind, options", F32_CASES, ids=[f"{k}-" + _ids([c])[0] for k, c in F32_CASES])
def test_float32_within_derived_bound(torch, kind, options):
    assert_float32_within_bound(torch, kind, options, seed=10)


def test_float32_comparison_catches_a_different_update_rule(torch):
    real = torch.optim.RMSprop
    for kind, options, cls in [
        ("adamw", dict(lr=0.1, weight_decay=0.3), torch.optim.Adam),
        ("rmsprop", dict(lr=0.05, centered=True), lambda ps, **kw: real(ps, **{**kw, "centered": False})),
    ]:
        with pytest.raises(AssertionError, match="NOT OK"):
            assert_float32_within_bound(torch, kind, options, seed=10, torch_cls=cls)


# ----------------------------------------------------------------------------------------------
# A small CNN trained with real gradients: the whole path equals torch's.
# ----------------------------------------------------------------------------------------------

def _small_cnn(rng):
    return tc.Sequential(tc.Conv2D(2, 4, 3, padding=1, dtype=np.float64, rng=rng), tc.ReLU(), tc.MaxPool2D(2),
                         tc.Flatten(), tc.Dense(4 * 3 * 3, 5, dtype=np.float64, rng=rng))


def _torch_cnn(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(36, 5)).double()


@pytest.mark.parametrize("kind, options", [
    ("adamw", dict(lr=3e-3, weight_decay=0.05)),
    ("adamw", dict(lr=1e-2, betas=(0.8, 0.99), amsgrad=True)),
    ("rmsprop", dict(lr=1e-3, momentum=0.5, centered=True, weight_decay=1e-3)),
    ("rmsprop", dict(lr=3e-3)),
])
def test_small_cnn_trajectory_matches_torch(torch, kind, options):
    rng = np.random.default_rng(21)
    model, ref = _small_cnn(rng), _torch_cnn(torch)
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    opt = MAKERS[kind][0](model.parameters(), **options)
    topt = MAKERS[kind][1](torch)(ref.parameters(), **options)
    loss_fn = tc.SoftmaxCrossEntropy()
    for step in range(12):
        x = rng.standard_normal((6, 2, 6, 6))
        y = rng.integers(0, 5, 6)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert_rel_close(np.array(loss), tloss.detach().numpy(), TRAJECTORY_F64_REL_TOL, f"{kind} loss at step {step}")
    for (name, tp), p in zip(ref.named_parameters(), model.parameters()):
        assert_rel_close(p.data, tp.detach().numpy(), TRAJECTORY_F64_REL_TOL, f"{kind} {options} final {name}")


# ----------------------------------------------------------------------------------------------
# State: resume continues the same trajectory; a bad state is refused and changes nothing.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda p: tc.AdamW(p, lr=0.05, amsgrad=True),
    lambda p: tc.Adam(p, lr=0.05, amsgrad=True),
    lambda p: tc.RMSprop(p, lr=0.01, momentum=0.9, centered=True),
    lambda p: tc.RMSprop(p, lr=0.01),
], ids=["adamw-amsgrad", "adam-amsgrad", "rmsprop-centered-momentum", "rmsprop"])
def test_resume_from_state_dict_is_bit_identical(make):
    params0, grads = make_problem(9, np.float64)
    a = [tc.Parameter(p.copy()) for p in params0]
    opt = make(a)
    for gs in grads[:10]:
        for p, g in zip(a, gs):
            p.grad = g.copy()
        opt.step()
    # through JSON-able scalars + arrays, as a checkpoint stores them
    state = opt.state_dict()
    scalars = json.loads(json.dumps({k: v for k, v in state.items() if not isinstance(v, list) or k == "betas"}))
    restored_state = {**state, **scalars}
    b = [tc.Parameter(p.data.copy()) for p in a]
    fresh = make(b)
    fresh.load_state_dict(restored_state)
    for gs in grads[10:]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g.copy(), g.copy()
        opt.step()
        fresh.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_bad_state_is_refused_and_changes_nothing():
    params = [tc.Parameter(np.ones(3))]
    opt = tc.RMSprop(params, lr=0.01, momentum=0.9)
    good = opt.state_dict()
    before = json.dumps({k: v for k, v in good.items() if not isinstance(v, list)})
    cases = [
        ({**good, "square_avg": [-np.ones(3)]}, ValueError, r"RMSprop.load_state_dict: 'square_avg\[0\]' holds negative"),
        ({**good, "square_avg": [np.full(3, np.nan)]}, ValueError, r"square_avg\[0\]' holds non-finite"),
        ({**good, "momentum_buffer": [None]}, ValueError, r"'momentum_buffer\[0\]' is None"),
        ({**good, "alpha": float("nan")}, ValueError, r"RMSprop.load_state_dict: alpha must be a finite number"),
        ({**good, "lr": "0.1"}, TypeError, r"RMSprop.load_state_dict: lr \(learning rate\) must be a number"),
        ({**good, "type": "AdamW"}, ValueError, r"belongs to a 'AdamW' optimizer, not RMSprop"),
        ({**good, "square_avg": [np.ones(4)]}, ValueError, r"shape mismatch: square_avg\[0\]"),
    ]
    for state, err, match in cases:
        with pytest.raises(err, match=match):
            opt.load_state_dict(state)
        assert json.dumps({k: v for k, v in opt.state_dict().items() if not isinstance(v, list)}) == before
    adam = tc.Adam(params, amsgrad=True)
    bad = {**adam.state_dict(), "max_exp_avg_sq": [-np.ones(3)]}
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: 'max_exp_avg_sq\[0\]' holds negative"):
        adam.load_state_dict(bad)
    old = {k: v for k, v in tc.Adam(params).state_dict().items() if k not in ("amsgrad", "max_exp_avg_sq")}
    adam.load_state_dict(old)                  # a state saved before amsgrad existed: amsgrad off
    assert adam.amsgrad is False
