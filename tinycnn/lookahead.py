"""Lookahead (Zhang, Lucas, Hinton & Ba, 2019) around any tinycnn optimizer.

The inner ("fast") optimizer takes its steps as usual; every ``k`` of them the slow weights move a
fraction ``alpha`` of the way towards the fast ones and the fast weights are reset to them::

    every step:      inner.step()                                  (fast weights theta)
    every k steps:   slow = slow + alpha * (theta - slow);  theta = slow

The slow weights start as the weights at the first step (the paper's phi_0 = theta_0), one array
per trainable parameter; a frozen parameter (``requires_grad`` False) is left alone. The inner
optimizer's state (momentum, Adam's moments) is kept across the synchronisations, as in the paper.

    opt = Lookahead(SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True), k=5, alpha=0.5)
    model.compile(optimizer=opt)                 # fit, schedules, checkpoints take it like any optimizer

It looks like an optimizer: ``step``, ``zero_grad``, ``params``, ``param_groups``, ``defaults``,
``lr`` (read and, with one group, set) are the inner optimizer's, and any other attribute
(``momentum``, ``step_count``, ...) is read from it; build schedules on the Lookahead object.

State: the inner optimizer's ``state_dict()`` with ``"type": "Lookahead"``, ``"inner_type"`` (the
inner optimizer's class), ``"lookahead_k"``, ``"lookahead_alpha"``, ``"lookahead_step"`` (inner
steps taken) and ``"slow_weights"`` (an array per parameter, None where not created yet) added:
one flat dict, so ``save_checkpoint`` / ``load_checkpoint`` and ``ModelCheckpoint`` store it as
they store an optimizer. ``load_state_dict`` checks all of it (the inner part by the inner
optimizer's own checks) before changing anything. ``save_model`` keeps only tinycnn's plain
optimizers (it rebuilds them from the file), so it refuses a Lookahead: use a checkpoint.
"""
from __future__ import annotations

import numpy as np

from .layers.base import Parameter
from .optim import Optimizer, check_int, check_number

_OWN_KEYS = ("inner_type", "lookahead_k", "lookahead_alpha", "lookahead_step", "slow_weights")


class Lookahead:
    """``Lookahead(optimizer, k=5, alpha=0.5)``: k >= 1 inner steps per synchronisation, 0 <= alpha <= 1
    (alpha = 1 is the inner optimizer alone; alpha = 0 never moves the weights)."""

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if isinstance(optimizer, Lookahead):
            raise TypeError("Lookahead: the optimizer is already a Lookahead; wrap the inner optimizer once")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"Lookahead: optimizer must be a tinycnn optimizer (tc.SGD, tc.Adam, tc.AdamW, "
                            f"tc.RMSprop), got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.k = check_int("Lookahead", "k", k, minimum=1)
        self.alpha = alpha
        self.lookahead_step = 0
        self.slow_weights: list[np.ndarray | None] = [None] * len(optimizer.params)

    # -- the inner optimizer's face -------------------------------------------------------------

    @property
    def alpha(self) -> float:
        """The fraction of the way the slow weights move at a synchronisation; may be changed between
        steps (a schedule of alpha), checked as at construction."""
        return self._alpha

    @alpha.setter
    def alpha(self, value) -> None:
        self._alpha = check_number("Lookahead", "alpha", value, low=0, high=1)

    @property
    def params(self) -> list[Parameter]:
        return self.optimizer.params

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict:
        return self.optimizer.defaults

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value) -> None:
        self.optimizer.lr = value

    @property
    def initial_lr(self) -> float | None:
        return self.optimizer.initial_lr

    @initial_lr.setter
    def initial_lr(self, value) -> None:
        self.optimizer.initial_lr = value

    def __getattr__(self, name):
        # only reached for names Lookahead itself lacks: the inner optimizer's hyper-parameters and state
        if name.startswith("__") or name in ("optimizer", "k", "_alpha", "lookahead_step", "slow_weights"):
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self):
        return f"Lookahead({self.optimizer!r}, k={self.k}, alpha={self.alpha:g})"

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    # -- the rule --------------------------------------------------------------------------------

    def step(self) -> None:
        trainable = [(i, p) for i, p in enumerate(self.params) if p.requires_grad]
        for i, p in trainable:
            if self.slow_weights[i] is None:
                self.slow_weights[i] = p.data.copy()
        self.optimizer.step()
        self.lookahead_step += 1
        if self.lookahead_step % self.k == 0:
            for i, p in trainable:
                slow = self.slow_weights[i]
                slow += self.alpha * (p.data - slow)
                p.data[...] = slow

    # -- state -----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        inner = self.optimizer.state_dict()
        return {**inner, "type": "Lookahead", "inner_type": inner["type"], "lookahead_k": self.k,
                "lookahead_alpha": self.alpha, "lookahead_step": self.lookahead_step,
                "slow_weights": [None if w is None else w.copy() for w in self.slow_weights]}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state`` (from ``state_dict()``); checks it all before changing anything."""
        owner = "Lookahead.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{owner}: expected a dict, got {type(state).__name__}")
        if state.get("type") != "Lookahead":
            raise ValueError(f"{owner}: the state belongs to a {state.get('type')!r} optimizer, not Lookahead")
        missing = [k for k in _OWN_KEYS if k not in state]
        if missing:
            raise ValueError(f"{owner}: missing keys {missing}")
        inner_type = type(self.optimizer).__name__
        if state["inner_type"] != inner_type:
            raise ValueError(f"{owner}: the state wraps a {state['inner_type']!r} optimizer, this Lookahead a "
                             f"{inner_type}")
        k = check_int(owner, "lookahead_k", state["lookahead_k"], minimum=1)
        alpha = check_number(owner, "lookahead_alpha", state["lookahead_alpha"], low=0, high=1)
        step = check_int(owner, "lookahead_step", state["lookahead_step"], minimum=0)
        slow = state["slow_weights"]
        params = self.params
        if not isinstance(slow, (list, tuple)) or len(slow) != len(params):
            raise ValueError(f"{owner}: 'slow_weights' must be a list of {len(params)} arrays (or None), got "
                             f"{len(slow) if isinstance(slow, (list, tuple)) else type(slow).__name__}")
        for i, (p, w) in enumerate(zip(params, slow)):
            if w is None:
                continue
            if not (isinstance(w, np.ndarray) and w.dtype.kind in "fiu"):
                raise TypeError(f"{owner}: 'slow_weights[{i}]' must be a numeric ndarray, got {type(w).__name__}")
            if w.shape != p.data.shape:
                raise ValueError(f"{owner}: shape mismatch: slow_weights[{i}]: parameter {p.data.shape} vs given "
                                 f"{w.shape}")
            if not np.isfinite(w).all():
                raise ValueError(f"{owner}: 'slow_weights[{i}]' holds non-finite values (NaN or inf)")
        inner = {key: value for key, value in state.items() if key not in _OWN_KEYS}
        inner["type"] = inner_type
        self.optimizer._check_state_dict(inner)           # raises before anything changes
        self.optimizer.load_state_dict(inner)
        self.k, self.alpha, self.lookahead_step = k, alpha, step
        self.slow_weights = [None if w is None else np.array(w, dtype=p.data.dtype, copy=True, order="C")
                             for p, w in zip(params, slow)]
