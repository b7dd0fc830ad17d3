"""Callbacks: small objects ``fit`` calls at fixed points of training (Keras' hooks and order).

    on_train_begin(logs)                 once, before the first epoch
    on_epoch_begin(epoch, logs)          epoch is 0-based
    on_train_batch_begin(step, logs)     step is 0-based within the epoch
    on_train_batch_end(step, logs)       logs: running "loss" (and metrics) of the epoch so far
    on_epoch_end(epoch, logs)            logs: the epoch's "loss", metrics, "val_*" and "lr"
    on_train_end(logs)                   once, after the last epoch (not when fit raises)

A callback reaches the model through ``self.model`` and the run through ``self.params`` ("epochs",
"initial_epoch", "steps", "samples", "batch_size", "rng": the generator that shuffles the data; steps,
samples and rng are None when ``fit`` trains on an iterable that does not tell them). Setting
``self.model.stop_training = True`` ends ``fit`` after the current batch (the epoch's logs are still
completed), or, set in ``on_epoch_end``, after that epoch. ``on_epoch_end`` may add entries to its
``logs`` (timings, say): the ``History`` records the logs after every callback has seen them.

What each one does:

* ``EarlyStopping``: stops when ``monitor`` has not improved by more than ``min_delta`` for
  ``patience`` epochs; with ``restore_best_weights`` the model ends with the weights of its best epoch.
  Deliberate difference from Keras: Keras restores only when it actually stops early; here the best
  weights are restored at the end of training in every case (the name promises the best weights).
  It says (``verbose=1``, the default; 0 for silence) when it stops, why, and which epoch's weights
  the model ends with.
* ``ModelCheckpoint``: saves weights, optimizer state, epoch and the shuffling generator's state with
  ``tinycnn.checkpoint.save_checkpoint`` (atomic) after every epoch, or only when ``monitor`` improves
  (``save_best_only``). ``path`` may hold ``{epoch}`` and log keys, e.g. ``"ckpt-{epoch:02d}.npz"``.
* ``LearningRateScheduler``: steps a ``tinycnn.schedules`` schedule after every epoch (torch's
  convention) or after every batch (``per="batch"``, for one-cycle), or sets the rate from a Keras-style
  function ``schedule(epoch) -> lr`` or ``schedule(epoch, lr) -> lr`` before every epoch.

A non-finite loss is not a callback's job: ``fit`` checks every batch's loss itself, before the update,
and raises ``tinycnn.NonFiniteLossError`` (a callback at batch end would run after NaN weights).
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
import re
import string
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .checkpoint import finite_state_problem, save_checkpoint

if TYPE_CHECKING:
    from .model import Sequential
    from .schedules import LRScheduler, SequentialLR


class Callback:
    """Base class: every hook does nothing."""

    model = None
    params: dict = {}

    def set_model(self, model: Sequential) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: pass
    def on_train_end(self, logs: dict | None = None) -> None: pass
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: pass
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: pass
    def on_train_batch_begin(self, step: int, logs: dict | None = None) -> None: pass
    def on_train_batch_end(self, step: int, logs: dict | None = None) -> None: pass


class _Monitor:
    """Tracks the best value of one logged quantity. mode "min", "max", or "auto" (max for accuracy,
    precision, recall and F1, min otherwise). NaN is never an improvement."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if any(w in monitor for w in ("acc", "precision", "recall", "f1")) else "min"
        if min_delta < 0:
            raise ValueError(f"{owner}: min_delta must be >= 0, got {min_delta}")
        self.owner, self.monitor, self.mode, self.min_delta = owner, monitor, mode, float(min_delta)
        self.reset()

    def reset(self):
        self.best = np.inf if self.mode == "min" else -np.inf

    def value(self, logs: dict) -> float:
        if self.monitor not in logs:
            raise KeyError(f"{self.owner}: monitor {self.monitor!r} is not among the epoch's logs "
                           f"{sorted(logs)}; pass validation data to fit for 'val_*' quantities, or "
                           f"compile with the metric")
        return float(logs[self.monitor])

    def improved(self, current: float) -> bool:
        if math.isnan(current):
            return False
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without an improvement of more than ``min_delta`` in ``monitor``."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False, verbose: int = 1) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self._track = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor, self.patience = monitor, int(patience)
        self.restore_best_weights, self.verbose = bool(restore_best_weights), verbose

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._track.reset()
        self.wait = 0
        self.best_epoch: int | None = None
        self.best_weights: dict | None = None
        self.stopped_epoch: int | None = None

    @property
    def best(self) -> float:
        return self._track.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = self._track.value(logs or {})
        if self._track.improved(current):
            self._track.best, self.best_epoch, self.wait = current, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()        # copies
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.verbose:
                best = (f"best {self.best:.4f} at epoch {self.best_epoch + 1}" if self.best_epoch is not None
                        else "no finite value yet")
                print(f"EarlyStopping: {self.monitor} has not improved by more than {self._track.min_delta:g} "
                      f"for {self.wait} epoch{'s' if self.wait != 1 else ''} ({best}); stopping after epoch "
                      f"{epoch + 1}")

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}, the best "
                      f"{self.monitor} ({self.best:.4f})")
        elif self.verbose and self.stopped_epoch is not None:
            print(f"EarlyStopping: the model keeps the weights of its last epoch ({self.stopped_epoch + 1}); "
                  f"pass restore_best_weights=True to end with those of the best epoch")


