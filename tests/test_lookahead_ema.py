"""Lookahead (an optimizer wrapper) and EMA (a moving average of the weights), against direct formulas.

Lookahead: torch's SGD / Adam take the inner steps, and the synchronisation every k steps is written
out (slow += alpha (fast - slow); fast = slow) -- both sides float64, relative TORCH_F64_REL_TOL per
tensor after every step. EMA: torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn is the
oracle (same lerp), and the formula avg = decay avg + (1 - decay) p written out is a second one,
within its derived bound: each form rounds at most 3 times per step (relative u each) and decay <= 1
does not grow earlier errors, so after n updates the two differ by at most 2 * 3 n u max|values|.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_optim import make_problem
from tolerances import TORCH_F64_REL_TOL

import tinycnn as tc


def _assert_rel(ours, want, what, rel=TORCH_F64_REL_TOL):
    diff, scale = float(np.abs(ours - want).max()), float(np.abs(want).max())
    assert diff <= rel * scale, f"{what} NOT OK: {diff:.3e} > {rel} * {scale:.3e}"


INNER = [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)), ("Adam", dict(lr=0.02))]


def run_lookahead_against_formula(torch, cls, options, k, alpha, formula_alpha=None):
    formula_alpha = alpha if formula_alpha is None else formula_alpha
    params0, grads = make_problem(61, np.float64)
    ours = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    opt = tc.Lookahead(getattr(tc, cls)(ours, **options), k=k, alpha=alpha)
    topt = getattr(torch.optim, cls)(theirs, **options)
    slow = [p.copy() for p in params0]
    for step, gs in enumerate(grads):
        for p, tp, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        with torch.no_grad():
            topt.step()
            if (step + 1) % k == 0:
                for s, tp in zip(slow, theirs):
                    s += formula_alpha * (tp.numpy() - s)
                    tp.copy_(torch.from_numpy(s))
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            _assert_rel(p.data, tp.detach().numpy(),
                        f"Lookahead({cls}, k={k}, alpha={alpha}) param {i} step {step + 1}")
    return opt, len(grads)


@pytest.mark.parametrize("k, alpha", [(5, 0.5), (1, 0.8), (3, 1.0), (4, 0.0)])
@pytest.mark.parametrize("cls, options", INNER, ids=[c for c, _ in INNER])
def test_lookahead_matches_the_formula_around_torchs_optimizer(torch, cls, options, k, alpha):
    opt, steps = run_lookahead_against_formula(torch, cls, options, k, alpha)
    assert opt.lookahead_step == steps


def test_lookahead_comparison_can_fail(torch):
    with pytest.raises(AssertionError, match="NOT OK"):
        run_lookahead_against_formula(torch, "SGD", INNER[0][1], 5, 0.5, formula_alpha=0.45)


def test_lookahead_leaves_frozen_parameters_alone_and_exposes_the_inner_optimizer():
    params0, grads = make_problem(62, np.float64)
    ps = [tc.Parameter(p.copy()) for p in params0]
    ps[1].requires_grad = False
    opt = tc.Lookahead(tc.SGD(ps, lr=0.1, momentum=0.9), k=2)
    for gs in grads[:6]:
        for p, g in zip(ps, gs):
            p.grad = g.copy()
        opt.step()
    np.testing.assert_array_equal(ps[1].data, params0[1])
    assert opt.slow_weights[1] is None
    assert opt.params is opt.optimizer.params and opt.param_groups is opt.optimizer.param_groups
    assert (opt.lr, opt.momentum) == (0.1, 0.9)
    opt.lr = 0.05
    assert opt.optimizer.lr == 0.05
    sched = tc.OneCycleLR(opt, 0.2, 10)
    assert opt.lr == sched.get_last_lr()


@pytest.mark.parametrize("cls", ["SGD", "Adam"])
def test_lookahead_state_resumes_bit_for_bit_through_a_checkpoint(tmp_path, cls):
    model = tc.Sequential(tc.Dense(4, 3, dtype=np.float64, rng=np.random.default_rng(0)), tc.ReLU(),
                          tc.Dense(3, 2, dtype=np.float64, rng=np.random.default_rng(1)))

    def make(m):
        inner = tc.SGD(m.parameters(), lr=0.1, momentum=0.9) if cls == "SGD" else tc.Adam(m.parameters(), lr=0.01)
        return tc.Lookahead(inner, k=3, alpha=0.5)

    rng = np.random.default_rng(2)
    data = [(rng.standard_normal((8, 4)), rng.integers(0, 2, 8)) for _ in range(12)]
    loss_fn = tc.SoftmaxCrossEntropy()

    def train(m, opt, batches):
        for x, y in batches:
            opt.zero_grad()
            loss_fn(m(x), y)
            m.backward(loss_fn.backward())
            opt.step()

    opt = make(model)
    train(model, opt, data[:7])                               # mid-cycle: 7 = 2 * 3 + 1
    tc.save_checkpoint(tmp_path / "c.npz", model, opt)
    twin = tc.Sequential(tc.Dense(4, 3, dtype=np.float64), tc.ReLU(), tc.Dense(3, 2, dtype=np.float64))
    twin_opt = make(twin)
    tc.load_checkpoint(tmp_path / "c.npz", twin, twin_opt)
    assert twin_opt.lookahead_step == 7
    train(model, opt, data[7:])
    train(twin, twin_opt, data[7:])
    for p, q in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_lookahead_bad_arguments_and_states():
    ps = [tc.Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="Lookahead: k must be an integer >= 1, got 0"):
        tc.Lookahead(tc.SGD(ps, lr=0.1), k=0)
    with pytest.raises(ValueError, match=r"Lookahead: alpha must be a finite number >= 0 and <= 1, got 1.5"):
        tc.Lookahead(tc.SGD(ps, lr=0.1), alpha=1.5)
    with pytest.raises(TypeError, match="Lookahead: optimizer must be a tinycnn optimizer.*got list"):
        tc.Lookahead(ps)
    la = tc.Lookahead(tc.SGD(ps, lr=0.1, momentum=0.9))
    with pytest.raises(TypeError, match="already a Lookahead"):
        tc.Lookahead(la)
    la.alpha = 0.25                                           # a schedule of alpha may set it between steps
    with pytest.raises(ValueError, match=r"Lookahead: alpha must be a finite number >= 0 and <= 1, got 2"):
        la.alpha = 2
    assert la.alpha == 0.25
    ps[0].grad = np.ones(2)
    la.step()
    good = la.state_dict()
    before = json.dumps({k: v for k, v in good.items() if not isinstance(v, list)})
    cases = [
        ({**good, "inner_type": "Adam"}, ValueError, r"wraps a 'Adam' optimizer, this Lookahead a SGD"),
        ({**good, "lookahead_alpha": float("nan")}, ValueError, r"lookahead_alpha must be a finite number"),
        ({**good, "slow_weights": [np.ones(3)]}, ValueError, r"shape mismatch: slow_weights\[0\]"),
        ({**good, "slow_weights": [np.full(2, np.inf)]}, ValueError, r"'slow_weights\[0\]' holds non-finite"),
        ({**good, "momentum_buffers": [np.ones(5)]}, ValueError, r"SGD.load_state_dict: shape mismatch"),
        ({**good, "type": "SGD"}, ValueError, r"belongs to a 'SGD' optimizer, not Lookahead"),
    ]
    for state, err, match in cases:
        with pytest.raises(err, match=match):
            la.load_state_dict(state)
        assert json.dumps({k: v for k, v in la.state_dict().items() if not isinstance(v, list)}) == before


def test_lookahead_in_fit_with_a_schedule():
    rng = np.random.default_rng(4)
    model = tc.Sequential(tc.Flatten(), tc.Dense(8, 3, rng=rng))
    opt = tc.Lookahead(tc.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True), k=4)
    sched = tc.PiecewiseLinearLR(opt, [0, 3, 8], [0.2, 1.0, 0.0])
    model.compile(optimizer=opt, metrics=["accuracy"])
    x, y = rng.standard_normal((32, 2, 2, 2)).astype(np.float32), rng.integers(0, 3, 32)
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0,
                        callbacks=[tc.callbacks.LearningRateScheduler(sched, per="batch")])
    assert opt.lookahead_step == 8 and sched.last_epoch == 8 and opt.lr == 0.0
    assert history.history["lr"][0] == pytest.approx(0.02)
    for p, slow in zip(model.parameters(), opt.slow_weights):       # 8 steps = 2 synchronisations: fast == slow
        np.testing.assert_array_equal(p.data, slow)


# -- EMA ------------------------------------------------------------------------------------------

def _dense_pair(torch, rng):
    model = tc.Sequential(tc.Dense(5, 3, dtype=np.float64, rng=rng))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 3)).double()
    return model, ref


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9, 0.999, 1.0])
def test_ema_matches_torch_averaged_model_and_the_formula(torch, decay):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    rng = np.random.default_rng(7)
    model, ref = _dense_pair(torch, rng)
    averaged = AveragedModel(ref, multi_avg_fn=get_ema_multi_avg_fn(decay))
    ema = tc.EMA(model, decay)
    by_formula, peak = None, 0.0
    n = 30
    for step in range(n):
        for p in model.parameters():
            p.data[...] = rng.standard_normal(p.data.shape) * 10.0 ** rng.uniform(-2, 1)
        with torch.no_grad():
            for (_, tp), p in zip(ref.named_parameters(), model.parameters()):
                tp.copy_(torch.from_numpy(p.data))
        averaged.update_parameters(ref)
        ema.update()
        values = {k: p.data.copy() for k, p in model.named_parameters()}
        peak = max(peak, *(float(np.abs(v).max()) for v in values.values()))
        by_formula = values if by_formula is None else {k: decay * by_formula[k] + (1 - decay) * values[k]
                                                       for k in values}
        for (_, tp), key in zip(averaged.module.named_parameters(), ema.averaged):
            _assert_rel(ema.averaged[key], tp.detach().numpy(), f"EMA({decay}) {key} step {step + 1}")
    u = float(np.finfo(np.float64).eps)
    for key, value in by_formula.items():
        bound = 2 * 3 * n * u * peak
        assert float(np.abs(ema.averaged[key] - value).max()) <= bound, key
    assert ema.n_averaged == n


def assert_within_roundings(got, want):
    """float32: p + 1 and the lerp towards it round 4 times, each within u of |values| <= |want| + 1."""
    u = float(np.finfo(np.float32).eps)
    np.testing.assert_array_less(np.abs(got - want), 4 * u * (np.abs(want) + 1) + np.finfo(np.float32).tiny)


def test_ema_swap_swapped_and_copy_to():
    rng = np.random.default_rng(8)
    model = tc.Sequential(tc.Dense(4, 2, rng=rng), tc.BatchNorm1D(2))
    ema = tc.EMA(model, 0.5)
    with pytest.raises(RuntimeError, match=r"EMA.swap: there is no average yet"):
        ema.swap()
    ema.update()
    first = {k: v.copy() for k, v in model.state_dict().items()}
    for p in model.parameters():
        p.data += 1.0
    ema.update()                                              # avg = first + 0.5
    live = {k: v.copy() for k, v in model.state_dict().items()}
    weight = model[0].weight
    with ema.swapped() as m:
        assert m is model and weight is model[0].weight
        assert_within_roundings(model[0].weight.data, first["0.weight"] + 0.5)
        np.testing.assert_array_equal(model[1].running_var, live["1.running_var"])   # use_buffers=False
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, live[k])
    ema.copy_to()
    assert_within_roundings(model[0].bias.data, first["0.bias"] + 0.5)
    with pytest.raises(ValueError, match="the model's parameters are not the ones averaged"):
        ema.copy_to(tc.Sequential(tc.Dense(4, 3)))


def test_ema_use_buffers_averages_running_statistics():
    rng = np.random.default_rng(9)
    model = tc.Sequential(tc.Dense(4, 2, rng=rng), tc.BatchNorm1D(2))
    ema = tc.EMA(model, 0.75, use_buffers=True)
    ema.update()
    var0 = model[1].running_var.copy()
    model[1].running_var[...] = var0 + 4.0
    model[1].num_batches_tracked[...] = 9
    ema.update()
    np.testing.assert_allclose(ema.averaged["1.running_var"], var0 + 1.0, rtol=1e-6)
    assert int(ema.averaged["1.num_batches_tracked"]) == 9


def test_ema_as_a_fit_callback_and_its_state(tmp_path):
    rng = np.random.default_rng(10)
    model = tc.Sequential(tc.Flatten(), tc.Dense(8, 3, rng=rng))
    model.compile(optimizer=tc.SGD(model.parameters(), lr=0.1))
    x, y = rng.standard_normal((40, 2, 2, 2)).astype(np.float32), rng.integers(0, 3, 40)
    ema = tc.EMA(decay=0.9, every=2)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[ema])
    assert ema.steps == 5 and ema.n_averaged == 2 and ema.model is model
    state = ema.state_dict()
    again = tc.EMA(model)
    again.load_state_dict(state)
    assert again.decay == 0.9 and again.every == 2 and again.n_averaged == 2
    for k, v in ema.averaged.items():
        np.testing.assert_array_equal(again.averaged[k], v)
    cases = [({**state, "decay": 1.5}, ValueError, r"EMA.load_state_dict: decay must be a finite number >= 0 and <= 1"),
             ({**state, "averaged": {"1.weight": np.ones((3, 8), np.float32)}}, ValueError, r"the average holds"),
             ({**state, "averaged": {**state["averaged"], "1.bias": np.full(3, np.nan, np.float32)}}, ValueError,
              r"averaged\['1.bias'\] holds non-finite"),
             ({**state, "type": "SGD"}, ValueError, r"the state belongs to 'SGD', not EMA")]
    for bad, err, match in cases:
        with pytest.raises(err, match=match):
            again.load_state_dict(bad)
    for k, v in ema.averaged.items():
        np.testing.assert_array_equal(again.averaged[k], v)
    with pytest.raises(ValueError, match=r"EMA: decay must be a finite number >= 0 and <= 1, got -0.1"):
        tc.EMA(decay=-0.1)
    with pytest.raises(ValueError, match=r"EMA: decay must be a finite number >= 0 and <= 1, got nan"):
        again.decay = float("nan")
    with pytest.raises(ValueError, match=r"EMA: every must be an integer >= 1, got 0"):
        tc.EMA(every=0)
    with pytest.raises(TypeError, match=r"EMA: model must be a tinycnn model"):
        tc.EMA(np.zeros(3))
