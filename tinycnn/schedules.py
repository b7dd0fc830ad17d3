"""Learning-rate schedules with torch.optim.lr_scheduler's formulas, acting on ``optimizer.lr``.

A schedule sets ``optimizer.lr`` when it is built (step 0) and again at every ``step()``; call
``step()`` after ``optimizer.step()``, once per epoch or once per batch, as in PyTorch::

    sched = CosineAnnealingLR(opt, T_max=100)
    for epoch in range(100):
        train_one_epoch(opt)          # uses opt.lr
        sched.step()

``last_epoch`` counts the steps taken (0 right after construction). ``get_last_lr()`` is the rate
the last step set (a float: tinycnn optimizers have a single learning rate, torch's a list per group).

Like torch, StepLR, CosineAnnealingLR and LinearLR are *chainable*: each step multiplies (or shifts)
the optimizer's current rate, so two schedules on one optimizer compose the way torch's do, and the
floating-point results are torch's to the last bit (same operations in the same order). ``base_lr``
is the rate the first schedule found on the optimizer (kept as ``optimizer.initial_lr``, torch's
``param_group["initial_lr"]``). OneCycleLR is not chainable: it computes the rate from the step.

Resuming: build the optimizer and the schedule, then ``optimizer.load_state_dict(...)`` (it holds the
current ``lr``) and ``schedule.load_state_dict(...)``; loading the optimizer *before* building a
schedule would let the construction step overwrite the loaded rate (torch's warning, too). A
schedule's ``state_dict()`` holds only Python numbers, strings and lists: it fits in JSON (e.g. in
a checkpoint's ``extra``).
"""
from __future__ import annotations

import math
import numbers


def _positive_int(value, name, owner, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _finite_float(value, name, owner):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


class LRScheduler:
    """Base class: subclasses implement ``_next_lr() -> float`` for the step ``self.last_epoch``."""

    def __init__(self, optimizer):
        name = type(self).__name__
        if not isinstance(getattr(optimizer, "lr", None), numbers.Real):
            raise TypeError(f"{name}: expected an optimizer with a float attribute `lr` "
                            f"(tc.SGD, tc.Adam), got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if getattr(optimizer, "initial_lr", None) is None:
            optimizer.initial_lr = float(optimizer.lr)
        self.base_lr = float(optimizer.initial_lr)
        self.last_epoch = -1
        self._last_lr = float(optimizer.lr)
        self._initial = True       # the construction step (torch's _is_initial)
        self.step()
        self._initial = False

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr:.6g})"

    def step(self) -> None:
        """Advance one step and set ``optimizer.lr``."""
        self.last_epoch += 1
        lr = float(self._next_lr())
        self.optimizer.lr = lr
        self._last_lr = lr

    def get_last_lr(self) -> float:
        return self._last_lr

    def _next_lr(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

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
        self.__dict__.update({k: v for k, v in state.items() if k != "type"})


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps.

    Closed form: lr_t = base_lr * gamma ** (t // step_size). Computed as torch does, recursively:
    lr_t = lr_{t-1} * gamma when t > 0 and t % step_size == 0, else lr_{t-1}.
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _positive_int(step_size, "step_size", "StepLR")
        self.gamma = _finite_float(gamma, "gamma", "StepLR")
        super().__init__(optimizer)

    def _next_lr(self):
        lr, t = self.optimizer.lr, self.last_epoch
        if t == 0 or t % self.step_size != 0:
            return lr
        return lr * self.gamma


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
        self.eta_min = _finite_float(eta_min, "eta_min", "CosineAnnealingLR")
        super().__init__(optimizer)

    def _next_lr(self):
        lr, t, T, eta_min = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return lr
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta_min) + eta_min


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

    def _next_lr(self):
        lr, t = self.optimizer.lr, self.last_epoch
        s, e = self.start_factor, self.end_factor
        if t == 0:
            return lr * s
        if t > self.total_iters:
            return lr
        return lr * (1.0 + (e - s) / (self.total_iters * s + (t - 1) * (e - s)))


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
        self.max_lr = _finite_float(max_lr, "max_lr", name)
        self.initial_lr = self.max_lr / _finite_float(div_factor, "div_factor", name)
        self.min_lr = self.initial_lr / _finite_float(final_div_factor, "final_div_factor", name)
        self.three_phase = bool(three_phase)
        # phases: (end_step, start value key, end value key), keys into _values(); torch's numbers.
        up_end = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            self.phases = [[up_end, "initial", "max"],
                           [float(2 * self.pct_start * self.total_steps) - 2, "max", "initial"],
                           [self.total_steps - 1, "initial", "min"]]
        else:
            self.phases = [[up_end, "initial", "max"], [self.total_steps - 1, "max", "min"]]
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = _finite_float(base_momentum, "base_momentum", name)
        self.max_momentum = _finite_float(max_momentum, "max_momentum", name)
        if self.cycle_momentum and not (hasattr(optimizer, "momentum") or hasattr(optimizer, "betas")):
            raise ValueError(f"{name}: cycle_momentum=True needs an optimizer with `momentum` (SGD) or "
                             f"`betas` (Adam), got {type(optimizer).__name__}")
        optimizer.initial_lr = self.initial_lr          # torch overwrites param_group["initial_lr"]
        super().__init__(optimizer)

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _next_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {t} times, but total_steps = {self.total_steps}")
        lrs = {"initial": self.initial_lr, "max": self.max_lr, "min": self.min_lr}
        # momentum runs opposite to the rate: high where the rate is low
        moms = {"initial": self.max_momentum, "max": self.base_momentum, "min": self.max_momentum}
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
                if self.cycle_momentum:
                    self._set_momentum(self._anneal(moms[start_key], moms[end_key], pct))
                return self._anneal(lrs[start_key], lrs[end_key], pct)
            start_step = end_step
        raise AssertionError("unreachable: the last phase always matches")  # pragma: no cover

    def _set_momentum(self, momentum):
        if hasattr(self.optimizer, "betas"):
            self.optimizer.betas = (momentum, *self.optimizer.betas[1:])
        else:
            self.optimizer.momentum = momentum