# the keys fit's epoch logs can hold: loss, lr and tinycnn's metrics, each also as val_<key>
_LOG_KEY = re.compile(r"^(val_)?(loss|lr|accuracy|acc|top_k_accuracy|top_\d+_accuracy|precision|recall|f1)$")


def _check_path_template(path: str) -> None:
    """Refuse a ``ModelCheckpoint`` path whose ``{...}`` fields are not ``epoch`` or a log key, or
    whose format specs do not apply to numbers -- now, not after the first epoch."""
    owner = f"ModelCheckpoint({path!r})"
    try:
        fields = [f for _, f, spec, _ in string.Formatter().parse(path) if f is not None]
    except ValueError as err:
        raise ValueError(f"{owner}: the path is not a valid format string ({err}); write a literal brace as "
                         f"{{{{ or }}}}") from None
    for name in fields:
        if name == "" or name.isdigit():
            raise ValueError(f"{owner}: positional fields {{}} are not filled; name them, e.g. {{epoch:02d}}")
        if name != "epoch" and not _LOG_KEY.match(name):
            raise ValueError(f"{owner}: {{{name}}} is neither {{epoch}} nor a key fit logs each epoch (loss, lr, "
                             f"accuracy, top_k_accuracy, precision, recall, f1, and val_ of each)")
    try:
        path.format(epoch=1, **{name: 0.5 for name in fields if name != "epoch"})
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise ValueError(f"{owner}: a format spec does not apply ({err}); {{epoch}} is an integer, log keys "
                         f"are floats") from None


class ModelCheckpoint(Callback):
    """Save a checkpoint after each epoch, or only when ``monitor`` improves (``save_best_only``).

    ``path`` may hold ``{epoch}`` (an int) and the keys fit logs (loss, lr, tinycnn's metrics and
    their val_ versions, floats), with format specs (``{epoch:02d}``, ``{val_loss:.3f}``); any other
    field, or a spec that does not fit, is refused here, at construction. An epoch whose weights,
    optimizer state or logged numbers are not finite is not saved (a RuntimeWarning says so, and
    ``skipped`` lists it): the last checkpoint written is always one that can be resumed."""

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", save_optimizer: bool = True, verbose: int = 0) -> None:
        self.path, self.monitor = str(path), monitor
        _check_path_template(self.path)
        self.save_best_only, self.save_optimizer, self.verbose = bool(save_best_only), bool(save_optimizer), verbose
        self._track = _Monitor("ModelCheckpoint", monitor, mode, 0.0)   # best kept across fit calls
        self.last_saved: str | None = None
        self.skipped: list[int] = []             # epochs (1-based) whose state was not finite

    @property
    def best(self) -> float:
        return self._track.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        optimizer = self.model.compiled.optimizer if self.save_optimizer and self.model.compiled else None
        problem = finite_state_problem(self.model, optimizer, logs)
        if problem is not None:                  # a diverged state is never saved as a checkpoint
            self.skipped.append(epoch + 1)
            kept = f"; the last one saved is {self.last_saved}" if self.last_saved else ""
            warnings.warn(f"ModelCheckpoint: epoch {epoch + 1} not saved: {problem}{kept}", RuntimeWarning,
                          stacklevel=2)
            return
        extra = {"logs": {k: float(v) for k, v in logs.items()}}         # JSON keeps NaN/inf as such
        if self.save_best_only:
            current = self._track.value(logs)
            if not self._track.improved(current):
                return
            self._track.best = current
            extra.update(monitor=self.monitor, best=current)
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except KeyError as err:
            raise KeyError(f"ModelCheckpoint({self.path!r}): {{{err.args[0]}}} is not among this epoch's logs "
                           f"{sorted(logs)}; pass validation data to fit for val_* keys") from None
        save_checkpoint(path, self.model, optimizer, epoch=epoch + 1, rng=self.params.get("rng"), extra=extra)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path} after epoch {epoch + 1}")


