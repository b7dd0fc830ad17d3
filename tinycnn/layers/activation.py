"""Elementwise activations: ReLU, Sigmoid and Tanh. Any shape in, the same shape out.

ReLU:    y = max(x, 0);   dy/dx = 1 where x > 0, else 0.
         Subgradient rule: ReLU'(0) = 0 (PyTorch's choice). NaN stays NaN forward, gets gradient 0.
Sigmoid: y = 1 / (1 + exp(-x)), computed without overflow for large |x|;
         dy/dx = y * (1 - y), from the cached output.
Tanh:    y = tanh(x);   dy/dx = 1 - y**2, from the cached output. float32 input is evaluated in
         float64 and rounded once, so y is within half a unit in the last place (plus ~1e-16
         relative) of the true tanh: a bound the float32 tests can rely on (numpy's float32 tanh
         kernel documents no error bound).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import elementwise, launch
from . import buffers
from .base import Layer
from .layout import as_view, is_channel_major, to_channel_major


def _check_float(layer, x):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed")
    return x


@dataclass(frozen=True)
class _Layout:
    """How an activation lies in memory: C order, or channel-major (C, H, W, N) behind an (N, C, H, W)
    view. ``flat`` gives its elements in memory order (a view when the array already has that
    layout, else a copy); ``unflat`` rebuilds an array of the same shape and layout from such a vector."""
    shape: tuple
    channel_major: bool

    @classmethod
    def of(cls, x):
        return cls(shape=x.shape, channel_major=is_channel_major(x))

    def flat(self, a):
        if self.channel_major:
            return to_channel_major(a).reshape(-1)                     # (C, H, W, N) memory, flat
        return np.ascontiguousarray(a).reshape(-1)

    def unflat(self, v):
        if self.channel_major:
            n, c, h, w = self.shape
            return as_view(v.reshape(c, h, w, n))                      # (N, C, H, W) view
        return v.reshape(self.shape)


@dataclass
class ReLUCache:
    positive: np.ndarray      # bool: where x > 0 (the gradient passes only there); flat, in x's memory
                              # order when ``layout`` is set, else shaped like x
    layout: _Layout | None    # x's shape and memory layout (None: the plain-NumPy path)


@dataclass
class SigmoidCache:
    y: np.ndarray             # the output, shape of x


@dataclass
class TanhCache:
    y: np.ndarray             # the output, shape of x


class ReLU(Layer):
    per_sample = True

    def __init__(self):
        self._cache = None

    def __repr__(self):
        return "ReLU()"

    def forward(self, x):
        x = _check_float(self, x)
        if x.dtype not in (np.float32, np.float64):          # float16, longdouble: plain NumPy
            positive = x > 0                      # False at 0 and at NaN: ReLU'(0) = 0
            self._cache = ReLUCache(positive=positive, layout=None)
            return np.maximum(x, 0, dtype=x.dtype)   # NaN propagates through np.maximum
        # One fused pass over the memory (tinycnn.kernels.elementwise), in x's own layout: a
        # channel-major activation from Conv2D stays channel-major (see layers/layout.py).
        layout = _Layout.of(x)
        self._cache = None                        # the old mask's array can be recycled right here
        y, positive = launch(elementwise.relu_forward, x.size, layout.flat(x), buffers.empty((x.size,), x.dtype),
                             buffers.empty((x.size,), np.bool_))   # y = max(x, 0), positive = x > 0
        self._cache = ReLUCache(positive=positive, layout=layout)
        return layout.unflat(y)

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        layout = cache.layout
        if layout is None:
            g = self._check_grad(grad_y, cache.positive.shape)
            return np.where(cache.positive, g, g.dtype.type(0))
        g = self._check_grad(grad_y, layout.shape)
        # A branch-free select (np.where on a random mask mispredicts a branch per element).
        gx = launch(elementwise.relu_backward, g.size, cache.positive, layout.flat(g),
                    buffers.empty((g.size,), g.dtype))
        return layout.unflat(gx)


class Sigmoid(Layer):
    per_sample = True

    def __init__(self):
        self._cache = None

    def __repr__(self):
        return "Sigmoid()"

    def forward(self, x):
        x = _check_float(self, x)
        # exp of a non-positive number only: no overflow for any x.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self._cache = SigmoidCache(y=y)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y.shape)
        y = cache.y
        return g * (1 - y) * y


class Tanh(Layer):
    per_sample = True

    def __init__(self):
        self._cache = None

    def __repr__(self):
        return "Tanh()"

    def forward(self, x):
        x = _check_float(self, x)
        # Evaluate in float64 (exact for float32 input), round once to x's dtype.
        y = np.tanh(x.astype(np.float64, copy=False)).astype(x.dtype, copy=False)
        self._cache = TanhCache(y=y)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y.shape)
        y = cache.y
        return g * (1 - y * y)                # dtanh/dx = 1 - tanh(x)**2
