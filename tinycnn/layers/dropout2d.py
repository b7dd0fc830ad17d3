"""Dropout2D: inverted dropout of whole channels (torch's ``nn.Dropout2d``). (N, C, H, W) in and out.

Training mode, with keep probability q = 1 - p, one draw per (sample, channel)::

    keep ~ Bernoulli(q), shape (N, C, 1, 1)       # bool, from the layer's rng: rng.random((N, C)) < q
    y    = x * keep * s,   s = 1 / q              # a channel is kept whole (scaled) or zeroed whole
    dx   = g * keep * s                           # the same mask, broadcast over H and W

Evaluation mode: y = x, dx = g. As torch: p = 0 is the identity (nothing drawn), p = 1 zeroes
everything (y = x * 0, so NaN and inf still show) and draws nothing.

Why channels: neighbouring pixels of a feature map are strongly correlated, so dropping single
pixels (``Dropout``) barely regularises a convolution; dropping whole maps does (Tompson et al.,
"Efficient Object Localization Using Convolutional Networks", 2015).

The mask comes from ``self.rng`` (a ``np.random.Generator`` passed in; seed it for repeatable runs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Layer, check_input
from .dropout import dropout_settings


@dataclass
class Dropout2DCache:
    scaled_mask: np.ndarray | None    # (N, C, 1, 1): keep * s in x's dtype; None when the identity
    shape: tuple                      # (N, C, H, W), of x and y


class Dropout2D(Layer):
    """Drop each channel of each sample with probability ``p`` (torch's ``nn.Dropout2d``)."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        self.p, self.rng = dropout_settings("Dropout2D", "a channel", p, rng)
        self._cache: Dropout2DCache | None = None

    def __repr__(self) -> str:
        return f"Dropout2D(p={self.p})"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(in_shape) != 3:
            raise ValueError(f"{self!r}: expects a (C, H, W) image per sample (input (N, C, H, W)), "
                             f"got per-sample shape {tuple(in_shape)}")
        return tuple(in_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_input(self, x, 4, "(N, C, H, W)")
        n, c = x.shape[:2]
        if not self.training or self.p == 0.0:
            self._cache = Dropout2DCache(scaled_mask=None, shape=x.shape)
            return x
        if self.p == 1.0:
            scaled_mask = np.zeros((n, c, 1, 1), dtype=x.dtype)             # all dropped, nothing drawn
        else:
            keep = self.rng.random((n, c)) < 1.0 - self.p                  # bool (N, C)
            scale = x.dtype.type(1.0 / (1.0 - self.p))                     # s = 1/q in x's dtype
            scaled_mask = (keep.astype(x.dtype) * scale).reshape(n, c, 1, 1)   # 0 or s
        self._cache = Dropout2DCache(scaled_mask=scaled_mask, shape=x.shape)
        with np.errstate(invalid="ignore"):                                # inf * 0 = NaN is meant
            return x * scaled_mask

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.shape)
        if cache.scaled_mask is None:
            return g
        with np.errstate(invalid="ignore"):
            return g * cache.scaled_mask
