"""Learning-rate schedules against torch.optim.lr_scheduler, whole sequences, bit for bit.

tinycnn computes each rate with the same floating-point operations in the same order as torch, so
the sequences must be *equal*, not close; any reordering of the formula would show up here.
"""
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.schedules import CosineAnnealingLR, LinearLR, OneCycleLR, StepLR

lrs_st = st.floats(1e-5, 1.0, allow_nan=False)


def tc_sgd(lr, momentum=0.0):
    return tc.SGD([tc.Parameter(np.zeros(2))], lr=lr, momentum=momentum)


def torch_sgd(torch, lr, momentum=0.0):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=momentum)


def run_tc(sched, n):
    """Rates in force for steps 0..n-1 (and the optimizer's own), stepping after each."""
    out = []
    for _ in range(n):
        assert sched.optimizer.lr == sched.get_last_lr()
        out.append(sched.get_last_lr())
        sched.step()
    return out


def run_torch(sched, n):
    out = []
    for _ in range(n):
        out.append(sched.get_last_lr()[0])
        sched.optimizer.step()            # no gradients: a no-op, but keeps torch's order check quiet
        sched.step()
    return out


def assert_same_sequence(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"step {i}: tinycnn lr {a!r} != torch lr {b!r} (diff {a - b:.3e})"


@given(lr=lrs_st, step_size=st.integers(1, 20), gamma=st.floats(0.01, 1.0), n=st.integers(1, 120))
def test_step_lr_matches_torch(torch, lr, step_size, gamma, n):
    ours = run_tc(StepLR(tc_sgd(lr), step_size, gamma), n)
    theirs = run_torch(torch.optim.lr_scheduler.StepLR(torch_sgd(torch, lr), step_size, gamma), n)
    assert_same_sequence(ours, theirs)


@given(lr=lrs_st, t_max=st.integers(1, 40), eta_frac=st.sampled_from([0.0, 0.01, 0.3]),
       periods=st.floats(0.1, 3.0))
def test_cosine_matches_torch_past_t_max(torch, lr, t_max, eta_frac, periods):
    # runs up to 3 * T_max steps: down, back up, and down again
    n = max(1, int(periods * t_max) + 2)
    eta_min = eta_frac * lr
    ours = run_tc(CosineAnnealingLR(tc_sgd(lr), t_max, eta_min), n)
    theirs = run_torch(torch.optim.lr_scheduler.CosineAnnealingLR(torch_sgd(torch, lr), t_max, eta_min), n)
    assert_same_sequence(ours, theirs)


def test_cosine_reaches_its_closed_form_values():
    # lr_t = eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2: T = 4, base 1, eta_min 0 gives
    # t=0: 1, t=2: 0.5, t=4: 0, t=6: 0.5, t=8: 1 (period 2T). The recursion rounds, so compare to 1e-15.
    seq = run_tc(CosineAnnealingLR(tc_sgd(1.0), T_max=4), 9)
    for t, want in [(0, 1.0), (2, 0.5), (4, 0.0), (6, 0.5), (8, 1.0)]:
        assert seq[t] == pytest.approx(want, abs=1e-15), (t, seq)


@given(lr=lrs_st, start=st.floats(0.01, 1.0), end=st.floats(0.0, 1.0), total=st.integers(0, 30),
       n=st.integers(1, 60))
def test_linear_lr_matches_torch(torch, lr, start, end, total, n):
    ours = run_tc(LinearLR(tc_sgd(lr), start, end, total), n)
    theirs = run_torch(torch.optim.lr_scheduler.LinearLR(torch_sgd(torch, lr), start, end, total), n)
    assert_same_sequence(ours, theirs)


def test_linear_warmup_default_values():
    # defaults start 1/3, end 1, 5 iterations, base 0.3: closed form 0.3*(1/3 + (2/3)*t/5)
    # t=0: 0.1, t=5: 0.3, and 0.3 thereafter.
    seq = run_tc(LinearLR(tc_sgd(0.3)), 8)
    assert seq[0] == pytest.approx(0.1, rel=1e-15)
    assert seq[5] == pytest.approx(0.3, rel=1e-15) and seq[7] == seq[5]


def _one_cycle_args(draw_total, pct, strategy, div, final_div, three):
    return dict(max_lr=0.1, total_steps=draw_total, pct_start=pct, anneal_strategy=strategy,
                div_factor=div, final_div_factor=final_div, three_phase=three)


def _run_both_one_cycle(torch, kwargs, n, max_lr, momentum_check=False, adam=False):
    """Compare n rates (n - 1 steps); a torch ZeroDivisionError must be our ValueError at the same step."""
    if adam:
        ours_opt = tc.Adam([tc.Parameter(np.zeros(2))], lr=1e-3)
        theirs_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    else:
        ours_opt, theirs_opt = tc_sgd(0.01, momentum=0.9), torch_sgd(torch, 0.01, momentum=0.9)
    try:
        theirs = torch.optim.lr_scheduler.OneCycleLR(theirs_opt, max_lr, cycle_momentum=momentum_check, **kwargs)
    except ZeroDivisionError:
        with pytest.raises(ValueError, match="zero length"):
            OneCycleLR(ours_opt, max_lr, cycle_momentum=momentum_check, **kwargs)
        return
    ours = OneCycleLR(ours_opt, max_lr, cycle_momentum=momentum_check, **kwargs)
    for i in range(n):
        assert ours.get_last_lr() == theirs.get_last_lr()[0], f"step {i}"
        if momentum_check:
            ours_m = ours_opt.betas[0] if adam else ours_opt.momentum
            key = "betas" if adam else "momentum"
            theirs_m = theirs_opt.param_groups[0][key]
            theirs_m = theirs_m[0] if adam else theirs_m
            assert ours_m == theirs_m, f"momentum at step {i}: {ours_m} vs {theirs_m}"
        if i == n - 1:
            return
        theirs_opt.step()
        try:
            theirs.step()
        except ZeroDivisionError:
            with pytest.raises(ValueError, match="zero length"):
                ours.step()
            return
        ours.step()


@given(max_lr=lrs_st, total=st.integers(1, 150),
       pct=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.25, 0.3, 0.5, 1.0])),
       strategy=st.sampled_from(["cos", "linear"]), div=st.floats(1.0, 100.0),
       final_div=st.sampled_from([1.0, 1e2, 1e4]), three=st.booleans())
