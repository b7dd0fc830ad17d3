"""Parameter groups, torch-style: per-group hyper-parameters, schedules per group, state round trips.

torch.optim is the oracle: the same groups (a list of dicts with per-group lr, weight_decay,
momentum, ...) fed the same random gradients must follow the same trajectory (float64, relative
TORCH_F64_REL_TOL per tensor after every step), and the schedules must set every group's rate to
torch's, bit for bit, as test_schedules.py asks of one group. A comparison is shown able to fail
against torch running the groups swapped.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from test_optim import SHAPES, make_problem
from tolerances import TORCH_F64_REL_TOL

import tinycnn as tc
from tinycnn import schedules as S

# (tinycnn class, torch class name, defaults, per-group overrides for groups [p0] and [p1, p2])
GROUP_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), [dict(weight_decay=5e-3), dict(lr=0.2, weight_decay=0.0)]),
    ("SGD", dict(lr=0.05), [dict(momentum=0.5, dampening=0.3), dict(lr=0.01, weight_decay=0.1)]),
    ("Adam", dict(lr=1e-2), [dict(betas=(0.8, 0.99)), dict(lr=0.1, weight_decay=0.1, amsgrad=True)]),
    ("AdamW", dict(lr=1e-2, weight_decay=0.05), [dict(), dict(lr=3e-3, weight_decay=0.3, eps=1e-3)]),
    ("RMSprop", dict(lr=1e-2), [dict(momentum=0.9), dict(lr=1e-3, centered=True, alpha=0.5, weight_decay=0.1)]),
]


def _groups(params, overrides, swap=False):
    split = [[params[0]], params[1:]]
    if swap:
        overrides = overrides[::-1]
    return [{"params": ps, **o} for ps, o in zip(split, overrides)]


def run_groups_against_torch(torch, cls, defaults, overrides, seed, swap_torch=False):
    params0, grads = make_problem(seed, np.float64)
    ours = [tc.Parameter(p.copy()) for p in params0]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in params0]
    opt = getattr(tc, cls)(_groups(ours, overrides), **defaults)
    topt = getattr(torch.optim, cls)(_groups(theirs, overrides, swap=swap_torch), **defaults)
    for step, gs in enumerate(grads):
        for p, tp, g in zip(ours, theirs, gs):
            p.grad = g.copy()
            tp.grad = torch.tensor(g.copy())
        opt.step()
        with torch.no_grad():
            topt.step()
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            t = tp.detach().numpy()
            diff, scale = float(np.abs(p.data - t).max()), float(np.abs(t).max())
            assert diff <= TORCH_F64_REL_TOL * scale, (
                f"{cls} groups {overrides}: param {i} {SHAPES[i]} after step {step + 1} NOT OK: "
                f"{diff:.3e} > {TORCH_F64_REL_TOL} * {scale:.3e}")
    return opt


@pytest.mark.parametrize("cls, defaults, overrides", GROUP_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GROUP_CASES)])
def test_groups_follow_torchs_trajectory(torch, cls, defaults, overrides):
    opt = run_groups_against_torch(torch, cls, defaults, overrides, seed=31)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == overrides[1].get("lr", defaults["lr"])


def test_comparison_catches_swapped_groups(torch):
    cls, defaults, overrides = GROUP_CASES[0]
    with pytest.raises(AssertionError, match="NOT OK"):
        run_groups_against_torch(torch, cls, defaults, overrides, seed=31, swap_torch=True)


def test_param_groups_and_defaults_look_like_torchs(torch):
    ps = [tc.Parameter(np.zeros(2)), tc.Parameter(np.zeros(3))]
    tps = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    opt = tc.SGD([{"params": [ps[0]]}, {"params": ps[1], "lr": 0.5}], lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": [tps[0]]}, {"params": tps[1], "lr": 0.5}], lr=0.1, momentum=0.9)
    for g, tg in zip(opt.param_groups, topt.param_groups):
        for key in ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"):
            assert g[key] == tg[key], key
    assert opt.param_groups[1]["params"] == [ps[1]]               # one Parameter is accepted, as torch does
    assert opt.defaults["lr"] == topt.defaults["lr"] == 0.1
    assert opt.params == ps


def test_lr_attribute_rule():
    ps = [tc.Parameter(np.zeros(2)), tc.Parameter(np.zeros(3))]
    one = tc.SGD(ps, lr=0.1, momentum=0.9)
    one.lr = 0.3                                                   # one group: the attribute is the group's
    one.momentum = 0.5
    assert one.param_groups[0]["lr"] == 0.3 and one.param_groups[0]["momentum"] == 0.5
    with pytest.raises(ValueError, match=r"SGD: lr \(learning rate\) must be a finite number >= 0, got -1"):
        one.lr = -1
    two = tc.Adam([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.5}], lr=0.1)
    assert two.lr == 0.1 and two.betas == (0.9, 0.999)             # reading: the first group's
    with pytest.raises(ValueError, match=r"Adam.lr: this optimizer has 2 parameter groups.*param_groups\[i\]\['lr'\]"):
        two.lr = 0.2
    assert [g["lr"] for g in two.param_groups] == [0.1, 0.5]


@pytest.mark.parametrize("params, err, match", [
    (lambda ps: [{"params": [ps[0]]}, {"params": [ps[0]], "lr": 0.5}], ValueError,
     r"SGD: param_groups\[1\]\['params'\]\[0\] is the same Parameter as param_groups\[0\]\['params'\]\[0\]"),
    (lambda ps: [{"params": [ps[0]], "lr": -0.5}], ValueError,
     r"SGD: param_groups\[0\]: lr \(learning rate\) must be a finite number >= 0, got -0.5"),
    (lambda ps: [{"params": [ps[0]], "weight_deacy": 0.1}], ValueError,
     r"SGD: param_groups\[0\] has unknown keys \['weight_deacy'\]; a group may set lr, momentum"),
    (lambda ps: [{"lr": 0.1}], ValueError, r"SGD: param_groups\[0\] has no 'params' key"),
    (lambda ps: [{"params": [ps[0]]}, ps[1]], TypeError, r"SGD: params mixes parameter-group dicts and other items"),
    (lambda ps: [{"params": [np.zeros(2)]}], TypeError,
     r"SGD: param_groups\[0\]\['params'\]\[0\] is a plain ndarray of shape \(2,\), not a tc.Parameter"),
    (lambda ps: [{"params": []}, {"params": []}], ValueError, r"SGD: got an empty parameter list"),
    (lambda ps: [{"params": [ps[0]], "nesterov": True, "momentum": 0.0}], ValueError,
     r"SGD: param_groups\[0\]: nesterov momentum requires momentum > 0"),
    (lambda ps: {"params": ps}, TypeError, r"SGD: params must be a list of Parameters, got a dict.*parameter-group"),
])
def test_bad_groups_are_refused_naming_the_group(params, err, match):
    ps = [tc.Parameter(np.zeros(2)), tc.Parameter(np.zeros(3))]
    with pytest.raises(err, match=match):
        tc.SGD(params(ps), lr=0.1)


def test_an_empty_group_is_allowed_as_in_torch():
    ps = [tc.Parameter(np.zeros(2))]
    opt = tc.SGD([{"params": ps}, {"params": [], "lr": 1.0}], lr=0.1)
    ps[0].grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(ps[0].data, -0.1 * np.ones(2))


# -- schedules, every group from its own initial_lr -------------------------------------------------

def _pair(torch, lrs=(0.1, 0.4), momentum=0.9):
    ours = tc.SGD([{"params": [tc.Parameter(np.zeros(2))], "lr": lrs[0]},
                   {"params": [tc.Parameter(np.zeros(3))], "lr": lrs[1]}], lr=1.0, momentum=momentum)
    theirs = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lrs[0]},
                              {"params": [torch.nn.Parameter(torch.zeros(3))], "lr": lrs[1]}],
                             lr=1.0, momentum=momentum)
    return ours, theirs


SCHEDULES = {
    "StepLR": (lambda m, o: m.StepLR(o, 3, 0.5)),
    "MultiStepLR": (lambda m, o: m.MultiStepLR(o, [2, 5, 5], 0.3)),
    "CosineAnnealingLR": (lambda m, o: m.CosineAnnealingLR(o, 7, 1e-3)),
    "LinearLR": (lambda m, o: m.LinearLR(o, 0.25, 1.0, 6)),
    "OneCycleLR": (lambda m, o: m.OneCycleLR(o, [0.5, 2.0], 20, three_phase=True)),
    "OneCycleLR-one-max": (lambda m, o: m.OneCycleLR(o, 0.5, 20, anneal_strategy="linear")),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_set_every_groups_rate_as_torch(torch, name):
    ours_opt, theirs_opt = _pair(torch)
    ours = SCHEDULES[name](S, ours_opt)
    theirs = SCHEDULES[name](torch.optim.lr_scheduler, theirs_opt)
    for step in range(20):                                         # OneCycleLR's 20 steps, to the end
        want = [g["lr"] for g in theirs_opt.param_groups]
        assert [g["lr"] for g in ours_opt.param_groups] == want, f"{name} step {step}"
        assert ours.get_last_lrs() == theirs.get_last_lr() and ours.get_last_lr() == want[0]
        assert [g["initial_lr"] for g in ours_opt.param_groups] == [g["initial_lr"] for g in theirs_opt.param_groups]
        theirs_opt.step()
        theirs.step()
        ours.step()


def test_sequential_and_plateau_act_on_every_group(torch):
    ours_opt, theirs_opt = _pair(torch)
    ours = S.SequentialLR(ours_opt, [S.LinearLR(ours_opt, 0.1, 1.0, 4), S.CosineAnnealingLR(ours_opt, 10)], [4])
    L = torch.optim.lr_scheduler
    theirs = L.SequentialLR(theirs_opt, [L.LinearLR(theirs_opt, 0.1, 1.0, 4), L.CosineAnnealingLR(theirs_opt, 10)], [4])
    for step in range(15):
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in theirs_opt.param_groups], step
        theirs_opt.step()
        theirs.step()
        ours.step()
    ours_opt, theirs_opt = _pair(torch)
    ours, theirs = S.ReduceLROnPlateau(ours_opt, patience=1), L.ReduceLROnPlateau(theirs_opt, patience=1)
    for metric in [1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7, 0.8]:
        ours.step(metric)
        theirs.step(metric)
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in theirs_opt.param_groups], metric
    assert ours.get_last_lrs() == [g["lr"] for g in ours_opt.param_groups]


def test_one_cycle_max_lr_list_must_fit_the_groups():
    opt = tc.SGD([{"params": [tc.Parameter(np.zeros(2))]}, {"params": [tc.Parameter(np.zeros(2))]}], lr=0.1)
    with pytest.raises(ValueError, match="OneCycleLR: max_lr holds 3 values, but the optimizer has 2 parameter groups"):
        S.OneCycleLR(opt, [0.1, 0.2, 0.3], 10)


def test_schedule_state_round_trips_through_json_with_groups(torch):
    ours_opt, _ = _pair(torch)
    sched = S.CosineAnnealingLR(ours_opt, 9, 1e-4)
    for _ in range(5):
        sched.step()
    saved_opt, saved = ours_opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    reference = []
    for _ in range(8):
        sched.step()
        reference.append(sched.get_last_lrs())
    fresh_opt, _ = _pair(torch, lrs=(0.7, 0.7))
    fresh = S.CosineAnnealingLR(fresh_opt, 9, 1e-4)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    got = []
    for _ in range(8):
        fresh.step()
        got.append(fresh.get_last_lrs())
    assert got == reference
    with pytest.raises(ValueError, match=r"'base_lrs' must be like"):
        fresh.load_state_dict({**saved, "base_lrs": [0.1, "x"]})


def test_a_one_group_schedule_state_saved_before_groups_loads():
    opt = tc.SGD([tc.Parameter(np.zeros(2))], lr=0.1)
    sched = S.StepLR(opt, 2, 0.5)
    old = {k: v for k, v in sched.state_dict().items() if k not in ("base_lrs", "_last_lrs")}
    old["base_lr"], old["_last_lr"], old["last_epoch"] = 0.2, 0.05, 4
    sched.load_state_dict(old)
    assert sched.base_lrs == [0.2] and sched.get_last_lrs() == [0.05]
    two = tc.SGD([{"params": [tc.Parameter(np.zeros(2))]}, {"params": [tc.Parameter(np.zeros(2))]}], lr=0.1)
    with pytest.raises(ValueError, match="saved for one parameter group"):
        S.StepLR(two, 2).load_state_dict(old)


# -- optimizer state ----------------------------------------------------------------------------------

def _grouped(cls, ps):
    kinds = {"SGD": dict(lr=0.05, momentum=0.9), "Adam": dict(lr=1e-2), "AdamW": dict(lr=1e-2),
             "RMSprop": dict(lr=1e-2, momentum=0.5)}
    return getattr(tc, cls)([{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "lr": 0.003}],
                            **kinds[cls])


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_state_round_trip_resumes_bit_for_bit(cls):
    params0, grads = make_problem(12, np.float64)
    a = [tc.Parameter(p.copy()) for p in params0]
    opt = _grouped(cls, a)
    sched = S.LinearLR(opt, 0.5, 1.0, 20)
    for gs in grads[:8]:
        for p, g in zip(a, gs):
            p.grad = g.copy()
        opt.step()
        sched.step()
    state = opt.state_dict()
    restored = {**state, "param_groups": json.loads(json.dumps(state["param_groups"]))}
    b = [tc.Parameter(p.data.copy()) for p in a]
    fresh = _grouped(cls, b)
    fresh.load_state_dict(restored)
    assert [g["lr"] for g in fresh.param_groups] == [g["lr"] for g in opt.param_groups]
    assert [g["initial_lr"] for g in fresh.param_groups] == [g["initial_lr"] for g in opt.param_groups]
    for gs in grads[8:]:
        for p, q, g in zip(a, b, gs):
            p.grad, q.grad = g.copy(), g.copy()
        opt.step()
        fresh.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_bad_group_states_are_refused_and_change_nothing():
    ps = [tc.Parameter(np.ones(2)), tc.Parameter(np.ones(3)), tc.Parameter(np.ones(1))]
    opt = _grouped("SGD", ps)
    good = opt.state_dict()
    before = json.dumps(opt.state_dict()["param_groups"])
    groups = good["param_groups"]
    cases = [
        ({**good, "param_groups": groups[:1]}, ValueError, r"SGD.load_state_dict: the state has 1 parameter groups, "
                                                          r"this optimizer 2"),
        ({**good, "param_groups": [groups[0], {**groups[1], "params": [1]}]}, ValueError,
         r"param_groups\[1\]: 'params' must be the indices \[1, 2\]"),
        ({**good, "param_groups": [groups[0], {**groups[1], "lr": float("nan")}]}, ValueError,
         r"SGD.load_state_dict: param_groups\[1\]: lr \(learning rate\) must be a finite number"),
        ({**good, "param_groups": [groups[0], {**groups[1], "momentum": "0.9"}]}, TypeError,
         r"param_groups\[1\]: momentum must be a number"),
        ({**good, "param_groups": [groups[0], {**groups[1], "initial_lr": -1.0}]}, ValueError,
         r"param_groups\[1\]: initial_lr must be a finite number >= 0"),
        ({**good, "param_groups": [groups[0], {**groups[1], "nesterov": 1}]}, TypeError,
         r"param_groups\[1\]: nesterov must be True or False"),
        ({**good, "param_groups": [groups[0], {**groups[1], "bogus": 1}]}, ValueError,
         r"param_groups\[1\]: unexpected keys \['bogus'\]"),
        ({**good, "param_groups": "all"}, TypeError, r"'param_groups' must be a list of dicts"),
        ({k: v for k, v in good.items() if k != "param_groups"}, ValueError,
         r"the state has no 'param_groups' \(one group\); this optimizer has 2"),
    ]
    for state, err, match in cases:
        with pytest.raises(err, match=match):
            opt.load_state_dict(state)
        assert json.dumps(opt.state_dict()["param_groups"]) == before


def test_a_state_saved_before_groups_loads_into_one_group():
    ps = [tc.Parameter(np.ones(2))]
    opt = tc.SGD(ps, lr=0.1, momentum=0.9)
    old = {"type": "SGD", "lr": 0.025, "initial_lr": 0.1, "momentum": 0.8, "dampening": 0.0, "weight_decay": 0.0,
           "nesterov": False, "maximize": False, "momentum_buffers": [np.full(2, 0.5)]}
    opt.load_state_dict(old)
    assert (opt.lr, opt.initial_lr, opt.momentum, opt.decoupled_weight_decay) == (0.025, 0.1, 0.8, False)
    np.testing.assert_array_equal(opt.momentum_buffers[0], np.full(2, 0.5))


def test_groups_survive_a_checkpoint_and_save_model(tmp_path):
    model = tc.Sequential(tc.Dense(4, 3, dtype=np.float64, rng=np.random.default_rng(0)), tc.ReLU(),
                          tc.Dense(3, 2, dtype=np.float64, rng=np.random.default_rng(1)))
    w = [p for name, p in model.named_parameters() if name.endswith("weight")]
    b = [p for name, p in model.named_parameters() if name.endswith("bias")]
    opt = tc.SGD([{"params": w, "weight_decay": 0.1}, {"params": b, "lr": 0.3}], lr=0.1, momentum=0.9)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 2, 8)
    loss_fn = tc.SoftmaxCrossEntropy()
    for _ in range(3):
        opt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
    tc.save_checkpoint(tmp_path / "c.npz", model, opt)
    again = tc.SGD([{"params": w, "weight_decay": 0.1}, {"params": b, "lr": 0.3}], lr=0.1, momentum=0.9)
    tc.load_checkpoint(tmp_path / "c.npz", model, again)
    assert json.dumps(again.state_dict()["param_groups"]) == json.dumps(opt.state_dict()["param_groups"])
    # save_model needs the groups, one after another, in model.parameters() order
    with pytest.raises(tc.saving.ModelFileError, match="parameter groups that, one after another"):
        tc.save_model(model, tmp_path / "m.npz", optimizer=opt)
    first, rest = model.parameters()[:2], model.parameters()[2:]
    ordered = tc.SGD([{"params": first, "weight_decay": 0.1}, {"params": rest, "lr": 0.3}], lr=0.1, momentum=0.9)
    tc.save_model(model, tmp_path / "m.npz", optimizer=ordered)
    opt2 = tc.saving.load_optimizer(tmp_path / "m.npz", model)
    assert [len(g["params"]) for g in opt2.param_groups] == [2, 2]
    assert [g["lr"] for g in opt2.param_groups] == [0.1, 0.3]
    assert [g["weight_decay"] for g in opt2.param_groups] == [0.1, 0.0]
