"""Optimizers with exactly torch.optim's update rules. No layer holds optimizer logic.

Per parameter p with gradient g (``lerp(a, b, w) = a + w (b - a)``, computed as torch computes it:
``b - (b - a)(1 - w)`` when w >= 0.5):

SGD (torch.optim.SGD; ``decoupled_weight_decay=True`` is tinycnn's, SGDW of Loshchilov & Hutter):
    if decoupled_weight_decay: p = p * (1 - lr * weight_decay)      (first, as AdamW does)
    else:                      g = g + weight_decay * p             (L2, torch's SGD)
    if momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g
                 g = g + momentum * buf if nesterov else buf
    p = p - lr * g

Adam (torch.optim.Adam; weight_decay is L2, added to the gradient, unless decoupled_weight_decay):
    t += 1;  g = g + weight_decay * p
    m = lerp(m, g, 1 - beta1)                 (= beta1 m + (1 - beta1) g)
    v = beta2 * v + (1 - beta2) * g * g
    if amsgrad: v_max = max(v_max, v) and v_max replaces v below
    p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

AdamW (torch.optim.AdamW; decoupled weight decay, Loshchilov & Hutter): Adam's rule with the
gradient left alone and, first, p = p * (1 - lr * weight_decay). ``Adam(...,
decoupled_weight_decay=True)`` is the same rule (torch's option of that name).

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

Frozen parameters: a parameter whose ``requires_grad`` is False is skipped by ``step`` entirely (no
update, no weight decay, its momentum / moment arrays untouched), as torch skips a parameter without
a gradient. It stays in the optimizer (and in its state). Adam's and RMSprop's ``step_count`` count
the optimizer's steps (torch counts per parameter: the two differ only for a parameter unfrozen
part of the way through).

Parameter groups (torch's): ``params`` is either an iterable of Parameters (one group) or a list of
dicts, each ``{"params": [Parameter, ...], <hyper-parameter>: value, ...}``; a group's own values
override the constructor's (``defaults``), e.g.::

    SGD([{"params": weights, "weight_decay": 5e-4},
         {"params": biases, "lr": 0.1, "weight_decay": 0.0}], lr=0.02, momentum=0.9, nesterov=True)

``optimizer.param_groups`` is the list of group dicts (each with "params", every hyper-parameter,
"lr", "maximize" and "initial_lr"); ``optimizer.defaults`` the constructor's values;
``optimizer.params`` all parameters, group after group (the order of the state's arrays). A
parameter may be in one group only; a group may be empty, not all of them. The schedules of
``tinycnn.schedules`` scale every group's rate from its own ``initial_lr``, as torch's do.

The attributes ``optimizer.lr``, ``optimizer.initial_lr`` and each hyper-parameter
(``optimizer.momentum``, ``.betas``, ...) are the *first* group's value when read (what ``fit``
logs as "lr"); setting one is allowed with a single group only (it is then that group's value,
checked as the constructor checks it): with several groups, set ``param_groups[i][name]``.

State (``state_dict()`` / ``load_state_dict(d)``), enough to resume a run bit for bit::

    SGD:     {"type": "SGD", "lr", "initial_lr" (float or None), "momentum", "dampening", "weight_decay",
              "nesterov", "decoupled_weight_decay", "maximize"     (the first group's values)
              "param_groups": [{"params": [i, ...], "lr", "initial_lr", "momentum", ...}, ...],
              "momentum_buffers": [ndarray (shape of param i) or None (not created yet), ...]}
    Adam:    {"type": "Adam", "lr", "betas": [b1, b2], "eps", "weight_decay", "amsgrad",
              "decoupled_weight_decay", "maximize", "param_groups": [...], "step_count": int,
              "exp_avg": [ndarray, ...], "exp_avg_sq": [ndarray, ...],
              "max_exp_avg_sq": [ndarray, ...] (amsgrad in some group) or [None, ...]}
    AdamW:   as Adam, with "type": "AdamW"
    RMSprop: {"type": "RMSprop", "lr", "alpha", "eps", "weight_decay", "momentum", "centered",
              "maximize", "param_groups": [...], "step_count", "square_avg": [ndarray, ...],
              "momentum_buffer": [ndarray, ...] (momentum > 0 in some group) or [None, ...],
              "grad_avg": [ndarray, ...] (centered in some group) or [None, ...]}

A group's "params" are indices into ``optimizer.params`` (torch's convention); the i-th array of
each list belongs to ``optimizer.params[i]``. The top-level hyper-parameters repeat the first
group's (what a one-group state always held; they are checked, and "param_groups" is what loads).
``defaults`` are not part of the state (torch's are not either): they stay the constructor's.
Scalars are plain Python numbers (JSON-able); arrays
are copies in the parameter's dtype (plain numeric ndarrays, savable in an .npz without pickle).
``load_state_dict`` checks everything first (type, every hyper-parameter at the top level and of
every group as the constructor does, the groups' structure -- as many groups as this optimizer,
each with the same parameters --, number of parameters, every shape, arrays numeric and finite,
second moments >= 0) and changes nothing if a check fails. A state without "param_groups" (saved
before groups existed) loads into a one-group optimizer from its top-level values and
"initial_lr"; one without "amsgrad", "maximize" or "decoupled_weight_decay" loads with the
class's default for it. Which parameters are frozen is the model's business, not the state's.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

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


_HINT = "pass model.parameters() (a list of tc.Parameter)"


def _check_param_list(owner: str, params, where: str = "params") -> list:
    """``params`` as a list of floating Parameters, or an error saying what to pass."""
    if isinstance(params, Parameter):
        raise TypeError(f"{owner}: {where} must be a list of Parameters, got a single Parameter; "
                        f"wrap it in a list ([p]) or {_HINT}")
    if isinstance(params, (np.ndarray, str, bytes, dict)) or hasattr(params, "parameters"):
        raise TypeError(f"{owner}: {where} must be a list of Parameters, got a {type(params).__name__}; {_HINT}"
                        + (" (or a list of parameter-group dicts)" if isinstance(params, dict) else ""))
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{owner}: {where} must be a list of Parameters, got a {type(params).__name__}; "
                        f"{_HINT}") from None
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            what = (f"a plain ndarray of shape {p.shape}" if isinstance(p, np.ndarray)
                    else f"a {type(p).__name__}")
            raise TypeError(f"{owner}: {where}[{i}] is {what}, not a tc.Parameter (the optimizer updates "
                            f"Parameter.data in place from Parameter.grad); {_HINT}")
        if not (isinstance(p.data, np.ndarray) and p.data.dtype.kind == "f"):
            raise TypeError(f"{owner}: {where}[{i}] holds {type(p.data).__name__} data of dtype "
                            f"{getattr(p.data, 'dtype', '?')}; parameters must be floating arrays")
    return params


def _split_groups(owner: str, params, hyper: tuple) -> tuple[list, bool]:
    """``params`` -> ([(overrides dict, [Parameter, ...]), ...], whether dicts were given).

    Every parameter once over all groups; at least one parameter in all."""
    if not isinstance(params, (np.ndarray, str, bytes, dict, Parameter)) and not hasattr(params, "parameters"):
        try:
            params = list(params)
        except TypeError:
            pass
    is_groups = isinstance(params, list) and bool(params) and all(isinstance(g, dict) for g in params)
    if isinstance(params, list) and any(isinstance(g, dict) for g in params) and not is_groups:
        raise TypeError(f"{owner}: params mixes parameter-group dicts and other items; pass either a list of "
                        f"Parameters or a list of dicts {{'params': [...], ...}}")
    if not is_groups:
        groups = [({}, _check_param_list(owner, params))]
    else:
        groups = []
        for gi, g in enumerate(params):
            where = f"param_groups[{gi}]"
            if "params" not in g:
                raise ValueError(f"{owner}: {where} has no 'params' key; a group is a dict "
                                 f"{{'params': [Parameter, ...], 'lr': ..., ...}}")
            unknown = sorted(str(k) for k in g if k != "params" and k not in hyper)
            if unknown:
                raise ValueError(f"{owner}: {where} has unknown keys {unknown}; a group may set "
                                 f"{', '.join(hyper)}")
            ps = g["params"]
            ps = [ps] if isinstance(ps, Parameter) else ps          # torch accepts one tensor
            groups.append(({k: v for k, v in g.items() if k != "params"},
                           _check_param_list(owner, ps, f"{where}['params']")))
    seen: dict[int, str] = {}
    for gi, (_, ps) in enumerate(groups):
        for i, p in enumerate(ps):
            here = f"params[{i}]" if not is_groups else f"param_groups[{gi}]['params'][{i}]"
            if id(p) in seen:
                raise ValueError(f"{owner}: {here} is the same Parameter as {seen[id(p)]}; each parameter may "
                                 f"appear once (it would be updated twice per step)")
            seen[id(p)] = here
    if not seen:
        raise ValueError(f"{owner}: got an empty parameter list; {_HINT}")
    return groups, is_groups


def _group_property(name: str, doc: str):
    """An attribute that reads the first group's ``name`` and sets it when there is one group."""
    def get(self):
        return self.param_groups[0][name]

    def set_(self, value):
        cls = type(self).__name__
        if len(self.param_groups) != 1:
            raise ValueError(f"{cls}.{name}: this optimizer has {len(self.param_groups)} parameter groups, each "
                             f"with its own {name}; set optimizer.param_groups[i][{name!r}] for the group you "
                             f"mean (a tinycnn.schedules schedule scales every group's lr)")
        group = self.param_groups[0]
        if name == "initial_lr":
            group[name] = None if value is None else check_number(cls, "initial_lr", value, low=0)
            return
        checked = self._check_group(cls, {**{k: v for k, v in group.items() if k not in ("params", "initial_lr")},
                                          name: value})
        group[name] = checked[name]

    return property(get, set_, doc=doc)


