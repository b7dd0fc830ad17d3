"""Optimizers with exactly torch.optim's update rules. No layer holds optimizer logic.

Per parameter p with gradient g (``lerp(a, b, w) = a + w (b - a)``, computed as torch computes it:
``b - (b - a)(1 - w)`` when w >= 0.5):

SGD (torch.optim.SGD):
    g = g + weight_decay * p
    if momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g
                 g = g + momentum * buf if nesterov else buf
    p = p - lr * g

Adam (torch.optim.Adam; weight_decay is L2, added to the gradient):
    t += 1;  g = g + weight_decay * p
    m = lerp(m, g, 1 - beta1)                 (= beta1 m + (1 - beta1) g)
    v = beta2 * v + (1 - beta2) * g * g
    if amsgrad: v_max = max(v_max, v) and v_max replaces v below
    p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

AdamW (torch.optim.AdamW; decoupled weight decay, Loshchilov & Hutter): Adam's rule with the
gradient left alone and, first, p = p * (1 - lr * weight_decay).

RMSprop (torch.optim.RMSprop):
    g = g + weight_decay * p
    s = alpha * s + (1 - alpha) * g * g
    if centered: a = lerp(a, g, 1 - alpha);  d = sqrt(s - a * a) + eps
    else:        d = sqrt(s) + eps
    if momentum > 0: buf = momentum * buf + g / d;  p = p - lr * buf
    else:            p = p - lr * g / d

Every optimizer also takes torch's keyword ``maximize=False`` (True: g = -g first, ascending the
objective). Construction checks every argument the way torch does and more strictly (see README): each
hyper-parameter must be a real number (not a bool, not a string), finite, and in torch's range;
flags must be bools; ``params`` must be ``Parameter`` objects (``model.parameters()``), each once.

State (``state_dict()`` / ``load_state_dict(d)``), enough to resume a run bit for bit::

    SGD:     {"type": "SGD", "lr", "initial_lr" (float or None), "momentum", "dampening",
              "weight_decay", "nesterov", "maximize",
              "momentum_buffers": [ndarray (shape of param i) or None (not created yet), ...]}
    Adam:    {"type": "Adam", "lr", "initial_lr", "betas": [b1, b2], "eps", "weight_decay",
              "amsgrad", "maximize", "step_count": int, "exp_avg": [ndarray, ...], "exp_avg_sq": [ndarray, ...],
              "max_exp_avg_sq": [ndarray, ...] (amsgrad) or [None, ...]}
    AdamW:   as Adam, with "type": "AdamW"
    RMSprop: {"type": "RMSprop", "lr", "initial_lr", "alpha", "eps", "weight_decay", "momentum",
              "centered", "maximize", "step_count", "square_avg": [ndarray, ...],
              "momentum_buffer": [ndarray, ...] (momentum > 0) or [None, ...],
              "grad_avg": [ndarray, ...] (centered) or [None, ...]}

Scalars are plain Python numbers (JSON-able); arrays are copies in the parameter's dtype (plain
numeric ndarrays, savable in an .npz without pickle). ``load_state_dict`` checks everything first
(type, every hyper-parameter as the constructor does, number of parameters, every shape, arrays
numeric and finite, second moments >= 0) and changes nothing if a check fails. A state without
"amsgrad" or "maximize" (saved before those options existed) loads with them False.
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable

import numpy as np

from .layers.base import Parameter

# -- argument checks (shared with tinycnn.schedules) ------------------------------------------------


def check_number(owner: str, name: str, value, *, low=None, low_open=False, high=None, high_open=False) -> float:
    """``value`` as a float if it is a real, finite number in the given range; else a clear error.

    TypeError for what is not a number (a string, a bool, None, an array); ValueError for NaN, inf
    or a number out of range. The message names ``owner`` (e.g. "SGD"), the argument and the value.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number (int or float), got {value!r} "
                        f"({type(value).__name__})")
    x = float(value)
    lo = "" if low is None else ("> " if low_open else ">= ") + f"{low:g}"
    hi = "" if high is None else ("< " if high_open else "<= ") + f"{high:g}"
    wanted = " and ".join(s for s in (lo, hi) if s)
    wanted = "a finite number" + (f" {wanted}" if wanted else "")
    if not math.isfinite(x):
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    if high is not None and (x >= high if high_open else x > high):
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return x


