"""Optimizers with exactly torch.optim's update rules. No layer holds optimizer logic.

SGD (torch.optim.SGD), per parameter p with gradient g:
    g = g + weight_decay * p
    if momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g
                 g = g + momentum * buf if nesterov else buf
    p = p - lr * g

Adam (torch.optim.Adam, amsgrad=False; weight_decay is L2, added to the gradient):
    t += 1;  g = g + weight_decay * p
    m = m + (1 - beta1) * (g - m)            (torch's lerp form of beta1*m + (1-beta1)*g)
    v = beta2 * v + (1 - beta2) * g * g
    p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

State (``state_dict()`` / ``load_state_dict(d)``), enough to resume a run bit for bit::

    SGD:  {"type": "SGD", "lr", "initial_lr" (float or None), "momentum", "dampening",
           "weight_decay", "nesterov",
           "momentum_buffers": [ndarray (shape of param i) or None (not created yet), ...]}
    Adam: {"type": "Adam", "lr", "initial_lr", "betas": [b1, b2], "eps", "weight_decay",
           "step_count": int, "exp_avg": [ndarray, ...], "exp_avg_sq": [ndarray, ...]}

Scalars are plain Python numbers (JSON-able); arrays are copies in the parameter's dtype (plain
numeric ndarrays, savable in an .npz without pickle). ``load_state_dict`` checks everything first
(type, number of parameters, every shape) and changes nothing if a check fails.
"""
from __future__ import annotations

import math

import numpy as np


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be >= 0, got {lr}")
        self.lr = float(lr)
        # The learning rate the first schedule attached to this optimizer started from (torch keeps
        # it as param_group["initial_lr"]); None until a schedule sets it. See tinycnn.schedules.
        self.initial_lr: float | None = None

    def zero_grad(self):
        for p in self.params:
            p.grad = np.zeros_like(p.data)

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state`` (from ``state_dict()``); checks it all before changing anything."""
        self._check_state_dict(state)
        self._apply_state_dict(state)
        initial_lr = state.get("initial_lr")              # optional: absent in hand-made states
        self.initial_lr = None if initial_lr is None else float(initial_lr)

    def _check_state_dict(self, state: dict) -> None:
        """Raise a ValueError naming what does not fit; never changes the optimizer."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state belongs to a {state.get('type')!r} "
                             f"optimizer, not {name}")
        missing = [k for k in self._state_keys() if k not in state]
        if missing:
            raise ValueError(f"{name}.load_state_dict: missing keys {missing}")
        for key in self._array_list_keys():
            arrays = state[key]
            if len(arrays) != len(self.params):
                raise ValueError(f"{name}.load_state_dict: '{key}' holds {len(arrays)} arrays but the "
                                 f"optimizer has {len(self.params)} parameters")
            bad = [f"{key}[{i}]: parameter {p.data.shape} vs given {np.shape(a)}"
                   for i, (p, a) in enumerate(zip(self.params, arrays))
                   if a is not None and np.shape(a) != p.data.shape]
            if bad:
                raise ValueError(f"{name}.load_state_dict: shape mismatch: " + "; ".join(bad))

    def _copy_like_params(self, arrays) -> list:
        """Copies of ``arrays`` in each parameter's dtype, C-contiguous; None stays None."""
        return [None if a is None else np.array(a, dtype=p.data.dtype, copy=True, order="C")
                for p, a in zip(self.params, arrays)]

    def _state_keys(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _array_list_keys(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply_state_dict(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.momentum_buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data
            if self.momentum != 0:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                self.momentum_buffers[i] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g

    def state_dict(self) -> dict:
        return {"type": "SGD", "lr": self.lr, "initial_lr": self.initial_lr, "momentum": self.momentum,
                "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov,
                "momentum_buffers": [None if b is None else b.copy() for b in self.momentum_buffers]}

    def _state_keys(self):
        return ("lr", "momentum", "dampening", "weight_decay", "nesterov", "momentum_buffers")

    def _array_list_keys(self):
        return ("momentum_buffers",)

    def _apply_state_dict(self, state):
        self.lr = float(state["lr"])
        self.momentum = float(state["momentum"])
        self.dampening = float(state["dampening"])
        self.weight_decay = float(state["weight_decay"])
        self.nesterov = bool(state["nesterov"])
        self.momentum_buffers = self._copy_like_params(state["momentum_buffers"])


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"Adam: eps must be >= 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"Adam: weight_decay must be >= 0, got {weight_decay}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.step_count = 0
        self.exp_avg = [np.zeros_like(p.data) for p in self.params]
        self.exp_avg_sq = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        self.step_count += 1
        b1, b2 = self.betas
        t = self.step_count
        step_size = self.lr / (1 - b1 ** t)
        bc2_sqrt = math.sqrt(1 - b2 ** t)         # a Python float: keeps float32 math in float32
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data
            m += (1 - b1) * (g - m)
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / bc2_sqrt + self.eps
            p.data -= step_size * (m / denom)

    def state_dict(self) -> dict:
        return {"type": "Adam", "lr": self.lr, "initial_lr": self.initial_lr, "betas": list(self.betas),
                "eps": self.eps,
                "weight_decay": self.weight_decay, "step_count": self.step_count,
                "exp_avg": [m.copy() for m in self.exp_avg],
                "exp_avg_sq": [v.copy() for v in self.exp_avg_sq]}

    def _state_keys(self):
        return ("lr", "betas", "eps", "weight_decay", "step_count", "exp_avg", "exp_avg_sq")

    def _array_list_keys(self):
        return ("exp_avg", "exp_avg_sq")

    def _check_state_dict(self, state):
        super()._check_state_dict(state)
        for key in self._array_list_keys():
            if any(a is None for a in state[key]):
                raise ValueError(f"Adam.load_state_dict: '{key}' holds None; Adam keeps an array per parameter")

    def _apply_state_dict(self, state):
        self.lr = float(state["lr"])
        b1, b2 = state["betas"]
        self.betas = (float(b1), float(b2))
        self.eps = float(state["eps"])
        self.weight_decay = float(state["weight_decay"])
        self.step_count = int(state["step_count"])
        self.exp_avg = self._copy_like_params(state["exp_avg"])
        self.exp_avg_sq = self._copy_like_params(state["exp_avg_sq"])