def test_one_cycle_matches_torch(torch, max_lr, total, pct, strategy, div, final_div, three):
    kwargs = dict(total_steps=total, pct_start=pct, anneal_strategy=strategy, div_factor=div,
                  final_div_factor=final_div, three_phase=three)
    # total + 1 rates: torch allows last_epoch == total_steps
    _run_both_one_cycle(torch, kwargs, total + 1, max_lr)


@pytest.mark.parametrize("adam", [False, True])
@pytest.mark.parametrize("three", [False, True])
def test_one_cycle_momentum_cycling_matches_torch(torch, adam, three):
    kwargs = dict(total_steps=37, pct_start=0.3, three_phase=three)
    _run_both_one_cycle(torch, kwargs, 38, 0.05, momentum_check=True, adam=adam)


def test_one_cycle_learning_rate_only_by_default():
    opt = tc_sgd(0.01, momentum=0.9)
    sched = OneCycleLR(opt, 0.1, total_steps=10)
    for _ in range(10):
        sched.step()
    assert opt.momentum == 0.9


def test_one_cycle_endpoints_by_hand():
    # max_lr 1, div 4 -> initial 0.25; final_div 5 -> min 0.05. total 11, pct 0.5: phase 1 ends at
    # step 0.5*11 - 1 = 4.5, so step 0 is 0.25; phase 2 runs 4.5 -> 10 and ends at 0.05 at step 10.
    seq = run_tc(OneCycleLR(tc_sgd(1.0), 1.0, 11, pct_start=0.5, div_factor=4.0, final_div_factor=5.0), 11)
    assert seq[0] == 0.25 and seq[10] == pytest.approx(0.05, rel=1e-15)
    assert max(seq) < 1.0 and max(seq) > 0.95    # the peak (step 4.5) falls between steps 4 and 5


@pytest.mark.parametrize("total, pct, steps", [(10, 0.1, 0), (4, 0.25, 0), (5, 1.0, 5)])
def test_one_cycle_zero_length_phase_is_a_clear_error_where_torch_divides_by_zero(torch, total, pct, steps):
    # (10, 0.1): phase 1 ends at 0.1*10 - 1 = 0 = its start, at step 0 already.
    # (5, 1.0): phase 2 runs from 1.0*5 - 1 = 4 to 5 - 1 = 4, reached only by the step past the end.
    def build_and_step(make, step):
        sched = make()
        for _ in range(steps):
            step(sched)

    with pytest.raises(ZeroDivisionError):
        build_and_step(lambda: torch.optim.lr_scheduler.OneCycleLR(torch_sgd(torch, 0.1), 0.1, total, pct_start=pct),
                       lambda s: (s.optimizer.step(), s.step()))
    with pytest.raises(ValueError, match=f"zero length .* total_steps={total}, pct_start={pct}"):
        build_and_step(lambda: OneCycleLR(tc_sgd(0.1), 0.1, total, pct_start=pct), lambda s: s.step())


