"""An exponential moving average of a model's weights, to evaluate (or keep) instead of the last ones.

The rule of ``torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))``:
the first update copies the weights, every later one moves the average towards them::

    n_averaged == 0:  avg = p
    else:             avg = lerp(avg, p, 1 - decay)      (= decay * avg + (1 - decay) * p, torch's lerp)
    n_averaged += 1

Use it as a ``fit`` callback (an update after every ``every``-th optimizer step) or by hand::

    ema = EMA(decay=0.99)                        # the model comes from fit
    model.fit(x, y, epochs=10, callbacks=[ema])
    with ema.swapped():                          # the averaged weights in the model, then back
        model.evaluate(x_test, y_test)
    ema.copy_to()                                # or keep them for good

    ema = EMA(model, decay=0.99)                 # a hand-written loop: ema.update() after opt.step()

``use_buffers=False`` (torch's default) averages the parameters only: with the average swapped
in, batch norm uses the model's current running statistics. ``use_buffers=True`` averages the
floating buffers (running mean and variance) the same way and copies the integer ones
(``num_batches_tracked``) from the model at each update. Frozen parameters are averaged like any
other (their average is their value).

Swapping exchanges the arrays' contents in place, so the optimizer and the executor keep their
references; a model whose parameters or buffers were replaced by other shapes since the last
update is refused. ``state_dict()`` -> ``{"type": "EMA", "decay", "every", "use_buffers",
"n_averaged", "steps", "averaged": {state_dict key: array}}`` and ``load_state_dict`` (checked
before anything changes) resume an average; the checkpoint file format has no place for it (save
the averaged weights as a model: ``with ema.swapped(): save_checkpoint(path, model)``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from .callbacks import Callback
from .optim import _lerp_, check_flag, check_int, check_number

if TYPE_CHECKING:
    from .model import Sequential


class EMA(Callback):
    """``EMA(model=None, decay=0.999, *, every=1, use_buffers=False)``: 0 <= decay <= 1 (0 follows the
    weights, 1 keeps the first ones), an update every ``every`` >= 1 optimizer steps in ``fit``."""

    def __init__(self, model: Sequential | None = None, decay: float = 0.999, *, every: int = 1,
                 use_buffers: bool = False) -> None:
        self.decay = decay
        self.every = check_int("EMA", "every", every, minimum=1)
        self.use_buffers = check_flag("EMA", "use_buffers", use_buffers)
        if model is not None:
            self._check_model(model)
        self.model = model
        self.n_averaged = 0
        self.steps = 0                                   # optimizer steps seen in fit
        self.averaged: dict[str, np.ndarray] = {}

    def __repr__(self):
        return f"EMA(decay={self.decay:g}, every={self.every}, n_averaged={self.n_averaged})"

    @property
    def decay(self) -> float:
        """The weight of the old average at each update; may be changed between updates (a schedule of
        the decay), checked as at construction."""
        return self._decay

    @decay.setter
    def decay(self, value) -> None:
        self._decay = check_number("EMA", "decay", value, low=0, high=1)

    @staticmethod
    def _check_model(model):
        if not hasattr(model, "named_parameters"):
            raise TypeError(f"EMA: model must be a tinycnn model (a Sequential), got {type(model).__name__}")

    def set_model(self, model: Sequential) -> None:
        self._check_model(model)
        if self.model is not None and model is not self.model and self.n_averaged:
            raise ValueError("EMA: this average belongs to another model; make one EMA per model")
        self.model = model

    def _live(self, model=None) -> dict[str, np.ndarray]:
        """The model's arrays being averaged, by state_dict key (the live arrays, not copies)."""
        model = self.model if model is None else model
        if model is None:
            raise RuntimeError("EMA: no model yet; pass EMA(model, ...) or use it as a fit callback")
        live = {name: p.data for name, p in model.named_parameters()}
        if self.use_buffers:
            live.update(model.named_buffers())
        return live

    def _matching_live(self, what: str, model=None) -> dict[str, np.ndarray]:
        live = self._live(model)
        if not self.n_averaged:
            raise RuntimeError(f"EMA.{what}: there is no average yet (update() has not run)")
        if set(live) != set(self.averaged) or any(live[k].shape != a.shape for k, a in self.averaged.items()):
            raise ValueError(f"EMA.{what}: the model's parameters are not the ones averaged (keys or shapes "
                             f"changed since the last update)")
        return live

    # -- averaging -----------------------------------------------------------------------------

    def update(self) -> None:
        """Average the model's current weights in (the first call copies them)."""
        live = self._live()
        if self.n_averaged == 0:
            self.averaged = {k: np.array(v, copy=True) for k, v in live.items()}
        else:
            self._matching_live("update")
            for key, value in live.items():
                avg = self.averaged[key]
                if avg.dtype.kind == "f":
                    _lerp_(avg, value, 1 - self.decay)
                else:                                     # integer buffers: the model's count
                    avg[...] = value
        self.n_averaged += 1

    def on_train_batch_end(self, step: int, logs: dict | None = None) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.update()

    # -- using the average ---------------------------------------------------------------------

    def swap(self) -> None:
        """Exchange the model's weights and the average, in place (a second call swaps back)."""
        live = self._matching_live("swap")
        for key, value in live.items():
            avg = self.averaged[key]
            held = value.copy()
            value[...] = avg
            avg[...] = held

    @contextmanager
    def swapped(self):
        """``with ema.swapped(): ...``: the averaged weights in the model inside, the model's own after."""
        self.swap()
        try:
            yield self.model
        finally:
            self.swap()

    def copy_to(self, model: Sequential | None = None) -> None:
        """Write the average into ``model`` (default: the averaged one) for good."""
        if model is not None:
            self._check_model(model)
        live = self._matching_live("copy_to", model)
        for key, value in live.items():
            value[...] = self.averaged[key]

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"type": "EMA", "decay": self.decay, "every": self.every, "use_buffers": self.use_buffers,
                "n_averaged": self.n_averaged, "steps": self.steps,
                "averaged": {k: v.copy() for k, v in self.averaged.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore an average (from ``state_dict()``) for this model; checks everything first."""
        owner = "EMA.load_state_dict"
        if not isinstance(state, dict) or state.get("type") != "EMA":
            got = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{owner}: the state belongs to {got!r}, not EMA")
        missing = [k for k in ("decay", "every", "use_buffers", "n_averaged", "steps", "averaged") if k not in state]
        if missing:
            raise ValueError(f"{owner}: missing keys {missing}")
        decay = check_number(owner, "decay", state["decay"], low=0, high=1)
        every = check_int(owner, "every", state["every"], minimum=1)
        use_buffers = check_flag(owner, "use_buffers", state["use_buffers"])
        n_averaged = check_int(owner, "n_averaged", state["n_averaged"], minimum=0)
        steps = check_int(owner, "steps", state["steps"], minimum=0)
        averaged = state["averaged"]
        if not isinstance(averaged, dict):
            raise TypeError(f"{owner}: 'averaged' must be a dict of arrays, got {type(averaged).__name__}")
        was = self.use_buffers
        self.use_buffers = use_buffers
        try:
            live = self._live() if (n_averaged or averaged) else {}
        finally:
            self.use_buffers = was
        if n_averaged:
            if set(averaged) != set(live):
                raise ValueError(f"{owner}: the average holds {sorted(set(averaged))[:6]}, the model "
                                 f"{sorted(set(live))[:6]}")
            for key, value in averaged.items():
                if not (isinstance(value, np.ndarray) and value.dtype.kind in "fiu"):
                    raise TypeError(f"{owner}: averaged[{key!r}] must be a numeric ndarray, got "
                                    f"{type(value).__name__}")
                if value.shape != live[key].shape:
                    raise ValueError(f"{owner}: averaged[{key!r}] has shape {value.shape}, the model's "
                                     f"{live[key].shape}")
                if not np.isfinite(value).all():
                    raise ValueError(f"{owner}: averaged[{key!r}] holds non-finite values (NaN or inf)")
        elif averaged:
            raise ValueError(f"{owner}: n_averaged is 0 but the state holds an average")
        self.decay, self.every, self.use_buffers, self.n_averaged, self.steps = (
            decay, every, use_buffers, n_averaged, steps)
        self.averaged = {k: np.array(v, dtype=live[k].dtype, copy=True, order="C") for k, v in averaged.items()}
