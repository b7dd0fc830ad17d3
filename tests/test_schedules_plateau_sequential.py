"""MultiStepLR, SequentialLR and ReduceLROnPlateau against torch.optim.lr_scheduler, bit for bit.

As in test_schedules.py the sequences must be *equal*: the same floating-point operations in the same
order as torch. Then: resume from a JSON state, and every argument checked at construction.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from test_schedules import assert_same_sequence, run_tc, run_torch, tc_sgd, torch_sgd
from tinycnn.schedules import (CosineAnnealingLR, LinearLR, MultiStepLR, OneCycleLR, ReduceLROnPlateau,
                               SequentialLR, StepLR)

lrs_st = st.floats(1e-5, 1.0, allow_nan=False)


# ----------------------------------------------------------------------------------------------
# MultiStepLR
# ----------------------------------------------------------------------------------------------

@given(lr=lrs_st, milestones=st.lists(st.integers(0, 40), max_size=6), gamma=st.floats(0.0, 1.0),
       n=st.integers(1, 60))
def test_multistep_matches_torch(torch, lr, milestones, gamma, n):
    # duplicates (counted twice) and a milestone 0 (applied at construction) included
    ours = run_tc(MultiStepLR(tc_sgd(lr), milestones, gamma), n)
    theirs = run_torch(torch.optim.lr_scheduler.MultiStepLR(torch_sgd(torch, lr), milestones, gamma), n)
    assert_same_sequence(ours, theirs)


def test_multistep_by_hand():
    # base 1, gamma 0.5, milestones 2 and 5: 1 1 0.5 0.5 0.5 0.25 0.25
    assert run_tc(MultiStepLR(tc_sgd(1.0), [5, 2], 0.5), 7) == [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]


# ----------------------------------------------------------------------------------------------
# SequentialLR
# ----------------------------------------------------------------------------------------------

def _children(sched_lib, opt, kinds, t_max):
    out = []
    for kind in kinds:
        if kind == "linear":
            out.append(sched_lib.LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=4))
        elif kind == "cosine":
            out.append(sched_lib.CosineAnnealingLR(opt, T_max=t_max, eta_min=1e-4))
        elif kind == "step":
            out.append(sched_lib.StepLR(opt, step_size=3, gamma=0.5))
        elif kind == "multistep":
            out.append(sched_lib.MultiStepLR(opt, milestones=[0, 2, 5, 5], gamma=0.7))
        elif kind == "onecycle":
            if sched_lib is tc.schedules:
                out.append(sched_lib.OneCycleLR(opt, 0.3, total_steps=60))
            else:
                out.append(sched_lib.OneCycleLR(opt, 0.3, total_steps=60, cycle_momentum=False))
    return out


kinds_st = st.lists(st.sampled_from(["linear", "cosine", "step", "multistep", "onecycle"]), min_size=1, max_size=4)


@given(lr=lrs_st, kinds=kinds_st, gaps=st.lists(st.integers(1, 12), min_size=3, max_size=3),
       start=st.integers(0, 3), t_max=st.integers(1, 20), n=st.integers(1, 50))
def test_sequential_matches_torch(torch, lr, kinds, gaps, start, t_max, n):
    milestones = [start + sum(gaps[:i]) for i in range(len(kinds) - 1)]      # strictly increasing, may start at 0
    total = max(milestones, default=0) + n
    ours_opt, theirs_opt = tc_sgd(lr), torch_sgd(torch, lr)
    ours = SequentialLR(ours_opt, _children(tc.schedules, ours_opt, kinds, t_max), milestones)
    theirs = torch.optim.lr_scheduler.SequentialLR(
        theirs_opt, _children(torch.optim.lr_scheduler, theirs_opt, kinds, t_max), milestones)
    assert_same_sequence(run_tc(ours, total), run_torch(theirs, total))


def test_warmup_then_cosine_by_hand():
    # base 1, LinearLR 0.25 -> 1 over 3 steps, then cosine T_max 4 from base 1 (restarted at step 3)
    opt = tc_sgd(1.0)
    sched = SequentialLR(opt, [LinearLR(opt, 0.25, 1.0, 3), CosineAnnealingLR(opt, 4)], milestones=[3])
    seq = run_tc(sched, 8)
    assert seq[:3] == pytest.approx([0.25, 0.5, 0.75], rel=1e-15)
    assert seq[3:] == pytest.approx([1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2,
                                     0.0], rel=1e-14, abs=1e-15)


def test_sequential_resumes_from_json():
    def build(lr):
        opt = tc_sgd(lr)
        return opt, SequentialLR(opt, [LinearLR(opt, 0.1, 1.0, 5), StepLR(opt, 2, 0.5), CosineAnnealingLR(opt, 9)],
                                 milestones=[5, 11])
    opt, sched = build(0.2)
    for _ in range(8):
        sched.step()
    saved_opt = opt.state_dict()
    saved = json.loads(json.dumps(sched.state_dict()))
    reference = run_tc(sched, 20)
    fresh_opt, fresh = build(0.9)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    assert fresh.last_epoch == 8
    assert_same_sequence(run_tc(fresh, 20), reference)


def test_sequential_refuses_what_it_cannot_run():
    opt, other = tc_sgd(0.1), tc_sgd(0.1)
    with pytest.raises(ValueError, match=r"SequentialLR: expects one milestone fewer than schedulers, got 2 "
                                         r"schedulers and 0 milestones"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [])
    with pytest.raises(ValueError, match=r"SequentialLR: milestones must be strictly increasing, got \[5, 5\]"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3), StepLR(opt, 4)], [5, 5])
    with pytest.raises(ValueError, match=r"SequentialLR: milestones must be integers >= 0, got -1"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [-1])
    with pytest.raises(ValueError, match=r"SequentialLR: milestones must be integers >= 0, got 2.5"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(opt, 3)], [2.5])
    with pytest.raises(ValueError, match=r"schedulers\[1\] \(StepLR\) belongs to another optimizer"):
        SequentialLR(opt, [StepLR(opt, 2), StepLR(other, 3)], [4])
    with pytest.raises(ValueError, match=r"schedulers\[0\] is a ReduceLROnPlateau, which needs a metric"):
        SequentialLR(opt, [ReduceLROnPlateau(opt)], [])
    with pytest.raises(TypeError, match=r"schedulers\[0\] is a str, not a learning-rate schedule"):
        SequentialLR(opt, ["cosine"], [])
    with pytest.raises(ValueError, match=r"SequentialLR: expects at least one scheduler"):
        SequentialLR(opt, [], [])
    with pytest.raises(ValueError, match=r"schedulers\[1\] is a LinearLR with total_iters=0"):
        SequentialLR(opt, [StepLR(opt, 2), LinearLR(opt, total_iters=0)], [3])


# ----------------------------------------------------------------------------------------------
# ReduceLROnPlateau
# ----------------------------------------------------------------------------------------------

# metrics from a small set, so that plateaus, exact ties and near-ties (within the threshold) occur
metric_values = st.sampled_from([1.0, 0.99995, 0.9999, 0.999, 0.9, 0.8, 0.5, 0.49999, 2.0, -1.0, 0.0,
                                 float("nan")])


@given(lr=lrs_st, mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       patience=st.integers(0, 4), threshold=st.sampled_from([0.0, 1e-4, 0.05, 1.5]),
       threshold_mode=st.sampled_from(["rel", "abs"]), cooldown=st.integers(0, 3),
       min_lr=st.sampled_from([0.0, 1e-6, 1e-3]), eps=st.sampled_from([0.0, 1e-8, 1e-3]),
       metrics=st.lists(metric_values, min_size=1, max_size=40))
def test_plateau_matches_torch(torch, lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr,
                               eps, metrics):
    kwargs = dict(mode=mode, factor=factor, patience=patience, threshold=threshold, threshold_mode=threshold_mode,
                  cooldown=cooldown, min_lr=min_lr, eps=eps)
    ours_opt, theirs_opt = tc_sgd(lr), torch_sgd(torch, lr)
    ours = ReduceLROnPlateau(ours_opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **kwargs)
    for i, m in enumerate(metrics):
        ours.step(m)
        theirs_opt.step()
        theirs.step(m)
        a, b = ours_opt.lr, theirs_opt.param_groups[0]["lr"]
        assert a == b and ours.get_last_lr() == theirs.get_last_lr()[0], f"step {i} ({m}): lr {a} vs torch {b}"
        assert (ours.num_bad_epochs, ours.cooldown_counter, ours.last_epoch) == (
            theirs.num_bad_epochs, theirs.cooldown_counter, theirs.last_epoch), f"step {i}"
        assert ours.best == theirs.best or (math.isnan(ours.best) and math.isnan(theirs.best))


def test_plateau_by_hand():
    # patience 2: the third epoch without improvement cuts the rate; cooldown 1 skips one epoch's count
    opt = tc_sgd(1.0)
    sched = ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, threshold=0.0)
    lrs = []
    for m in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0]:
        sched.step(m)
        lrs.append(opt.lr)
    # epochs: 3 (best), 2 (best), three equal (the third cuts), one in cooldown, two equal, 1 (best)
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]
    sched.step(1.0)
    sched.step(1.0)
    sched.step(1.0)
    assert opt.lr == 0.25
    # never below min_lr, and a cut smaller than eps is skipped
    opt = tc_sgd(1e-3)
    sched = ReduceLROnPlateau(opt, factor=0.1, patience=0, min_lr=5e-4)
    sched.step(1.0)
    sched.step(1.0)
    assert opt.lr == 5e-4
    sched.step(1.0)
    sched.step(1.0)
    assert opt.lr == 5e-4


def test_plateau_accepts_numpy_scalars_and_refuses_non_numbers():
    opt = tc_sgd(0.1)
    sched = ReduceLROnPlateau(opt)
    sched.step(np.float32(0.5))
    sched.step(np.array(0.25))
    assert sched.best == 0.25
    for bad in ["0.1", None, True, [0.1], np.array([0.1, 0.2])]:
        with pytest.raises(TypeError, match=r"ReduceLROnPlateau.step: metric must be a number"):
            sched.step(bad)


def test_plateau_resumes_from_json():
    metrics = [1.0, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    opt = tc_sgd(0.1)
    sched = ReduceLROnPlateau(opt, patience=1, cooldown=2, factor=0.5)
    for m in metrics[:6]:
        sched.step(m)
    saved_opt, saved = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    reference = []
    for m in metrics[6:]:
        sched.step(m)
        reference.append(opt.lr)
    fresh_opt = tc_sgd(0.7)
    fresh = ReduceLROnPlateau(fresh_opt, patience=1, cooldown=2, factor=0.5)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    again = []
    for m in metrics[6:]:
        fresh.step(m)
        again.append(fresh_opt.lr)
    assert again == reference and min(reference) < 0.1
    # a fresh state has best = inf; JSON carries it as Infinity
    state = json.loads(json.dumps(ReduceLROnPlateau(tc_sgd(0.1)).state_dict()))
    ReduceLROnPlateau(tc_sgd(0.1)).load_state_dict(state)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.load_state_dict: factor must be a finite number"):
        fresh.load_state_dict({**saved, "factor": float("nan")})
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.load_state_dict: patience must be an integer >= 0"):
        fresh.load_state_dict({**saved, "patience": -1})


# ----------------------------------------------------------------------------------------------
# Every schedule argument checked at construction, naming the schedule, the argument, the value.
# ----------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")
BAD_FLOATS = [
    ("StepLR", lambda o, v: StepLR(o, 2, gamma=v), "gamma", [NAN, INF, -0.5, "0.1", True, None]),
    ("MultiStepLR", lambda o, v: MultiStepLR(o, [2], gamma=v), "gamma", [NAN, INF, -0.5, "0.1", True]),
    ("CosineAnnealingLR", lambda o, v: CosineAnnealingLR(o, 5, eta_min=v), "eta_min", [NAN, -INF, -1e-3, "0"]),
    ("LinearLR", lambda o, v: LinearLR(o, start_factor=v), "start_factor", [NAN, INF, "0.5", False]),
    ("LinearLR", lambda o, v: LinearLR(o, end_factor=v), "end_factor", [NAN, INF, "0.5"]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, v, 10), "max_lr", [NAN, INF, -0.1, "0.1", True]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, 0.1, 10, pct_start=v), "pct_start", [NAN, INF, "0.3"]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, 0.1, 10, div_factor=v), "div_factor", [NAN, INF, 0.0, -25.0]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, 0.1, 10, final_div_factor=v), "final_div_factor", [NAN, 0.0, -1.0]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, 0.1, 10, base_momentum=v), "base_momentum", [NAN, 1.0, -0.1]),
    ("OneCycleLR", lambda o, v: OneCycleLR(o, 0.1, 10, max_momentum=v), "max_momentum", [INF, 1.5, "0.9"]),
    ("ReduceLROnPlateau", lambda o, v: ReduceLROnPlateau(o, factor=v), "factor", [NAN, INF, 1.0, 2.0, -0.1, "0.1"]),
    ("ReduceLROnPlateau", lambda o, v: ReduceLROnPlateau(o, threshold=v), "threshold", [NAN, INF, -1e-4, True]),
    ("ReduceLROnPlateau", lambda o, v: ReduceLROnPlateau(o, min_lr=v), "min_lr", [NAN, INF, -1e-5, [0.0]]),
    ("ReduceLROnPlateau", lambda o, v: ReduceLROnPlateau(o, eps=v), "eps", [NAN, INF, -1e-8]),
]
FLOAT_CASES = [(n, make, arg, v) for n, make, arg, values in BAD_FLOATS for v in values]


@pytest.mark.parametrize("name, make, arg, value", FLOAT_CASES,
                         ids=[f"{n}-{a}={v!r}" for n, _, a, v in FLOAT_CASES])
def test_bad_float_argument_is_refused(name, make, arg, value):
    with pytest.raises((ValueError, TypeError)) as info:
        make(tc_sgd(0.1), value)
    msg = str(info.value)
    assert msg.startswith(f"{name}: {arg} must be") and repr(value) in msg, msg


BAD_OTHER = [
    (lambda o: StepLR(o, 2.5), r"StepLR: step_size must be an integer >= 1, got 2.5"),
    (lambda o: StepLR(o, True), r"StepLR: step_size must be an integer >= 1, got True"),
    (lambda o: MultiStepLR(o, [3, -1]), r"MultiStepLR: milestones must be integers >= 0, got -1 in \[3, -1\]"),
    (lambda o: MultiStepLR(o, [3, 4.0]), r"MultiStepLR: milestones must be integers >= 0, got 4.0"),
    (lambda o: MultiStepLR(o, 5), r"MultiStepLR: milestones must be a list of integers >= 0, got 5"),
    (lambda o: OneCycleLR(o, 0.1, 10, three_phase="yes"), r"OneCycleLR: three_phase must be True or False"),
    (lambda o: OneCycleLR(o, 0.1, 10, cycle_momentum=1), r"OneCycleLR: cycle_momentum must be True or False"),
    (lambda o: ReduceLROnPlateau(o, mode="minimum"), r"ReduceLROnPlateau: mode must be 'min' or 'max', got 'minimum'"),
    (lambda o: ReduceLROnPlateau(o, threshold_mode="relative"),
     r"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got 'relative'"),
    (lambda o: ReduceLROnPlateau(o, patience=-1), r"ReduceLROnPlateau: patience must be an integer >= 0, got -1"),
    (lambda o: ReduceLROnPlateau(o, patience=2.5), r"ReduceLROnPlateau: patience must be an integer >= 0, got 2.5"),
    (lambda o: ReduceLROnPlateau(o, cooldown=NAN), r"ReduceLROnPlateau: cooldown must be an integer >= 0, got nan"),
    (lambda o: ReduceLROnPlateau(object()), r"ReduceLROnPlateau: expected an optimizer with a float attribute `lr`"),
]


@pytest.mark.parametrize("make, match", BAD_OTHER)
def test_bad_other_argument_is_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(tc_sgd(0.1))


def test_schedules_drive_the_new_optimizers():
    # every schedule sets `lr` on AdamW and RMSprop as on SGD; OneCycleLR cycles AdamW's beta1 and RMSprop's momentum
    for opt in (tc.AdamW([tc.Parameter(np.zeros(2))], lr=0.01), tc.RMSprop([tc.Parameter(np.zeros(2))], lr=0.01, momentum=0.9)):
        sched = OneCycleLR(opt, 0.1, 10, cycle_momentum=True)
        sched.step()
        assert opt.lr == sched.get_last_lr()
        moving = opt.betas[0] if isinstance(opt, tc.AdamW) else opt.momentum
        assert 0.85 <= moving <= 0.95


@pytest.mark.parametrize("key, value", [("last_epoch", "3"), ("last_epoch", 2.5), ("gamma", float("nan")),
                                        ("gamma", "0.1"), ("base_lr", None), ("_initial", 1), ("step_size", True)])
def test_damaged_schedule_state_is_refused_and_changes_nothing(key, value):
    opt = tc_sgd(0.1)
    sched = StepLR(opt, 3, 0.5)
    sched.step()
    before = sched.state_dict()
    with pytest.raises(ValueError, match=rf"StepLR.load_state_dict: '{key}' must be like"):
        sched.load_state_dict({**before, key: value})
    assert sched.state_dict() == before


def test_one_cycle_state_with_a_bad_strategy_or_phases_is_refused():
    sched = OneCycleLR(tc_sgd(0.1), 0.1, 10)
    state = sched.state_dict()
    with pytest.raises(ValueError, match=r"'anneal_strategy' must be like 'cos'"):
        sched.load_state_dict({**state, "anneal_strategy": "exp"})
    with pytest.raises(ValueError, match=r"'phases' must be like"):
        sched.load_state_dict({**state, "phases": []})