def _lerp_(a: np.ndarray, b: np.ndarray, w: float) -> None:
    """a <- a + w (b - a) in place, with torch's two forms (exact at w = 1 as well as at w = 0)."""
    if w < 0.5:
        a += w * (b - a)
    else:
        a[...] = b - (b - a) * (1 - w)


def _json_value(v):
    return list(v) if isinstance(v, tuple) else v


class Optimizer:
    """Base class: parameter groups, frozen parameters, state checks. Subclasses define
    ``_hyper`` (the group keys besides "lr" and "maximize"), ``_check_hyperparameters``, ``step``
    and the state's array lists."""

    _hyper: tuple = ()

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], defaults: dict):
        name = type(self).__name__
        self.defaults = self._check_group(name, defaults)
        keys = ("lr", *self._hyper, "maximize")
        groups, is_groups = _split_groups(name, params, keys)
        self.param_groups: list[dict] = []
        for gi, (overrides, ps) in enumerate(groups):
            owner = f"{name}: param_groups[{gi}]" if is_groups else name
            values = self._check_group(owner, {**self.defaults, **overrides})
            # initial_lr: the rate the first schedule attached to this optimizer started from (torch's
            # param_group["initial_lr"]); None until a schedule sets it. See tinycnn.schedules.
            self.param_groups.append({"params": ps, **values, "initial_lr": None})
        self.params: list[Parameter] = [p for g in self.param_groups for p in g["params"]]

    lr = _group_property("lr", "The first group's learning rate; settable with one group only.")
    initial_lr = _group_property("initial_lr", "The first group's initial_lr (set by the first schedule).")
    maximize = _group_property("maximize", "The first group's maximize flag.")

    def _check_group(self, owner: str, values: dict) -> dict:
        """Every hyper-parameter of one group (or of the defaults), checked; a dict in key order."""
        out = {"lr": check_number(owner, "lr (learning rate)", values["lr"], low=0)}
        out.update(self._check_hyperparameters(owner, values))
        # torch's maximize: ascend the objective (the gradient's sign flipped before anything else)
        out["maximize"] = check_flag(owner, "maximize", values.get("maximize", False))
        return out

    def _trainable(self):
        """(i, p, group) for every parameter with ``requires_grad``; i is its index in ``self.params``."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    yield i, p, group
                i += 1

    @staticmethod
    def _grad(p: Parameter, group: dict) -> np.ndarray:
        return -p.grad if group["maximize"] else p.grad

    def zero_grad(self):
        for p in self.params:
            p.grad = np.zeros_like(p.data)

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        groups = "" if len(self.param_groups) == 1 else f" in {len(self.param_groups)} groups"
        frozen = sum(not p.requires_grad for p in self.params)
        frozen_text = f", {frozen} frozen" if frozen else ""
        return f"{type(self).__name__}({len(self.params)} parameters{groups}{frozen_text}, lr={self.lr:g})"

    # -- state ---------------------------------------------------------------------------------

    def _groups_state(self) -> list[dict]:
        out, start = [], 0
        for g in self.param_groups:
            n = len(g["params"])
            out.append({"params": list(range(start, start + n)),
                        **{k: _json_value(v) for k, v in g.items() if k != "params"}})
            start += n
        return out

    def _base_state(self) -> dict:
        first = self.param_groups[0]
        return {"type": type(self).__name__, **{k: _json_value(v) for k, v in first.items() if k != "params"},
                "param_groups": self._groups_state()}

    def state_dict(self) -> dict:
        state = self._base_state()
        state.update(self._arrays_state())
        return state

    def _arrays_state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state`` (from ``state_dict()``); checks it all before changing anything."""
        groups = self._check_state_dict(state)
        for group, values in zip(self.param_groups, groups):
            params = group["params"]
            group.clear()
            group.update({"params": params, **values})
        self._apply_state_dict(state, groups)

    def _state_groups(self, owner: str, state: dict, top: dict) -> list[dict]:
        """The groups' checked values (without "params") from ``state``; ``top``: its checked top level."""
        n = len(self.param_groups)
        if "param_groups" not in state:                # saved before groups existed: the top level
            if n != 1:
                raise ValueError(f"{owner}: the state has no 'param_groups' (one group); this optimizer has {n}")
            initial_lr = state.get("initial_lr")
            if initial_lr is not None:
                initial_lr = check_number(owner, "initial_lr", initial_lr, low=0)
            return [{**top, "initial_lr": initial_lr}]
        given = state["param_groups"]
        if not isinstance(given, (list, tuple)) or not all(isinstance(g, dict) for g in given):
            raise TypeError(f"{owner}: 'param_groups' must be a list of dicts, got {type(given).__name__}")
        if len(given) != n:
            raise ValueError(f"{owner}: the state has {len(given)} parameter groups, this optimizer {n}")
        keys = {"params", "lr", *self._hyper, "maximize", "initial_lr"}
        out, start = [], 0
        for gi, (g, mine) in enumerate(zip(given, self.param_groups)):
            where = f"{owner}: param_groups[{gi}]"
            unknown = sorted(str(k) for k in g if k not in keys)
            if unknown:
                raise ValueError(f"{where}: unexpected keys {unknown}")
            size = len(mine["params"])
            want = list(range(start, start + size))
            start += size
            idx = g.get("params")
            if not (isinstance(idx, (list, tuple)) and len(idx) == size
                    and all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in idx)
                    and list(idx) == want):
                shown = f"{len(idx)} parameters" if isinstance(idx, (list, tuple)) else repr(idx)[:60]
                raise ValueError(f"{where}: 'params' must be the indices {want[:3]}{'...' if size > 3 else ''} "
                                 f"({size} parameters, this optimizer's group {gi}), got {shown}")
            missing = [k for k in ("lr", *self._required_hyper()) if k not in g]
            if missing:
                raise ValueError(f"{where}: missing keys {missing}")
            values = self._check_group(where, {**{k: v for k, v in self._class_defaults().items() if k not in g},
                                               **g})
            initial_lr = g.get("initial_lr")
            values["initial_lr"] = None if initial_lr is None else check_number(where, "initial_lr", initial_lr,
                                                                                low=0)
            out.append(values)
        return out

    def _required_hyper(self) -> tuple:
        """Group keys a saved group must hold (the optional ones default to the class's default)."""
        return tuple(k for k in self._hyper if k not in self._optional_keys())

    def _optional_keys(self) -> tuple:
        return ()

    def _check_state_dict(self, state: dict) -> list[dict]:
        """Raise a ValueError/TypeError naming what does not fit; never changes the optimizer.
        Returns every group's checked values."""
        name = type(self).__name__
        owner = f"{name}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{owner}: expected a dict, got {type(state).__name__}")
        if state.get("type") != name:
            raise ValueError(f"{owner}: the state belongs to a {state.get('type')!r} optimizer, not {name}")
        missing = [k for k in self._state_keys() if k not in state]
        if missing:
            raise ValueError(f"{owner}: missing keys {missing}")
        top = self._check_group(owner, {**self._class_defaults(), **state})
        if state.get("initial_lr") is not None:
            check_number(owner, "initial_lr", state["initial_lr"], low=0)
        groups = self._state_groups(owner, state, top)
        for key in self._array_list_keys(groups):
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
                    if key in self._required_array_keys(groups):
                        raise ValueError(f"{owner}: '{key}[{i}]' is None; {name} keeps an array per parameter here")
                    continue
                if not (isinstance(a, np.ndarray) and a.dtype.kind in "fiu"):
                    raise TypeError(f"{owner}: '{key}[{i}]' must be a numeric ndarray, got "
                                    f"{type(a).__name__} {getattr(a, 'dtype', '')}")
                if not np.isfinite(a).all():
                    raise ValueError(f"{owner}: '{key}[{i}]' holds non-finite values (NaN or inf)")
                if key in self._nonnegative_array_keys() and (a < 0).any():
                    raise ValueError(f"{owner}: '{key}[{i}]' holds negative values; second moments are >= 0")
        if "step_count" in self._state_keys():
            check_int(owner, "step_count", state["step_count"], minimum=0)
        return groups

    def _class_defaults(self) -> dict:
        """Values a state saved before an option existed loads with."""
        return {"maximize": False}

    def _copy_like_params(self, arrays) -> list:
        """Copies of ``arrays`` in each parameter's dtype, C-contiguous; None stays None."""
        return [None if a is None else np.array(a, dtype=p.data.dtype, copy=True, order="C")
                for p, a in zip(self.params, arrays)]

    def _check_hyperparameters(self, owner: str, values: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_keys(self) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _array_list_keys(self, groups: list[dict]) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _required_array_keys(self, groups: list[dict]) -> tuple:
        """Array lists in which None (not created yet) is not allowed."""
        return ()

    def _nonnegative_array_keys(self) -> tuple:
        return ()

    def _apply_state_dict(self, state: dict, groups: list[dict]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, torch.optim.SGD's rule.

    lr >= 0, momentum >= 0, weight_decay >= 0, dampening finite; nesterov needs momentum > 0 and
    dampening = 0 (torch's rules). ``decoupled_weight_decay=True`` (not in torch's SGD; the name of
    torch's Adam option): the weights shrink first, p = p * (1 - lr * weight_decay), and the gradient
    and momentum see no weight decay (SGDW, Loshchilov & Hutter) -- AdamW's rule for SGD.
    """

    _hyper = ("momentum", "dampening", "weight_decay", "nesterov", "decoupled_weight_decay")
    momentum = _group_property("momentum", "The first group's momentum.")
    dampening = _group_property("dampening", "The first group's dampening.")
    weight_decay = _group_property("weight_decay", "The first group's weight_decay.")
    nesterov = _group_property("nesterov", "The first group's nesterov flag.")
    decoupled_weight_decay = _group_property("decoupled_weight_decay", "The first group's decoupled_weight_decay.")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))
        self.momentum_buffers: list[np.ndarray | None] = [None] * len(self.params)

    def _check_hyperparameters(self, owner, values):
        momentum = check_number(owner, "momentum", values["momentum"], low=0)
        dampening = check_number(owner, "dampening", values["dampening"])
        weight_decay = check_number(owner, "weight_decay", values["weight_decay"], low=0)
        nesterov = check_flag(owner, "nesterov", values["nesterov"])
        decoupled = check_flag(owner, "decoupled_weight_decay", values.get("decoupled_weight_decay", False))
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"{owner}: nesterov momentum requires momentum > 0 and dampening = 0, "
                             f"got momentum={values['momentum']}, dampening={values['dampening']}")
        return dict(momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                    decoupled_weight_decay=decoupled)

    def step(self):
        for i, p, group in self._trainable():
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            g = self._grad(p, group)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            if momentum != 0:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = np.array(g, copy=True)
                else:
                    buf *= momentum
                    buf += (1 - group["dampening"]) * g
                self.momentum_buffers[i] = buf
                g = g + momentum * buf if group["nesterov"] else buf
            p.data -= lr * g

    def _arrays_state(self):
        return {"momentum_buffers": [None if b is None else b.copy() for b in self.momentum_buffers]}

    def _state_keys(self):
        return ("lr", "momentum", "dampening", "weight_decay", "nesterov", "momentum_buffers")

    def _optional_keys(self):
        return ("decoupled_weight_decay",)

    def _class_defaults(self):
        return {"maximize": False, "decoupled_weight_decay": False}

    def _array_list_keys(self, groups):
        return ("momentum_buffers",)

    def _apply_state_dict(self, state, groups):
        self.momentum_buffers = self._copy_like_params(state["momentum_buffers"])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with L2 weight decay and optional AMSGrad, torch.optim.Adam's rule.

    lr >= 0, betas a pair in [0, 1), eps >= 0, weight_decay >= 0 (torch's ranges).
    ``decoupled_weight_decay=True`` (torch's option): AdamW's decoupled weight decay.
    """

    _hyper = ("betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")
    _decoupled_default = False          # AdamW: True
    betas = _group_property("betas", "The first group's (beta1, beta2).")
    eps = _group_property("eps", "The first group's eps.")
    weight_decay = _group_property("weight_decay", "The first group's weight_decay.")
    amsgrad = _group_property("amsgrad", "The first group's amsgrad flag.")
    decoupled_weight_decay = _group_property("decoupled_weight_decay", "The first group's decoupled_weight_decay.")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))
        self.step_count = 0
        self.exp_avg = [np.zeros_like(p.data) for p in self.params]
        self.exp_avg_sq = [np.zeros_like(p.data) for p in self.params]
        self.max_exp_avg_sq: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self._any("amsgrad") else [None] * len(self.params))

    def _any(self, key, groups=None) -> bool:
        return any(g[key] for g in (self.param_groups if groups is None else groups))

    def _check_hyperparameters(self, owner, values):
        betas = values["betas"]
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or any(isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Real) for b in betas)
                or not all(math.isfinite(b) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2) of finite numbers in [0, 1), "
                             f"got {betas!r}")
        eps = check_number(owner, "eps", values["eps"], low=0)
        weight_decay = check_number(owner, "weight_decay", values["weight_decay"], low=0)
        amsgrad = check_flag(owner, "amsgrad", values.get("amsgrad", False))
        decoupled = check_flag(owner, "decoupled_weight_decay",
                               values.get("decoupled_weight_decay", self._decoupled_default))
        return dict(betas=(float(betas[0]), float(betas[1])), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                    decoupled_weight_decay=decoupled)

    def step(self):
        self.step_count += 1
        t = self.step_count
        for i, p, group in self._trainable():
            lr, (b1, b2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
            m, v, v_max = self.exp_avg[i], self.exp_avg_sq[i], self.max_exp_avg_sq[i]
            step_size = lr / (1 - b1 ** t)
            bc2_sqrt = math.sqrt(1 - b2 ** t)         # a Python float: keeps float32 math in float32
            g = self._grad(p, group)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            _lerp_(m, g, 1 - b1)
            v *= b2
            v += (1 - b2) * g * g
            if group["amsgrad"]:
                if v_max is None:                      # amsgrad switched on after construction
                    v_max = self.max_exp_avg_sq[i] = np.zeros_like(p.data)
                np.maximum(v_max, v, out=v_max)
                denom = np.sqrt(v_max) / bc2_sqrt + group["eps"]
            else:
                denom = np.sqrt(v) / bc2_sqrt + group["eps"]
            p.data -= step_size * (m / denom)

    def _arrays_state(self):
        return {"step_count": self.step_count,
                "exp_avg": [m.copy() for m in self.exp_avg],
                "exp_avg_sq": [v.copy() for v in self.exp_avg_sq],
                "max_exp_avg_sq": [None if v is None else v.copy() for v in self.max_exp_avg_sq]}

    def _state_keys(self):
        return ("lr", "betas", "eps", "weight_decay", "step_count", "exp_avg", "exp_avg_sq")

    def _optional_keys(self):
        return ("amsgrad", "decoupled_weight_decay")

    def _class_defaults(self):
        return {"maximize": False, "amsgrad": False, "decoupled_weight_decay": self._decoupled_default}

    def _array_list_keys(self, groups):
        if self._any("amsgrad", groups):
            return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        return ("exp_avg", "exp_avg_sq")

    def _required_array_keys(self, groups):
        return self._array_list_keys(groups)

    def _nonnegative_array_keys(self):
        return ("exp_avg_sq", "max_exp_avg_sq")

    def _apply_state_dict(self, state, groups):
        self.step_count = int(state["step_count"])
        self.exp_avg = self._copy_like_params(state["exp_avg"])
        self.exp_avg_sq = self._copy_like_params(state["exp_avg_sq"])
        self.max_exp_avg_sq = (self._copy_like_params(state["max_exp_avg_sq"]) if self._any("amsgrad", groups)
                               else [None] * len(self.params))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), torch.optim.AdamW's rule.

    Each step first shrinks the weights, p = p * (1 - lr * weight_decay), then takes Adam's step on
    the gradient alone. Defaults are torch's (weight_decay=1e-2).
    """

    _decoupled_default = True

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def _check_hyperparameters(self, owner, values):
        out = super()._check_hyperparameters(owner, values)
        if not out["decoupled_weight_decay"]:
            raise ValueError(f"{owner}: AdamW's weight decay is decoupled; decoupled_weight_decay=False is Adam")
        return out


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered (Graves) and with momentum, torch.optim.RMSprop's rule.

    lr >= 0, eps >= 0, weight_decay >= 0, momentum >= 0 (torch's ranges) and 0 <= alpha <= 1 (torch
    asks only alpha >= 0; alpha > 1 makes the squared average negative, its square root NaN).
    """

    _hyper = ("alpha", "eps", "weight_decay", "momentum", "centered")
    alpha = _group_property("alpha", "The first group's alpha.")
    eps = _group_property("eps", "The first group's eps.")
    weight_decay = _group_property("weight_decay", "The first group's weight_decay.")
    momentum = _group_property("momentum", "The first group's momentum.")
    centered = _group_property("centered", "The first group's centered flag.")

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))
        self.step_count = 0
        n = len(self.params)
        self.square_avg = [np.zeros_like(p.data) for p in self.params]
        self.momentum_buffer: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self._uses_momentum() else [None] * n)
        self.grad_avg: list[np.ndarray | None] = (
            [np.zeros_like(p.data) for p in self.params] if self._uses_centered() else [None] * n)

    def _uses_momentum(self, groups=None) -> bool:
        return any(g["momentum"] > 0 for g in (self.param_groups if groups is None else groups))

    def _uses_centered(self, groups=None) -> bool:
        return any(g["centered"] for g in (self.param_groups if groups is None else groups))

    def _check_hyperparameters(self, owner, values):
        return dict(alpha=check_number(owner, "alpha", values["alpha"], low=0, high=1),
                    eps=check_number(owner, "eps", values["eps"], low=0),
                    weight_decay=check_number(owner, "weight_decay", values["weight_decay"], low=0),
                    momentum=check_number(owner, "momentum", values["momentum"], low=0),
                    centered=check_flag(owner, "centered", values["centered"]))

    def step(self):
        self.step_count += 1
        for i, p, group in self._trainable():
            alpha, weight_decay, momentum = group["alpha"], group["weight_decay"], group["momentum"]
            s, buf, a = self.square_avg[i], self.momentum_buffer[i], self.grad_avg[i]
            g = self._grad(p, group)
            if weight_decay != 0:
                g = g + weight_decay * p.data
            s *= alpha
            s += (1 - alpha) * g * g
            if group["centered"]:
                if a is None:                          # switched on after construction: torch's zeros
                    a = self.grad_avg[i] = np.zeros_like(p.data)
                _lerp_(a, g, 1 - alpha)
                d = np.sqrt(s - a * a)
            else:
                d = np.sqrt(s)
            d += group["eps"]
            if momentum > 0:
                if buf is None:
                    buf = self.momentum_buffer[i] = np.zeros_like(p.data)
                buf *= momentum
                buf += g / d
                p.data -= group["lr"] * buf
            else:
                p.data -= group["lr"] * (g / d)

    def _arrays_state(self):
        def copies(arrays):
            return [None if a is None else a.copy() for a in arrays]
        return {"step_count": self.step_count, "square_avg": copies(self.square_avg),
                "momentum_buffer": copies(self.momentum_buffer), "grad_avg": copies(self.grad_avg)}

    def _state_keys(self):
        return ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "step_count", "square_avg",
                "momentum_buffer", "grad_avg")

    def _array_list_keys(self, groups):
        return ("square_avg", "momentum_buffer", "grad_avg")

    def _required_array_keys(self, groups):
        keys = ["square_avg"]
        if self._uses_momentum(groups):
            keys.append("momentum_buffer")
        if self._uses_centered(groups):
            keys.append("grad_avg")
        return tuple(keys)

    def _nonnegative_array_keys(self):
        return ("square_avg",)

    def _apply_state_dict(self, state, groups):
        self.step_count = int(state["step_count"])
        n = len(self.params)
        self.square_avg = self._copy_like_params(state["square_avg"])
        self.momentum_buffer = (self._copy_like_params(state["momentum_buffer"]) if self._uses_momentum(groups)
                                else [None] * n)
        self.grad_avg = self._copy_like_params(state["grad_avg"]) if self._uses_centered(groups) else [None] * n
