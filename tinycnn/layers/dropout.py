"""Dropout, inverted: drop in training, do nothing at evaluation. Any shape in, the same shape out.

Training mode, with keep probability q = 1 - p::

    keep ~ Bernoulli(q), independently per element     # bool, shape of x, from the layer's rng
    y    = x * keep * s,   s = 1 / q                   # kept values scaled up, so E[y] = x
    dx   = g * keep * s                                # the same mask, the same scale

Evaluation mode (``layer.eval()``): y = x and dx = g, nothing drawn.

Edge cases as PyTorch: p = 0 is the identity (no mask drawn); p = 1 drops everything, y = x * 0 (so
NaN and inf still show as NaN rather than being hidden as 0), and nothing is drawn.

The mask comes from ``self.rng``, a ``np.random.Generator`` passed in (default
``np.random.default_rng()``); give a seeded one to make runs repeatable, or reset it before each
forward to reuse a mask (the gradient check does that). ``keep`` is drawn as ``rng.random(shape) < q``,
so P(keep) = q exactly up to the 2**-53 resolution of ``random()``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .base import Layer


@dataclass
class DropoutCache:
    scaled_mask: np.ndarray | None    # keep * s, dtype of x, shape of x; None when the layer was the identity
    shape: tuple                      # shape of x (and of y)


def dropout_settings(owner: str, unit: str, p, rng) -> tuple[float, np.random.Generator]:
    """(p, rng) checked for a dropout layer: p a number in [0, 1] (NaN refused), rng a Generator or None
    (a fresh one). ``unit``: what one draw drops ("an element", "a channel"), for the message."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{owner}: p must be a number in [0, 1], got {p!r}")
    if not 0.0 <= float(p) <= 1.0:          # also rejects NaN
        raise ValueError(f"{owner}: p is the probability of dropping {unit} and must lie in "
                         f"[0, 1], got p = {p!r}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: rng must be a np.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return float(p), (np.random.default_rng() if rng is None else rng)


class Dropout(Layer):
    """Inverted dropout with drop probability ``p`` (PyTorch's ``nn.Dropout``)."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        self.p, self.rng = dropout_settings("Dropout", "an element", p, rng)
        self._cache: DropoutCache | None = None

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: input dtype is {x.dtype}, but a floating array is needed")
        if not self.training or self.p == 0.0:
            self._cache = DropoutCache(scaled_mask=None, shape=x.shape)
            return x
        scaled_mask = self.scaled_mask(x.shape, x.dtype)              # keep * s, shape of x
        self._cache = DropoutCache(scaled_mask=scaled_mask, shape=x.shape)
        with np.errstate(invalid="ignore"):                            # inf * 0 = NaN is meant: shown, not hidden
            return x * scaled_mask

    def scaled_mask(self, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
        """keep * s for an input of ``shape``: one draw from ``self.rng`` (the mask of one forward)."""
        dtype = np.dtype(dtype)
        if self.p == 1.0:
            return np.zeros(shape, dtype=dtype)                        # everything dropped, s unused
        keep = self.rng.random(shape) < 1.0 - self.p                   # bool
        scale = dtype.type(1.0 / (1.0 - self.p))                       # s = 1/q, rounded once to the dtype
        return keep.astype(dtype) * scale                              # 0 or s

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.shape)
        if cache.scaled_mask is None:
            return g
        with np.errstate(invalid="ignore"):
            return g * cache.scaled_mask
