"""Learning-rate range test (Leslie Smith, "Cyclical Learning Rates", 2017; the fastai "lr_find").

Train for up to ``num_steps`` mini-batches while the rate grows exponentially from ``start_lr`` to
``end_lr``::

    lr_i = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)),   i = 0 .. num_steps - 1

and record the loss of each batch (computed before that batch's update, at the rate being tried).
The raw losses are noisy, so they are smoothed by an exponential moving average with bias
correction (as Adam corrects its moments)::

    avg_i = smooth * avg_{i-1} + (1 - smooth) * loss_i,   avg_{-1} = 0
    smoothed_i = avg_i / (1 - smooth ** (i + 1))

The test stops early when the loss explodes: a non-finite loss, or ``smoothed_i > diverge_factor *
min(smoothed_0..i)``. Afterwards the model gets back exactly the weights (and buffers, such as batch
norm's running statistics), the train/eval mode it had, and the state of its layers' own random
generators (Dropout's): the test is free to run before training.

Reading the result: the loss stays flat while the rate is too small to matter, falls once the rate
is useful, and shoots up once it is too large. ``suggestion`` is the rate where the smoothed loss
falls fastest per decade of rate (the most negative slope d smoothed / d log10(lr), measured over a
window, before the smoothed loss's minimum; see ``_steepest_descent``), a common choice for SGD; ``lr_at_min_loss / 10``
is the other usual rule of thumb. Both are heuristics -- look at the plot. The smoothing lags the raw losses (with
smooth = 0.98 it averages about the last 50 batches), which moves both to the right of where the
raw loss turns; more steps per decade of rate (a larger ``num_steps`` or a narrower sweep) or a
smaller ``smooth`` shorten that lag.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ._typing import PathLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .losses import SoftmaxCrossEntropy
    from .model import Sequential
    from .optim import Optimizer


@dataclass
class LRRangeResult:
    lrs: np.ndarray              # (n,) the rates tried, in order (n <= num_steps)
    losses: np.ndarray           # (n,) the smoothed losses (what to plot and read)
    raw_losses: np.ndarray       # (n,) the loss of each batch as measured
    stopped_early: bool          # True when the loss diverged before num_steps
    stop_reason: str             # "completed", "diverged" or "non-finite loss"
    suggestion: float | None     # the rate of steepest descent of the smoothed loss
    lr_at_min_loss: float | None = None
    meta: dict = field(default_factory=dict)

    def plot(self, path: PathLike | None = None, *, ax: Axes | None = None) -> Axes:
        """Plot smoothed loss against the rate (log axis), marking the suggestion; save to ``path``
        if given. Returns the matplotlib Axes. Needs matplotlib (``pip install matplotlib``)."""
        try:
            import matplotlib
            if ax is None and path is not None:
                matplotlib.use("Agg", force=False)       # no display needed to write a file
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError("LRRangeResult.plot needs matplotlib, which is not installed; "
                              "install it with: pip install matplotlib") from err
        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, label="smoothed loss")
        ax.plot(self.lrs, self.raw_losses, alpha=0.3, label="batch loss")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="tab:red", linestyle="--",
                       label=f"steepest descent: {self.suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        finite = self.losses[np.isfinite(self.losses)]
        both = np.concatenate([finite, self.raw_losses[np.isfinite(self.raw_losses)]])
        if finite.size:                    # keep the explosion from flattening the interesting part
            top = min(both.max(), 3 * finite[0])
            ax.set_ylim(both.min() - 0.05 * (top - both.min()), top)
        ax.set_title(f"learning-rate range test ({self.stop_reason})")
        ax.legend()
        if path is not None:
            ax.figure.savefig(path, dpi=100, bbox_inches="tight")
            if fig is not None:
                plt.close(fig)
        return ax


def _steepest_descent(lrs, smoothed) -> float | None:
    """The rate where the smoothed loss falls fastest per decade of rate; None if too few points.

    The slope at point i is a central difference over +-w points (w = 5% of the points, at least 1):
    (s[i+w] - s[i-w]) / (log10 lr[i+w] - log10 lr[i-w]). A wide difference, and skipping the first
    10% of the sweep (where the running average has seen few batches and batch-to-batch noise
    dominates), keep noise from posing as descent. Only points up to the minimum of the smoothed loss
    are candidates: past it the loss is rising, and a dip there is noise, not a useful rate.
    """
    ok = np.isfinite(smoothed)
    lrs, smoothed = lrs[ok], smoothed[ok]
    n = len(lrs)
    w = max(1, round(0.05 * n))
    first = max(w, n // 10)
    last = min(n - w, int(np.argmin(smoothed)) + 1)          # candidates: first .. last - 1
    if first >= last:
        return None
    i = np.arange(first, last)
    log_lr = np.log10(lrs)
    slope = (smoothed[i + w] - smoothed[i - w]) / (log_lr[i + w] - log_lr[i - w])     # (len(i),)
    return float(lrs[i[int(np.argmin(slope))]])


def _batches(n, batch_size, rng):
    """Endless mini-batch indices: a fresh permutation from ``rng`` each pass over the data."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def lr_range_test(model: Sequential, loss_fn: SoftmaxCrossEntropy, x: np.ndarray, y: np.ndarray, *,
                  optimizer_factory: Callable[..., Optimizer], start_lr: float = 1e-7, end_lr: float = 10.0,
                  num_steps: int = 200, batch_size: int = 64, rng: np.random.Generator, smooth: float = 0.98,
                  diverge_factor: float = 4.0) -> LRRangeResult:
    """Run the range test on ``(x, y)`` and restore the model afterwards.

    model: a ``Sequential``; loss_fn: e.g. ``tc.SoftmaxCrossEntropy()``; x: (N, ...) inputs;
    y: (N,) labels (or whatever ``loss_fn`` takes, indexed along axis 0).
    optimizer_factory: called as ``optimizer_factory(model.parameters(), lr=start_lr)``, e.g.
    ``tc.SGD``, ``functools.partial(tc.SGD, momentum=0.9)`` or ``lambda p, lr: tc.Adam(p, lr)``;
    the optimizer is thrown away afterwards. rng: a ``np.random.Generator`` that shuffles the
    batches (it is advanced). Returns an ``LRRangeResult``.
    """
    owner = "lr_range_test"
    if not (0 < start_lr < end_lr and math.isfinite(end_lr)):
        raise ValueError(f"{owner}: need 0 < start_lr < end_lr < inf, got start_lr={start_lr}, end_lr={end_lr}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(f"{owner}: num_steps must be an integer >= 2, got {num_steps!r}")
    if not 0 <= smooth < 1:
        raise ValueError(f"{owner}: smooth must lie in [0, 1), got {smooth}")
    if not diverge_factor > 1:
        raise ValueError(f"{owner}: diverge_factor must be > 1, got {diverge_factor}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: rng must be a np.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{owner}: x holds {len(x)} samples and y {len(y)}; need the same, non-zero number")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{owner}: batch_size must be a positive integer, got {batch_size!r}")

    lrs = start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / (num_steps - 1))   # (num_steps,)
    saved_state = model.state_dict()                          # copies: weights and buffers
    was_training = bool(getattr(model, "training", True))
    layer_rngs = [layer.rng for layer in getattr(model, "layers", [])      # e.g. Dropout's masks
                  if isinstance(getattr(layer, "rng", None), np.random.Generator)]
    saved_rng_states = [r.bit_generator.state for r in layer_rngs]
    tried, raw, smoothed = [], [], []
    reason = "completed"
    try:
        model.train()
        opt = optimizer_factory(model.parameters(), lr=float(lrs[0]))
        avg, best = 0.0, math.inf
        batches = _batches(len(x), int(batch_size), rng)
        for i, lr in enumerate(lrs):
            idx = next(batches)
            opt.lr = float(lr)
            opt.zero_grad()
            loss = float(loss_fn(model(x[idx]), y[idx]))
            tried.append(float(lr))
            raw.append(loss)
            if not math.isfinite(loss):
                smoothed.append(math.nan)
                reason = "non-finite loss"
                break
            avg = smooth * avg + (1 - smooth) * loss
            value = avg / (1 - smooth ** (i + 1))
            smoothed.append(value)
            best = min(best, value)
            if value > diverge_factor * best:
                reason = "diverged"
                break
            model.backward(loss_fn.backward(), input_grad=False)
            opt.step()
    finally:
        model.load_state_dict(saved_state)
        model.train(was_training)
        for r, state in zip(layer_rngs, saved_rng_states):
            r.bit_generator.state = state

    lrs_arr, smoothed_arr = np.array(tried), np.array(smoothed)
    stop = len(tried) if reason == "completed" else len(tried) - 1    # leave the explosion out
    finite = np.isfinite(smoothed_arr[:stop])
    min_lr = float(lrs_arr[:stop][finite][np.argmin(smoothed_arr[:stop][finite])]) if finite.any() else None
    return LRRangeResult(lrs=lrs_arr, losses=smoothed_arr, raw_losses=np.array(raw),
                         stopped_early=reason != "completed", stop_reason=reason,
                         suggestion=_steepest_descent(lrs_arr[:stop], smoothed_arr[:stop]),
                         lr_at_min_loss=min_lr,
                         meta={"start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps,
                               "batch_size": batch_size, "smooth": smooth, "diverge_factor": diverge_factor})