def check_flag(owner: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_int(owner: str, name: str, value, minimum: int = 0) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_params(owner: str, params) -> list:
    """``params`` as a list of distinct Parameters, or an error saying what to pass."""
    hint = "pass model.parameters() (a list of tc.Parameter)"
    if isinstance(params, Parameter):
        raise TypeError(f"{owner}: params must be a list of Parameters, got a single Parameter; "
                        f"wrap it in a list ([p]) or {hint}")
    if isinstance(params, (np.ndarray, str, bytes, dict)) or hasattr(params, "parameters"):
        raise TypeError(f"{owner}: params must be a list of Parameters, got a {type(params).__name__}; {hint}")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{owner}: params must be a list of Parameters, got a {type(params).__name__}; "
                        f"{hint}") from None
    if not params:
        raise ValueError(f"{owner}: got an empty parameter list; {hint}")
    seen: dict[int, int] = {}
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            what = (f"a plain ndarray of shape {p.shape}" if isinstance(p, np.ndarray)
                    else f"a {type(p).__name__}")
            raise TypeError(f"{owner}: params[{i}] is {what}, not a tc.Parameter (the optimizer updates "
                            f"Parameter.data in place from Parameter.grad); {hint}")
        if not (isinstance(p.data, np.ndarray) and p.data.dtype.kind == "f"):
            raise TypeError(f"{owner}: params[{i}] holds {type(p.data).__name__} data of dtype "
                            f"{getattr(p.data, 'dtype', '?')}; parameters must be floating arrays")
        if id(p) in seen:
            raise ValueError(f"{owner}: params[{i}] is the same Parameter as params[{seen[id(p)]}]; "
                             f"each parameter may appear once (it would be updated twice per step)")
        seen[id(p)] = i
    return params


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """a <- a + w (b - a) in place, with torch's two forms (exact at w = 1 as well as at w = 0)."""
    if w < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1 - w)