class LearningRateScheduler(Callback):
    """Drive the learning rate during ``fit``.

    ``schedule``: a ``tinycnn.schedules`` object built on the model's optimizer (``.step()``, stepped
    after each epoch, or after each batch with ``per="batch"``), or a Keras-style function called
    before each epoch with the 0-based epoch index -- ``schedule(epoch) -> lr`` or
    ``schedule(epoch, lr) -> lr`` (``lr``: the current rate); ``per`` must then be "epoch". Which form a
    function has is read from its signature once, at construction. ``verbose=1`` prints the rate a
    function sets.
    """

    def __init__(self, schedule: LRScheduler | SequentialLR | Callable[..., float], per: str = "epoch",
                 verbose: int = 0) -> None:
        if per not in ("epoch", "batch"):
            raise ValueError(f"LearningRateScheduler: per must be 'epoch' or 'batch', got {per!r}")
        if not hasattr(schedule, "step") and not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a tinycnn schedule (with .step()) "
                            f"or a function epoch -> lr or (epoch, lr) -> lr, got {schedule!r}")
        if not hasattr(schedule, "step") and per == "batch":
            raise ValueError("LearningRateScheduler: a function schedule runs per epoch; for per-batch "
                             "steps use a tinycnn.schedules object")
        if hasattr(schedule, "step") and _needs_an_argument(schedule.step):
            raise TypeError(f"LearningRateScheduler: {type(schedule).__name__}.step needs a monitored value "
                            f"(e.g. ReduceLROnPlateau.step(val_loss)), which this callback does not pass; call "
                            f"schedule.step(metric) yourself after each epoch's evaluation")
        self.schedule, self.per, self.verbose = schedule, per, verbose
        self._arity = None if hasattr(schedule, "step") else _schedule_arity(schedule)

    def on_train_begin(self, logs: dict | None = None) -> None:
        owned = getattr(self.schedule, "optimizer", None)
        if owned is not None and self.model.compiled is not None and owned is not self.model.compiled.optimizer:
            raise ValueError("LearningRateScheduler: the schedule drives a different optimizer than the one "
                             "the model was compiled with; build it on model.compiled.optimizer")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._arity is None:
            return
        opt = self.model.compiled.optimizer
        lr = self.schedule(epoch) if self._arity == 1 else self.schedule(epoch, opt.lr)
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool) or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"LearningRateScheduler: the schedule function returned {lr!r} for epoch {epoch}; "
                             f"a learning rate must be a finite number >= 0")
        opt.lr = float(lr)
        if self.verbose:
            print(f"LearningRateScheduler: epoch {epoch + 1}: learning rate {opt.lr:g}")

    def on_train_batch_end(self, step: int, logs: dict | None = None) -> None:
        if self.per == "batch" and self._arity is None:
            self.schedule.step()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.per == "epoch" and self._arity is None:
            self.schedule.step()


def _needs_an_argument(step: Callable) -> bool:
    """Whether ``step()`` cannot be called without arguments (ReduceLROnPlateau.step(metric))."""
    try:
        params = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def _schedule_arity(fn) -> int:
    """2 when ``fn`` takes (epoch, lr), 1 when it takes (epoch) only (Keras accepts both)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):          # some builtins have no signature: Keras' current form
        return 2
    for args in ((0, 0.1), (0,)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return len(args)
    raise TypeError(f"LearningRateScheduler: the schedule function {fn!r} takes neither (epoch) nor "
                    f"(epoch, lr); its signature is {signature}")