def test_one_cycle_refuses_a_step_past_the_end():
    sched = OneCycleLR(tc_sgd(0.1), 0.1, total_steps=3)
    for _ in range(3):
        sched.step()          # last_epoch 1, 2, 3 (3 == total_steps is allowed, as in torch)
    with pytest.raises(ValueError, match="tried to step 4 times, but total_steps = 3"):
        sched.step()


def test_chained_warmup_then_cosine_matches_torch(torch):
    # both stepped every iteration, as torch.optim.lr_scheduler.ChainedScheduler does
    ours_opt, theirs_opt = tc_sgd(0.2), torch_sgd(torch, 0.2)
    ours = [LinearLR(ours_opt, 0.1, 1.0, 7), CosineAnnealingLR(ours_opt, T_max=30, eta_min=0.001)]
    theirs = [torch.optim.lr_scheduler.LinearLR(theirs_opt, 0.1, 1.0, 7),
              torch.optim.lr_scheduler.CosineAnnealingLR(theirs_opt, T_max=30, eta_min=0.001)]
    for i in range(70):
        assert ours_opt.lr == theirs_opt.param_groups[0]["lr"], f"step {i}"
        theirs_opt.step()
        for s in ours + theirs:
            s.step()


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 3, 0.5),
    lambda o: CosineAnnealingLR(o, 9, 1e-4),
    lambda o: LinearLR(o, 0.2, 1.0, 6),
    lambda o: OneCycleLR(o, 0.5, 25, three_phase=True, cycle_momentum=True),
])
def test_resume_from_json_state_continues_the_same_sequence(make):
    opt = tc_sgd(0.1, momentum=0.9)
    sched = make(opt)
    for _ in range(7):
        sched.step()
    saved_opt = opt.state_dict()
    saved = json.loads(json.dumps(sched.state_dict()))        # must survive JSON
    reference = run_tc(sched, 15)

    fresh_opt = tc_sgd(0.7, momentum=0.0)                       # different numbers on purpose
    fresh = make(fresh_opt)
    fresh_opt.load_state_dict(saved_opt)
    fresh.load_state_dict(saved)
    assert fresh.last_epoch == 7
    assert_same_sequence(run_tc(fresh, 15), reference)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="StepLR: step_size must be an integer >= 1, got 0"):
        StepLR(tc_sgd(0.1), 0)
    with pytest.raises(ValueError, match="CosineAnnealingLR: T_max must be an integer >= 1, got 0"):
        CosineAnnealingLR(tc_sgd(0.1), 0)
    with pytest.raises(ValueError, match=r"LinearLR: start_factor must lie in \(0, 1\], got 0"):
        LinearLR(tc_sgd(0.1), start_factor=0)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear', got 'exp'"):
        OneCycleLR(tc_sgd(0.1), 0.1, 10, anneal_strategy="exp")
    with pytest.raises(ValueError, match=r"pct_start must lie in \[0, 1\], got 1.5"):
        OneCycleLR(tc_sgd(0.1), 0.1, 10, pct_start=1.5)
    with pytest.raises(TypeError, match="StepLR: expected an optimizer with a float attribute `lr`"):
        StepLR(object(), 3)
    with pytest.raises(ValueError, match="belongs to 'StepLR', not LinearLR"):
        LinearLR(tc_sgd(0.1)).load_state_dict(StepLR(tc_sgd(0.1), 2).state_dict())


def test_constant_and_zero_lr_edge_cases():
    # gamma 1 keeps the rate; a zero base rate stays zero under every chainable schedule
    assert set(run_tc(StepLR(tc_sgd(0.05), 1, 1.0), 20)) == {0.05}
    assert set(run_tc(CosineAnnealingLR(tc_sgd(0.0), 5), 20)) == {0.0}
    assert all(math.isfinite(x) for x in run_tc(CosineAnnealingLR(tc_sgd(0.1), 1), 10))