class Optimizer:
    def __init__(self, params: Iterable[Parameter], lr: float, maximize: bool = False):
        name = type(self).__name__
        self.params = _check_params(name, params)
        self.lr = check_number(name, "lr (learning rate)", lr, low=0)
        # torch's maximize: ascend the objective (the gradient's sign flipped before anything else)
        self.maximize = check_flag(name, "maximize", maximize)
        # The learning rate the first schedule attached to this optimizer started from (torch keeps
        # it as param_group["initial_lr"]); None until a schedule sets it. See tinycnn.schedules.
        self.initial_lr: float | None = None

    def _grad(self, p: Parameter) -> np.ndarray:
        return -p.grad if self.maximize else p.grad

    def zero_grad(self):
        for p in self.params:
            p.grad = np.zeros_like(p.data)

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({len(self.params)} parameters, lr={self.lr:g})"

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state`` (from ``state_dict()``); checks it all before changing anything."""
        self._check_state_dict(state)
        self._apply_state_dict(state)
        self.maximize = bool(state.get("maximize", False))    # optional: absent in older states
        initial_lr = state.get("initial_lr")              # optional: absent in hand-made states
        self.initial_lr = None if initial_lr is None else float(initial_lr)

    def _check_state_dict(self, state: dict) -> None:
        """Raise a ValueError/TypeError naming what does not fit; never changes the optimizer."""
        name = type(self).__name__
        owner = f"{name}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{owner}: expected a dict, got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(f"{owner}: the state belongs to a {state.get('type')!r} optimizer, not {name}")
        missing = [k for k in self._state_keys() if k not in state]
        if missing:
            raise ValueError(f"{owner}: missing keys {missing}")
        check_number(owner, "lr (learning rate)", state["lr"], low=0)
        check_flag(owner, "maximize", state.get("maximize", False))
        if state.get("initial_lr") is not None:
            check_number(owner, "initial_lr", state["initial_lr"], low=0)
        self._check_hyperparameters(owner, state)
        for key in self._array_list_keys(state):
            if key not in state:
                raise ValueError(f"{owner}: missing key '{key}'")
            arrays = state[key]
            if not isinstance(arrays, (list, tuple)):
                raise TypeError(f"{owner}: '{key}' must be a list of arrays, got {type(arrays).__name__}")
            if len(arrays) != len(self.params):
                raise ValueError(f"{owner}: '{key}' holds {len(arrays)} arrays but the "
                                 f"optimizer has {len(self.params)} parameters")
            bad = [f"{key}[{i}]: parameter {p.data.shape} vs given {np.shape(a)}"
                   for i, (p, a) in enumerate(zip(self.params, arrays))
                   if a is not None and np.shape(a) != p.data.shape]
            if bad:
                raise ValueError(f"{owner}: shape mismatch: " + "; ".join(bad))
            for i, a in enumerate(arrays):
                if a is None:
                    if key in self._required_array_keys(state):
                        raise ValueError(f"{owner}: '{key}[{i}]' is None; {name} keeps an array per parameter here")
                    continue
                if not (isinstance(a, np.ndarray) and a.dtype.kind in "fiu"):
                    raise TypeError(f"{owner}: '{key}[{i}]' must be a numeric ndarray, got "
                                    f"{type(a).__name__} {getattr(a, 'dtype', '')}")
                if not np.isfinite(a).all():
                    raise ValueError(f"{owner}: '{key}[{i}]' holds non-finite values (NaN or inf)")
                if key in self._nonnegative_array_keys() and (a < 0).any():
                    raise ValueError(f"{owner}: '{key}[{i}]' holds negative values; second moments are >= 0")

    def _copy_like_params(self, arrays) -> list:
        """Copies of ``arrays`` in each parameter's dtype, C-contiguous; None stays None."""
        return [None if a is None else np.array(a, dtype=p.data.dtype, copy=True, order="C")
                for p, a in zip(self.params, arrays)]

    def _check_hyperparameters(self, owner: str, values: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_keys(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _array_list_keys(self, state: dict) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _required_array_keys(self, state: dict) -> tuple:
        """Array lists in which None (not created yet) is not allowed."""
        return ()

    def _nonnegative_array_keys(self) -> tuple:
        return ()

    def _apply_state_dict(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, torch.optim.SGD's rule.

    lr >= 0, momentum >= 0, weight_decay >= 0, dampening finite; nesterov needs momentum > 0 and
    dampening = 0 (torch's rules).
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, maximize)
        hp = self._check_hyperparameters("SGD", dict(momentum=momentum, dampening=dampening,
                                                     weight_decay=weight_decay, nesterov=nesterov))
        self.momentum = hp["momentum"]
        self.dampening = hp["dampening"]
        self.weight_decay = hp["weight_decay"]
        self.nesterov = hp["nesterov"]
        self.momentum_buffers: list[np.ndarray | None] = [None] * len(self.params)

    @staticmethod
    def _check_hyperparameters(owner, values):
        momentum = check_number(owner, "momentum", values["momentum"], low=0)
        dampening = check_number(owner, "dampening", values["dampening"])
        weight_decay = check_number(owner, "weight_decay", values["weight_decay"], low=0)
        nesterov = check_flag(owner, "nesterov", values["nesterov"])
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"{owner}: nesterov momentum requires momentum > 0 and dampening = 0, "
                             f"got momentum={values['momentum']}, dampening={values['dampening']}")
        return dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)

    def step(self):
        for i, p in enumerate(self.params):
            g = self._grad(p)
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
                "weight_decay": self.weight_decay, "nesterov": self.nesterov, "maximize": self.maximize,
                "momentum_buffers": [None if b is None else b.copy() for b in self.momentum_buffers]}

    def _state_keys(self):
        return ("lr", "momentum", "dampening", "weight_decay", "nesterov", "momentum_buffers")

    def _array_list_keys(self, state):
        return ("momentum_buffers",)

    def _apply_state_dict(self, state):
        self.lr = float(state["lr"])
        self.momentum = float(state["momentum"])
        self.dampening = float(state["dampening"])
        self.weight_decay = float(state["weight_decay"])
        self.nesterov = bool(state["nesterov"])
        self.momentum_buffers = self._copy_like_params(state["momentum_buffers"])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay and optional AMSGrad, torch.optim.Adam's rule.

    lr >= 0, betas a pair in [0, 1), eps >= 0, weight_decay >= 0 (torch's ranges).
    """

    _decoupled = False          # AdamW: weight decay applied to the weights, not the gradient

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, maximize)
        hp = self._check_hyperparameters(type(self).__name__, dict(betas=betas, eps=eps, weight_decay=weight_decay,
                                                                   amsgrad=amsgrad))
        self.betas = hp["betas"]
        self.eps = hp["eps"]
        self.weight_decay = hp["weight_decay"]
        self.amsgrad = hp["amsgrad"]
        self.step_count = 0
        self.exp_avg = [np.zeros_like(p.data) for p in self.params]
        self.exp_avg_sq = [np.zeros_like(p.data) for p in self.params]
        self.max_exp_avg_sq: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self.amsgrad else [None] * len(self.params))

    @staticmethod
    def _check_hyperparameters(owner, values):
        betas = values["betas"]
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or any(isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Real) for b in betas)
                or not all(math.isfinite(b) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2) of finite numbers in [0, 1), "
                             f"got {betas!r}")
        eps = check_number(owner, "eps", values["eps"], low=0)
        weight_decay = check_number(owner, "weight_decay", values["weight_decay"], low=0)
        amsgrad = check_flag(owner, "amsgrad", values.get("amsgrad", False))
        if "step_count" in values:
            check_int(owner, "step_count", values["step_count"], minimum=0)
        return dict(betas=(float(betas[0]), float(betas[1])), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def step(self):
        self.step_count += 1
        b1, b2 = self.betas
        t = self.step_count
        step_size = self.lr / (1 - b1 ** t)
        bc2_sqrt = math.sqrt(1 - b2 ** t)         # a Python float: keeps float32 math in float32
        for p, m, v, v_max in zip(self.params, self.exp_avg, self.exp_avg_sq, self.max_exp_avg_sq):
            g = self._grad(p)
            if self.weight_decay != 0:
                if self._decoupled:
                    p.data *= 1 - self.lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p.data
            _lerp_(m, g, 1 - b1)
            v *= b2
            v += (1 - b2) * g * g
            if self.amsgrad:
                np.maximum(v_max, v, out=v_max)
                denom = np.sqrt(v_max) / bc2_sqrt + self.eps
            else:
                denom = np.sqrt(v) / bc2_sqrt + self.eps
            p.data -= step_size * (m / denom)

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "lr": self.lr, "initial_lr": self.initial_lr,
                "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad, "maximize": self.maximize,
                "step_count": self.step_count,
                "exp_avg": [m.copy() for m in self.exp_avg],
                "exp_avg_sq": [v.copy() for v in self.exp_avg_sq],
                "max_exp_avg_sq": [None if v is None else v.copy() for v in self.max_exp_avg_sq]}

    def _state_keys(self):
        return ("lr", "betas", "eps", "weight_decay", "step_count", "exp_avg", "exp_avg_sq")

    def _array_list_keys(self, state):
        if state.get("amsgrad", False):
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        return ("exp_avg", "exp_avg_sq")

    def _required_array_keys(self, state):
        return self._array_list_keys(state)

    def _nonnegative_array_keys(self):
        return ("exp_avg_sq", "max_exp_avg_sq")

    def _apply_state_dict(self, state):
        self.lr = float(state["lr"])
        b1, b2 = state["betas"]
        self.betas = (float(b1), float(b2))
        self.eps = float(state["eps"])
        self.weight_decay = float(state["weight_decay"])
        self.amsgrad = bool(state.get("amsgrad", False))
        self.step_count = int(state["step_count"])
        self.exp_avg = self._copy_like_params(state["exp_avg"])
        self.exp_avg_sq = self._copy_like_params(state["exp_avg_sq"])
        self.max_exp_avg_sq = (self._copy_like_params(state["max_exp_avg_sq"]) if self.amsgrad
                               else [None] * len(self.params))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), torch.optim.AdamW's rule.

    Each step first shrinks the weights, p = p * (1 - lr * weight_decay), then takes Adam's step on
    the gradient alone. Defaults are torch's (weight_decay=1e-2).
    """

    _decoupled = True

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered (Graves) and with momentum, torch.optim.RMSprop's rule.

    lr >= 0, eps >= 0, weight_decay >= 0, momentum >= 0 (torch's ranges) and 0 <= alpha <= 1 (torch
    asks only alpha >= 0; alpha > 1 makes the squared average negative, its square root NaN).
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr, maximize)
        hp = self._check_hyperparameters("RMSprop", dict(alpha=alpha, eps=eps, weight_decay=weight_decay,
                                                         momentum=momentum, centered=centered))
        self.alpha = hp["alpha"]
        self.eps = hp["eps"]
        self.weight_decay = hp["weight_decay"]
        self.momentum = hp["momentum"]
        self.centered = hp["centered"]
        self.step_count = 0
        n = len(self.params)
        self.square_avg = [np.zeros_like(p.data) for p in self.params]
        self.momentum_buffer: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self.momentum > 0 else [None] * n)
        self.grad_avg: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self.centered else [None] * n)

    @staticmethod
    def _check_hyperparameters(owner, values):
        out = dict(alpha=check_number(owner, "alpha", values["alpha"], low=0, high=1),
                   eps=check_number(owner, "eps", values["eps"], low=0),
                   weight_decay=check_number(owner, "weight_decay", values["weight_decay"], low=0),
                   momentum=check_number(owner, "momentum", values["momentum"], low=0),
                   centered=check_flag(owner, "centered", values["centered"]))
        if "step_count" in values:
            check_int(owner, "step_count", values["step_count"], minimum=0)
        return out

    def step(self):
        self.step_count += 1
        alpha = self.alpha
        for p, s, buf, a in zip(self.params, self.square_avg, self.momentum_buffer, self.grad_avg):
            g = self._grad(p)
            if self.weight_decay != 0:
                g = g + self.weight_decay * p.data
            s *= alpha
            s += (1 - alpha) * g * g
            if self.centered:
                _lerp_(a, g, 1 - alpha)
                d = np.sqrt(s - a * a)
            else:
                d = np.sqrt(s)
            d += self.eps
            if self.momentum > 0:
                buf *= self.momentum
                buf += g / d
                p.data -= self.lr * buf
            else:
                p.data -= self.lr * (g / d)

    def state_dict(self) -> dict:
        def copies(arrays):
            return [None if a is None else a.copy() for a in arrays]
        return {"type": "RMSprop", "lr": self.lr, "initial_lr": self.initial_lr, "alpha": self.alpha,
                "eps": self.eps, "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered, "maximize": self.maximize, "step_count": self.step_count,
                "square_avg": copies(self.square_avg), "momentum_buffer": copies(self.momentum_buffer),
                "grad_avg": copies(self.grad_avg)}

    def _state_keys(self):
        return ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "step_count", "square_avg",
                "momentum_buffer", "grad_avg")

    def _array_list_keys(self, state):
        return ("square_avg", "momentum_buffer", "grad_avg")

    def _required_array_keys(self, state):
        keys = ["square_avg"]
        if isinstance(state.get("momentum"), numbers.Real) and state["momentum"] > 0:
            keys.append("momentum_buffer")
        if state.get("centered") is True:
            keys.append("grad_avg")
        return tuple(keys)

    def _nonnegative_array_keys(self):
        return ("square_avg",)

    def _apply_state_dict(self, state):
        self.lr = float(state["lr"])
        self.alpha = float(state["alpha"])
        self.eps = float(state["eps"])
        self.weight_decay = float(state["weight_decay"])
        self.momentum = float(state["momentum"])
        self.centered = bool(state["centered"])
        self.step_count = int(state["step_count"])
        n = len(self.params)
        self.square_avg = self._copy_like_params(state["square_avg"])
        self.momentum_buffer = (self._copy_like_params(state["momentum_buffer"]) if self.momentum > 0
                                else [None] * n)
        self.grad_avg = self._copy_like_params(state["grad_avg"]) if self.centered else [None] * n
