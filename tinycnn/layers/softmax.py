"""Softmax over the channel/class axis (axis 1), as a layer.

    x: (N, K, ...) -> y: same shape,  y[n, k, ...] = exp(x[n, k, ...]) / sum_j exp(x[n, j, ...])

Computed after subtracting the max along axis 1, so no exp overflows for any finite x.

Backward is the Jacobian-vector product. For one sample, dy_k/dx_j = y_k (delta_kj - y_j), so

    grad_x = y * (g - sum_k(g * y))        # the sum over axis 1, kept as (N, 1, ...)

A trailing Softmax is what a Keras model ends with (``Dense(10, activation="softmax")``). When a
``Sequential`` ending in Softmax is compiled with a cross-entropy loss, ``fit`` skips this layer and
feeds the logits before it to ``SoftmaxCrossEntropy`` (one stable log-sum-exp, no log of a rounded
probability); ``predict`` runs it, so probabilities come out exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Layer


@dataclass
class SoftmaxCache:
    y: np.ndarray             # the output probabilities, shape of x: (N, K, ...)


class Softmax(Layer):
    """Softmax along axis 1 of an (N, K, ...) input."""
    def __init__(self):
        self._cache: SoftmaxCache | None = None

    def __repr__(self):
        return "Softmax()"

    def output_shape(self, in_shape):
        """Per-sample shape in, the same shape out; needs at least the class axis."""
        if len(in_shape) < 1:
            raise ValueError(f"{self!r}: needs a class axis (K, ...) per sample, got shape {tuple(in_shape)}")
        return tuple(in_shape)

    def forward(self, x):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: input dtype is {x.dtype}, but a floating array is needed")
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input (N, K, ...) with at least 2 dimensions, got shape {x.shape}")
        x = np.ascontiguousarray(x)      # C order: the sums' rounding must not depend on the caller's layout
        e = np.exp(x - x.max(axis=1, keepdims=True))          # every exponent <= 0: no overflow
        y = e / e.sum(axis=1, keepdims=True)                   # (N, K, ...)
        self._cache = SoftmaxCache(y=y)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = np.ascontiguousarray(self._check_grad(grad_y, cache.y.shape))   # C order, as in forward
        y = cache.y
        return y * (g - (g * y).sum(axis=1, keepdims=True))   # (N, K, ...)
