"""Learning-rate schedules with torch.optim.lr_scheduler's formulas, acting on every parameter group.

A schedule sets each group's rate (``optimizer.param_groups[i]["lr"]``; ``optimizer.lr`` with one
group) when it is built (step 0) and again at every ``step()``; call ``step()`` after
``optimizer.step()``, once per epoch or once per batch, as in PyTorch::

    sched = CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(opt)          # uses opt.lr
        sched.step()

Schedules: StepLR, MultiStepLR, CosineAnnealingLR, LinearLR (warm-up), OneCycleLR, PiecewiseLinearLR
(a triangle or any piecewise-linear shape through given points); SequentialLR
runs several one after another (warm-up, then decay); ReduceLROnPlateau cuts the rate when a metric
stops improving (``step(metric)``, once per epoch). Every argument is checked at construction: a real
number (not a bool or a string), finite, in range, or a clear error naming the schedule, the
argument and the value.

``last_epoch`` counts the steps taken (0 right after construction). ``get_last_lr()`` is the rate
the last step set in the first group (a float); ``get_last_lrs()`` the list over the groups (what
torch's ``get_last_lr()`` returns).

Parameter groups, as in torch: every group is scheduled from its own rate. The first schedule built
on an optimizer records each group's rate as the group's ``initial_lr`` (torch's
``param_group["initial_lr"]``); ``base_lrs`` are those, and a rule such as "lr = base_lr * factor(t)"
is applied to each group, so groups keep their ratio (a bias group at 10x the weights' rate stays at
10x). OneCycleLR takes ``max_lr`` as one number (every group, as torch) or a list, one per group.

Like torch, StepLR, MultiStepLR, CosineAnnealingLR and LinearLR are *chainable*: each step multiplies (or shifts)
the optimizer's current rate, so two schedules on one optimizer compose the way torch's do, and the
floating-point results are torch's to the last bit (same operations in the same order). ``base_lr``
is the rate the first schedule found on the first group (``base_lrs``: every group's).
OneCycleLR and PiecewiseLinearLR are not chainable: they compute the rate from the step.

Resuming: build the optimizer and the schedule, then ``optimizer.load_state_dict(...)`` (it holds the
current ``lr``) and ``schedule.load_state_dict(...)``; loading the optimizer *before* building a
schedule would let the construction step overwrite the loaded rate (torch's warning, too). A
schedule's ``state_dict()`` holds only Python numbers, strings and lists: it fits in JSON (e.g. in
a checkpoint's ``extra``). A state saved by a tinycnn without groups (no ``base_lrs``) loads into a
one-group optimizer.
"""
from __future__ import annotations

import bisect
import math
import numbers

import numpy as np

from .optim import check_flag, check_number


def _positive_int(value, name, owner, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _finite_float(value, name, owner, **bounds):
    """A finite real number (not a bool, not a string) in the given range; see optim.check_number."""
    return check_number(owner, name, value, **bounds)


def _check_same_kind(owner, key, current, value):
    """Refuse a loaded value that is not of the kind the attribute holds (a bool, an integer, a finite
    number, a string, a list), so a damaged state cannot turn a schedule's numbers into garbage."""
    def is_int(x):
        return isinstance(x, numbers.Integral) and not isinstance(x, bool)

    def is_real(x):
        return isinstance(x, numbers.Real) and not isinstance(x, bool)

    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif is_int(current):
        ok = is_int(value)
    elif is_real(current):
        ok = is_real(value) and (math.isfinite(value) or not math.isfinite(current))
    elif isinstance(current, str):
        ok = isinstance(value, str) and (key != "anneal_strategy" or value in ("cos", "linear"))
    elif isinstance(current, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and len(value) == len(current)
        if ok and current and all(is_real(c) for c in current):     # rates, milestones: finite numbers
            ok = all(is_real(v) and math.isfinite(v) for v in value)
    else:
        ok = current is None and (value is None or is_real(value))
    if not ok:
        raise ValueError(f"{owner}: '{key}' must be like {current!r} ({type(current).__name__}), got {value!r}")


def _groups(optimizer, owner: str) -> list[dict]:
    """The optimizer's parameter groups, or a clear error for what is not a tinycnn optimizer."""
    groups = getattr(optimizer, "param_groups", None)
    if (not isinstance(getattr(optimizer, "lr", None), numbers.Real) or not isinstance(groups, list) or not groups
            or not all(isinstance(g, dict) and isinstance(g.get("lr"), numbers.Real) for g in groups)):
        raise TypeError(f"{owner}: expected an optimizer with a float attribute `lr` and `param_groups` "
                        f"(tc.SGD, tc.Adam, ...), got {type(optimizer).__name__}")
    return groups


def _per_group(value, name: str, owner: str, n: int, **bounds) -> list[float]:
    """One number for every group, or a list of n numbers (torch's rule for max_lr and the like)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{owner}: {name} holds {len(value)} values, but the optimizer has {n} parameter "
                             f"groups; give one number (every group) or one per group")
        return [_finite_float(v, f"{name}[{i}]", owner, **bounds) for i, v in enumerate(value)]
    return [_finite_float(value, name, owner, **bounds)] * n


_GROUP_LISTS = (("base_lrs", "base_lr"), ("_last_lrs", "_last_lr"), ("max_lrs", "max_lr"),
                ("initial_lrs", "initial_lr"), ("min_lrs", "min_lr"))


def _with_group_lists(owner: str, state: dict, current: dict) -> dict:
    """``state`` with every per-group list (``base_lrs``, ...) filled in from its one-group scalar
    (``base_lr``, ...) when it was saved without groups, and each scalar set to its list's first
    value (the lists are what the schedule computes with)."""
    state = dict(state)
    for many, one in _GROUP_LISTS:
        if many not in current:
            continue
        if many not in state and one in state:
            if len(current[many]) != 1:
                raise ValueError(f"{owner}: the state has one {one} (saved for one parameter group), but the "
                                 f"optimizer has {len(current[many])} groups")
            state[many] = [state[one]]
        if many in state:
            state[one] = state[many][0]
    return state


class LRScheduler:
    """Base class: subclasses implement ``_next_lr(lr, base_lr) -> float``, one group's rate at the
    step ``self.last_epoch`` (``lr``: the group's current rate), or ``_next_lrs()`` for all groups."""

    def __init__(self, optimizer):
        name = type(self).__name__
        groups = _groups(optimizer, name)
        self.optimizer = optimizer
        for g in groups:
            if g.get("initial_lr") is None:
                g["initial_lr"] = float(g["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in groups]
        self.base_lr = self.base_lrs[0]
        self.last_epoch = -1
        self._last_lrs = [float(g["lr"]) for g in groups]
        self._last_lr = self._last_lrs[0]
        self._initial = False
        self._initial_step()

    def _initial_step(self) -> None:
        """The construction step (torch's ``_initial_step``, with ``_is_initial`` set)."""
        self._initial = True
        try:
            self.step()
        finally:
            self._initial = False

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr:.6g})"

    def step(self) -> None:
        """Advance one step and set every group's rate."""
        self.last_epoch += 1
        self._set_lrs(self._next_lrs())

    def _set_lrs(self, lrs) -> None:
        lrs = [float(lr) for lr in lrs]
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lrs = lrs
        self._last_lr = lrs[0]

    def get_last_lr(self) -> float:
        """The rate the last step set in the first group."""
        return self._last_lr

    def get_last_lrs(self) -> list[float]:
        """The rates the last step set, one per group (torch's ``get_last_lr()``)."""
        return list(self._last_lrs)

    def _next_lrs(self) -> list[float]:
        return [self._next_lr(g["lr"], base) for g, base in zip(self.optimizer.param_groups, self.base_lrs)]

    def _next_lr(self, lr: float, base_lr: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_loaded(self, owner: str, state: dict) -> None:
        """Checks of a loaded state beyond each value's kind (subclasses); raise to refuse it."""

    def _closed_form_lrs(self) -> list[float]:
        """The rates at step ``last_epoch`` from ``base_lrs`` alone (torch's ``_get_closed_form_lr``;
        used by SequentialLR when this schedule takes over). Non-chainable schedules: ``_next_lrs``."""
        return [self._closed_form_lr(base) for base in self.base_lrs]

    def _closed_form_lr(self, base_lr: float) -> float:
        return self._next_lr(base_lr, base_lr)

    def state_dict(self) -> dict:
        """Every attribute but the optimizer, plus ``type``; JSON-able."""
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer"}
        state["type"] = type(self).__name__
        return state

    def load_state_dict(self, state: dict) -> None:
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state belongs to {state.get('type')!r}, not {name}")
        unknown = sorted(set(state) - set(self.__dict__) - {"type"})
        if unknown:
            raise ValueError(f"{name}.load_state_dict: unexpected keys {unknown}")
        owner = f"{name}.load_state_dict"
        for key, value in state.items():           # each value of the kind this schedule holds there
            if key != "type":
                _check_same_kind(owner, key, self.__dict__[key], value)
        state = _with_group_lists(owner, state, self.__dict__)
        self._check_loaded(owner, state)
        self.__dict__.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in state.items() if k != "type"})


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps.

    Closed form: lr_t = base_lr * gamma ** (t // step_size). Computed as torch does, recursively:
    lr_t = lr_{t-1} * gamma when t > 0 and t % step_size == 0, else lr_{t-1}.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _positive_int(step_size, "step_size", "StepLR")
        self.gamma = _finite_float(gamma, "gamma", "StepLR", low=0)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        t = self.last_epoch
        if t == 0 or t % self.step_size != 0:
            return lr
        return lr * self.gamma

    def _closed_form_lr(self, base_lr):
        return base_lr * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Cosine from base_lr down to ``eta_min`` over ``T_max`` steps (SGDR without restarts).

    Closed form: lr_t = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2. Past T_max
    the cosine keeps going (the rate rises again, period 2*T_max), as in torch. Computed as torch
    does, recursively from the current rate::

        lr_t = (1 + cos(pi t / T)) / (1 + cos(pi (t-1) / T)) * (lr_{t-1} - eta_min) + eta_min
        lr_t = lr_{t-1} + (base_lr - eta_min) * (1 - cos(pi / T)) / 2    when (t-1-T) % 2T == 0

    (the second line steps off the minimum, where the ratio above would be 0/0).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = _finite_float(eta_min, "eta_min", "CosineAnnealingLR", low=0)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta_min) + eta_min

    def _closed_form_lr(self, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Linear warm-up (or decay): the factor goes from ``start_factor`` to ``end_factor`` in
    ``total_iters`` steps, then stays.

    Closed form: lr_t = base_lr * (s + (e - s) * min(t, total_iters) / total_iters). Computed as
    torch does: lr_0 = lr * s, then lr_t = lr_{t-1} * (1 + (e - s) / (total_iters*s + (t-1)*(e - s)))
    for 1 <= t <= total_iters. Like torch, 0 < start_factor <= 1 and 0 <= end_factor <= 1.
    """

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        name = "LinearLR"
        self.start_factor = _finite_float(start_factor, "start_factor", name)
        self.end_factor = _finite_float(end_factor, "end_factor", name)
        if not 0 < self.start_factor <= 1:
            raise ValueError(f"{name}: start_factor must lie in (0, 1], got {start_factor}")
        if not 0 <= self.end_factor <= 1:
            raise ValueError(f"{name}: end_factor must lie in [0, 1], got {end_factor}")
        self.total_iters = _positive_int(total_iters, "total_iters", name, minimum=0)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        t = self.last_epoch
        s, e = self.start_factor, self.end_factor
        if t == 0:
            return lr * s
        if t > self.total_iters:
            return lr
        return lr * (1.0 + (e - s) / (self.total_iters * s + (t - 1) * (e - s)))

    def _closed_form_lr(self, base_lr):
        if self.total_iters == 0:
            raise ValueError("LinearLR: total_iters=0 has no closed form (torch divides by zero); "
                             "use total_iters >= 1 for a LinearLR that SequentialLR switches to")
        s, e = self.start_factor, self.end_factor
        return base_lr * (s + (e - s) * min(self.total_iters, self.last_epoch) / self.total_iters)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), torch's OneCycleLR: step it once per batch.

    initial_lr = max_lr / div_factor, min_lr = initial_lr / final_div_factor. Two phases (default,
    fastai's): initial_lr -> max_lr over steps 0 .. pct_start*total_steps - 1, then max_lr -> min_lr
    until step total_steps - 1. ``three_phase=True`` (the paper's): up, back down to initial_lr
    symmetrically, then down to min_lr. Inside a phase from step a to step b::

        pct = (t - a) / (b - a)
        cos:    lr = end + (start - end) / 2 * (1 + cos(pi * pct))
        linear: lr = (end - start) * pct + start

    Like torch, ``step()`` may be called until last_epoch == total_steps (one step past the end,
    extrapolating), and a step beyond that raises.

    Momentum: torch's OneCycleLR also cycles momentum by default (``cycle_momentum=True``: SGD's
    momentum or Adam's beta1 from max_momentum=0.95 down to base_momentum=0.85 while the rate rises,
    and back). Here it is supported but **off by default** (``cycle_momentum=False``: the learning
    rate only, as the name says); pass ``cycle_momentum=True`` for torch's default behaviour, which
    sets ``optimizer.momentum`` (SGD) or ``optimizer.betas[0]`` (Adam) at every step.

    Unlike torch (which divides by zero), a phase of zero length -- pct_start * total_steps == 1,
    or pct_start = 1 at the final step -- raises a ValueError naming the numbers.

    Parameter groups: ``max_lr`` is one number for every group or a list of one per group, as in
    torch; each group's initial_lr (overwritten, as torch does) and min_lr follow from its own
    max_lr. ``max_lr``, ``initial_lr`` and ``min_lr`` are the first group's; ``max_lrs``,
    ``initial_lrs`` and ``min_lrs`` every group's. A triangle that ends at exactly 0, or a shape
    through other points, is ``PiecewiseLinearLR``.
    """

    def __init__(self, optimizer, max_lr, total_steps, pct_start=0.3, anneal_strategy="cos",
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, *,
                 cycle_momentum=False, base_momentum=0.85, max_momentum=0.95):
        name = "OneCycleLR"
        self.total_steps = _positive_int(total_steps, "total_steps", name)
        self.pct_start = _finite_float(pct_start, "pct_start", name)
        if not 0 <= self.pct_start <= 1:
            raise ValueError(f"{name}: pct_start must lie in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{name}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        groups = _groups(optimizer, name)
        self.max_lrs = _per_group(max_lr, "max_lr", name, len(groups), low=0)
        div = _finite_float(div_factor, "div_factor", name, low=0, low_open=True)
        final_div = _finite_float(final_div_factor, "final_div_factor", name, low=0, low_open=True)
        self.initial_lrs = [m / div for m in self.max_lrs]
        self.min_lrs = [i / final_div for i in self.initial_lrs]
        self.max_lr, self.initial_lr, self.min_lr = self.max_lrs[0], self.initial_lrs[0], self.min_lrs[0]
        self.three_phase = check_flag(name, "three_phase", three_phase)
        # phases: (end_step, start value key, end value key), keys into _values(); torch's numbers.
        up_end = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            self.phases = [[up_end, "initial", "max"],
                           [float(2 * self.pct_start * self.total_steps) - 2, "max", "initial"],
                           [self.total_steps - 1, "initial", "min"]]
        else:
            self.phases = [[up_end, "initial", "max"], [self.total_steps - 1, "max", "min"]]
        self.cycle_momentum = check_flag(name, "cycle_momentum", cycle_momentum)
        self.base_momentum = _finite_float(base_momentum, "base_momentum", name, low=0, high=1, high_open=True)
        self.max_momentum = _finite_float(max_momentum, "max_momentum", name, low=0, high=1, high_open=True)
        if self.cycle_momentum and not all("momentum" in g or "betas" in g for g in groups):
            raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with `momentum` (SGD) or "
                             f"`betas` (Adam), got {type(optimizer).__name__}")
        for g, initial in zip(groups, self.initial_lrs):
            g["initial_lr"] = initial                   # torch overwrites param_group["initial_lr"]
        super().__init__(optimizer)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _next_lrs(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times, but total_steps = {self.total_steps}")
        out = [self._group_lr(t, *values) for values in zip(self.initial_lrs, self.max_lrs, self.min_lrs)]
        if self.cycle_momentum:
            self._set_momentum(self._group_lr(t, self.max_momentum, self.base_momentum, self.max_momentum))
        return out

    def _closed_form_lrs(self):
        return self._next_lrs()

    def _group_lr(self, t, initial, peak, low):
        """The value at step t of the curve initial -> peak -> low (the rate, or the momentum)."""
        lrs = {"initial": initial, "max": peak, "min": low}
        start_step = 0.0
        for i, (end_step, start_key, end_key) in enumerate(self.phases):
            if t <= end_step or i == len(self.phases) - 1:
                if end_step == start_step:
                    raise ValueError(
                        f"OneCycleLR: phase {i + 1} has zero length (it starts and ends at step "
                        f"{start_step:g}) with total_steps={self.total_steps}, pct_start={self.pct_start}; "
                        f"choose pct_start with pct_start * total_steps != 1 (and pct_start < 1 to take the "
                        f"step past the end)")
                pct = (t - start_step) / (end_step - start_step)
                return self._anneal(lrs[start_key], lrs[end_key], pct)
            start_step = end_step
        raise AssertionError("unreachable: the last phase always matches")  # pragma: no cover

    def _set_momentum(self, momentum):
        for g in self.optimizer.param_groups:
            if "betas" in g:
                g["betas"] = (momentum, *g["betas"][1:])
            else:
                g["momentum"] = momentum

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.max_lr, self.initial_lr, self.min_lr = self.max_lrs[0], self.initial_lrs[0], self.min_lrs[0]


class PiecewiseLinearLR(LRScheduler):
    """The rate through given points, linear between them: a triangle, a warm-up then a linear
    decay to 0, or any piecewise-linear shape; step it once per batch (or per epoch).

    For every group, lr_t = base_lr * f(t), where f joins the points (milestones[j], factors[j]) by
    straight lines (``np.interp``): f(t) = factors[j] + (factors[j+1] - factors[j]) * (t - m_j) /
    (m_{j+1} - m_j) between two milestones, factors[0] before the first and factors[-1] after the
    last. The triangle of the fast CIFAR-10 recipes, over T steps::

        PiecewiseLinearLR(opt, milestones=[0, 0.23 * T, T], factors=[0.2, 1.0, 0.0])

    milestones: at least one finite number >= 0 (steps; fractional ones allowed), strictly
    increasing; factors: as many finite numbers >= 0. Not chainable (the rate comes from base_lr and
    the step alone), so with SequentialLR it restarts exactly. torch has no class of its own for it:
    ``LambdaLR(opt, lambda t: np.interp(t, milestones, factors))`` gives the same rates.
    OneCycleLR(anneal_strategy="linear") is close, but its phases end one step early (at
    pct_start * total_steps - 1 and total_steps - 1) and its last rate is initial_lr /
    final_div_factor, never exactly 0.
    """

    def __init__(self, optimizer, milestones, factors):
        name = "PiecewiseLinearLR"
        for arg, value in (("milestones", milestones), ("factors", factors)):
            if not isinstance(value, (list, tuple)) or not value:
                raise TypeError(f"{name}: {arg} must be a non-empty list of numbers, got {value!r:.80}")
        self.milestones = [_finite_float(m, f"milestones[{i}]", name, low=0) for i, m in enumerate(milestones)]
        self.factors = [_finite_float(f, f"factors[{i}]", name, low=0) for i, f in enumerate(factors)]
        if len(self.milestones) != len(self.factors):
            raise ValueError(f"{name}: {len(self.milestones)} milestones but {len(self.factors)} factors; give "
                             f"one factor per milestone")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"{name}: milestones must be strictly increasing, got {list(milestones)!r}")
        super().__init__(optimizer)

    def factor(self, t: float) -> float:
        """f(t): the factor at step t."""
        return float(np.interp(t, self.milestones, self.factors))

    def _next_lr(self, lr, base_lr):
        return base_lr * self.factor(self.last_epoch)

    def _check_loaded(self, owner: str, state: dict) -> None:
        ms, fs = state.get("milestones", self.milestones), state.get("factors", self.factors)
        if any(b <= a for a, b in zip(ms, ms[1:])) or any(f < 0 for f in fs) or any(m < 0 for m in ms):
            raise ValueError(f"{owner}: milestones must be strictly increasing numbers >= 0 and factors >= 0, "
                             f"got {ms!r:.80} and {fs!r:.80}")


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone (torch.optim.lr_scheduler.MultiStepLR).

    Closed form: lr_t = base_lr * gamma ** (number of milestones <= t). Computed as torch does,
    recursively: lr_t = lr_{t-1} * gamma ** (the number of times t is listed in milestones). A
    milestone listed twice counts twice, and a milestone 0 applies at construction, as in torch.
    milestones: integers >= 0, in any order (kept sorted); gamma >= 0.
    """

    def __init__(self, optimizer, milestones, gamma=0.1):
        name = "MultiStepLR"
        try:
            given = list(milestones)
        except TypeError:
            raise TypeError(f"{name}: milestones must be a list of integers >= 0, got {milestones!r}") from None
        for m in given:
            if not isinstance(m, numbers.Integral) or isinstance(m, bool) or m < 0:
                raise ValueError(f"{name}: milestones must be integers >= 0, got {m!r} in {given!r}")
        self.milestones = sorted(int(m) for m in given)
        self.gamma = _finite_float(gamma, "gamma", name, low=0)
        super().__init__(optimizer)

    def _next_lr(self, lr, base_lr):
        hits = self.milestones.count(self.last_epoch)
        return lr if hits == 0 else lr * self.gamma ** hits

    def _closed_form_lr(self, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, self.last_epoch)


class SequentialLR:
    """Schedules one after another (torch.optim.lr_scheduler.SequentialLR), e.g. warm-up then decay::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=5)
        decay = CosineAnnealingLR(opt, T_max=95)
        sched = SequentialLR(opt, [warmup, decay], milestones=[5])     # step only ``sched``

    ``schedulers[i]`` is in force from step ``milestones[i-1]`` to ``milestones[i] - 1``. As in torch:
    construction puts the optimizer back at its initial rate, undoes the construction step of every
    schedule and takes the first schedule's construction step again; at a milestone the next schedule
    restarts at its step 0 from its closed form (from ``base_lr``: a warm-up's last rate is not
    carried over), and between milestones ``step()`` steps the schedule in force.

    schedulers: LRSchedulers of this same optimizer (not ReduceLROnPlateau, which needs a metric, and
    not another SequentialLR); milestones: len(schedulers) - 1 strictly increasing integers >= 0.
    """

    def __init__(self, optimizer, schedulers, milestones):
        name = "SequentialLR"
        try:
            schedulers = list(schedulers)
            milestones = list(milestones)
        except TypeError:
            raise TypeError(f"{name}: schedulers and milestones must be lists, got {schedulers!r} and "
                            f"{milestones!r}") from None
        if not schedulers:
            raise ValueError(f"{name}: expects at least one scheduler, got none")
        for i, s in enumerate(schedulers):
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"{name}: schedulers[{i}] is a ReduceLROnPlateau, which needs a metric at each "
                                 f"step; step it yourself beside the sequence")
            if isinstance(s, SequentialLR):
                raise ValueError(f"{name}: schedulers[{i}] is itself a SequentialLR; list its schedulers instead")
            if not isinstance(s, LRScheduler):
                raise TypeError(f"{name}: schedulers[{i}] is a {type(s).__name__}, not a learning-rate schedule "
                                f"(StepLR, MultiStepLR, LinearLR, CosineAnnealingLR, OneCycleLR)")
            if s.optimizer is not optimizer:
                raise ValueError(f"{name}: schedulers[{i}] ({type(s).__name__}) belongs to another optimizer; "
                                 f"all schedulers must act on the optimizer given")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{name}: expects one milestone fewer than schedulers, got {len(schedulers)} "
                             f"schedulers and {len(milestones)} milestones ({milestones!r})")
        for m in milestones:
            if not isinstance(m, numbers.Integral) or isinstance(m, bool) or m < 0:
                raise ValueError(f"{name}: milestones must be integers >= 0, got {m!r} in {milestones!r}")
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"{name}: milestones must be strictly increasing, got {milestones!r}")
        for i, s in enumerate(schedulers[1:], start=1):
            if isinstance(s, LinearLR) and s.total_iters == 0:
                raise ValueError(f"{name}: schedulers[{i}] is a LinearLR with total_iters=0, which has no "
                                 f"closed form to restart from (torch divides by zero); use total_iters >= 1")
        self.optimizer = optimizer
        self.schedulers = schedulers
        self.milestones = [int(m) for m in milestones]
        self.last_epoch = 0
        for g in optimizer.param_groups:
            g["lr"] = float(g["initial_lr"])
        for s in schedulers:
            s.last_epoch -= 1                       # undo each schedule's construction step
        first = self.schedulers[bisect.bisect_right(self.milestones, 0)]
        first._initial_step()
        self._last_lrs = first.get_last_lrs()
        self._last_lr = self._last_lrs[0]

    def __repr__(self):
        inner = ", ".join(type(s).__name__ for s in self.schedulers)
        return f"SequentialLR([{inner}], milestones={self.milestones}, last_epoch={self.last_epoch})"

    def step(self) -> None:
        """Advance one step with the schedule in force (restarting it at a milestone)."""
        self.last_epoch += 1
        idx = bisect.bisect_right(self.milestones, self.last_epoch)
        s = self.schedulers[idx]
        if idx > 0 and self.milestones[idx - 1] == self.last_epoch:
            s.last_epoch = 0
            s._set_lrs(s._closed_form_lrs())
        else:
            s.step()
        self._last_lrs = s.get_last_lrs()
        self._last_lr = self._last_lrs[0]

    def get_last_lr(self) -> float:
        """The rate the last step set in the first group."""
        return self._last_lr

    def get_last_lrs(self) -> list[float]:
        """The rates the last step set, one per group."""
        return list(self._last_lrs)

    def state_dict(self) -> dict:
        """``{"type", "last_epoch", "milestones", "_last_lr", "_last_lrs", "schedulers": [each one's
        state]}``; JSON-able."""
        return {"type": "SequentialLR", "last_epoch": self.last_epoch, "milestones": list(self.milestones),
                "_last_lr": self._last_lr, "_last_lrs": list(self._last_lrs),
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        name = "SequentialLR"
        if not isinstance(state, dict) or state.get("type") != name:
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{name}.load_state_dict: the state belongs to {got!r}, not {name}")
        inner = state.get("schedulers")
        if not isinstance(inner, list) or len(inner) != len(self.schedulers):
            raise ValueError(f"{name}.load_state_dict: expected {len(self.schedulers)} scheduler states, got "
                             f"{len(inner) if isinstance(inner, list) else inner!r}")
        for i, (s, st) in enumerate(zip(self.schedulers, inner)):
            if not isinstance(st, dict) or st.get("type") != type(s).__name__:
                raise ValueError(f"{name}.load_state_dict: schedulers[{i}] is a {type(s).__name__}, the state's "
                                 f"is {st.get('type') if isinstance(st, dict) else st!r}")
        if state.get("milestones") != self.milestones:
            raise ValueError(f"{name}.load_state_dict: milestones {state.get('milestones')!r} differ from "
                             f"this sequence's {self.milestones!r}")
        last_epoch = state.get("last_epoch")
        if not isinstance(last_epoch, int) or isinstance(last_epoch, bool) or last_epoch < 0:
            raise ValueError(f"{name}.load_state_dict: last_epoch must be an integer >= 0, got {last_epoch!r}")
        owner = f"{name}.load_state_dict"
        _finite_float(state.get("_last_lr"), "_last_lr", owner, low=0)
        last_lrs = _last_lrs_of(owner, state, len(self._last_lrs))
        for s, st in zip(self.schedulers, inner):
            s.load_state_dict(st)
        self.last_epoch = last_epoch
        self._last_lrs = last_lrs
        self._last_lr = last_lrs[0]


def _last_lrs_of(owner: str, state: dict, n: int) -> list[float]:
    """``state["_last_lrs"]`` checked (n finite numbers >= 0), or ``[state["_last_lr"]]`` for a state
    saved without groups (then n must be 1)."""
    if "_last_lrs" not in state:
        if n != 1:
            raise ValueError(f"{owner}: the state has no '_last_lrs' (saved for one parameter group), but the "
                             f"optimizer has {n} groups")
        return [float(state["_last_lr"])]
    lrs = state["_last_lrs"]
    if not isinstance(lrs, (list, tuple)) or len(lrs) != n:
        raise ValueError(f"{owner}: '_last_lrs' must be a list of {n} rates (one per group), got {lrs!r:.80}")
    return [_finite_float(v, f"_last_lrs[{i}]", owner, low=0) for i, v in enumerate(lrs)]


class ReduceLROnPlateau:
    """Cut the rate when a metric stops improving (torch.optim.lr_scheduler.ReduceLROnPlateau).

    Call ``step(metric)`` once per epoch with, e.g., the validation loss (mode='min') or accuracy
    (mode='max'). With ``best`` the best metric so far, a metric a counts as an improvement when::

        mode='min', threshold_mode='rel':  a < best * (1 - threshold)
        mode='min', threshold_mode='abs':  a < best - threshold
        mode='max', threshold_mode='rel':  a > best * (1 + threshold)
        mode='max', threshold_mode='abs':  a > best + threshold

    (a NaN metric is never an improvement, as in torch). After more than ``patience`` epochs without
    one, each group's lr = max(lr * factor, min_lr), applied only if that lowers it by more than
    ``eps``; then ``cooldown`` epochs pass in which bad epochs are not counted. Not chainable with the other
    schedules through SequentialLR (it needs the metric); step it beside them if wanted.

    Ranges: 0 <= factor < 1 (torch asks factor < 1 only), patience and cooldown integers >= 0,
    threshold, min_lr, eps finite and >= 0. ``state_dict()`` holds ``best``, which is +-inf until
    the first step (JSON writes it as ``Infinity``, which Python's json reads back).
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        name = "ReduceLROnPlateau"
        groups = _groups(optimizer, name)
        hp = self._checked(name, dict(mode=mode, factor=factor, patience=patience, threshold=threshold,
                                      threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps))
        self.optimizer = optimizer
        self.__dict__.update(hp)
        self.last_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lrs = [float(g["lr"]) for g in groups]
        self._last_lr = self._last_lrs[0]

    @staticmethod
    def _checked(owner, v):
        if v["mode"] not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {v['mode']!r}")
        if v["threshold_mode"] not in ("rel", "abs"):
            raise ValueError(f"{owner}: threshold_mode must be 'rel' or 'abs', got {v['threshold_mode']!r}")
        return dict(mode=v["mode"], threshold_mode=v["threshold_mode"],
                    factor=_finite_float(v["factor"], "factor", owner, low=0, high=1, high_open=True),
                    patience=_positive_int(v["patience"], "patience", owner, minimum=0),
                    threshold=_finite_float(v["threshold"], "threshold", owner, low=0),
                    cooldown=_positive_int(v["cooldown"], "cooldown", owner, minimum=0),
                    min_lr=_finite_float(v["min_lr"], "min_lr", owner, low=0),
                    eps=_finite_float(v["eps"], "eps", owner, low=0))

    def __repr__(self):
        return (f"ReduceLROnPlateau(mode={self.mode!r}, best={self.best:.6g}, bad_epochs={self.num_bad_epochs}, "
                f"lr={self._last_lr:.6g})")

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            return (a < self.best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                    else a < self.best - self.threshold)
        return (a > self.best * (self.threshold + 1.0) if self.threshold_mode == "rel"
                else a > self.best + self.threshold)

    def step(self, metric) -> None:
        """Record this epoch's ``metric`` (a number) and cut ``optimizer.lr`` if it has plateaued."""
        if isinstance(metric, bool) or not (isinstance(metric, numbers.Real)
                                            or (hasattr(metric, "ndim") and metric.ndim == 0
                                                and getattr(metric, "dtype", None) is not None
                                                and metric.dtype.kind in "fiu")):
            raise TypeError(f"ReduceLROnPlateau.step: metric must be a number (e.g. the validation loss), "
                            f"got {metric!r} ({type(metric).__name__})")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0                 # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for g in self.optimizer.param_groups:        # each group cut on its own, as in torch
                old_lr = float(g["lr"])
                new_lr = max(old_lr * self.factor, self.min_lr)
                if old_lr - new_lr > self.eps:
                    g["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._last_lr = self._last_lrs[0]

    def get_last_lr(self) -> float:
        """The first group's rate after the last step."""
        return self._last_lr

    def get_last_lrs(self) -> list[float]:
        """Every group's rate after the last step."""
        return list(self._last_lrs)

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer"}
        state["type"] = "ReduceLROnPlateau"
        return state

    def load_state_dict(self, state: dict) -> None:
        owner = "ReduceLROnPlateau.load_state_dict"
        if not isinstance(state, dict) or state.get("type") != "ReduceLROnPlateau":
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{owner}: the state belongs to {got!r}, not ReduceLROnPlateau")
        keys = set(self.__dict__) - {"optimizer"}
        if set(state) - {"type"} not in (keys, keys - {"_last_lrs"}):     # without: saved before groups
            raise ValueError(f"{owner}: expected keys {sorted(keys)}, got {sorted(set(state) - {'type'})}")
        hp = self._checked(owner, state)
        for key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            _positive_int(state[key], key, owner, minimum=0)
        best = state["best"]
        if isinstance(best, bool) or not isinstance(best, numbers.Real) or math.isnan(best):
            raise ValueError(f"{owner}: best must be a number (or +-inf), got {best!r}")
        _finite_float(state["_last_lr"], "_last_lr", owner, low=0)
        last_lrs = _last_lrs_of(owner, state, len(self._last_lrs))
        self.__dict__.update(hp)
        for key in ("last_epoch", "num_bad_epochs", "cooldown_counter"):
            setattr(self, key, int(state[key]))
        self.best = float(best)
        self._last_lrs = last_lrs
        self._last_lr = last_lrs[0]
