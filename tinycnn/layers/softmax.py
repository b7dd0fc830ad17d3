"""Softmax and LogSoftmax along any axis ``dim`` (torch's ``nn.Softmax(dim)``, ``nn.LogSoftmax(dim)``).

``dim`` counts the batch axis, as in torch, and may be negative (counted from the end). The default
is dim=1, the class/channel axis of (N, K, ...): tinycnn's ``Softmax()`` contract (torch's default
``dim=None`` picks an axis implicitly and is deprecated there, so tinycnn asks for an integer).

Along the axis, with m = max_j x_j (subtracted first, so no exp overflows for finite x)::

    Softmax:     y_k = exp(x_k - m) / S,          S = sum_j exp(x_j - m)
    LogSoftmax:  y_k = x_k - m - log S            (= log y_k of the softmax, without the rounded log)

Backward (Jacobian-vector products along the axis; g = dL/dy, sums over the axis kept as size 1)::

    Softmax:     dy_k/dx_j = y_k (delta_kj - y_j)      =>  dx = y * (g - sum(g * y))
    LogSoftmax:  dy_k/dx_j = delta_kj - p_j, p = exp(y) =>  dx = g - p * sum(g)

Any shape with at least 2 dimensions (the batch and one more); the empty batch gives an empty output.

A trailing Softmax is what a Keras model ends with (``Dense(10, activation="softmax")``). When a
``Sequential`` ending in a Softmax over the classes is compiled with a cross-entropy loss, ``fit``
skips this layer and feeds the logits before it to ``SoftmaxCrossEntropy`` (one stable log-sum-exp,
no log of a rounded probability); ``predict`` runs it, so probabilities come out exactly once.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .base import Layer


@dataclass
class SoftmaxCache:
    y: np.ndarray             # the output (probabilities or log-probabilities), shape of x
    axis: int                 # the non-negative axis of x the softmax ran along


class _AlongDim(Layer):
    kind = "Softmax"

    def __init__(self, dim: int = 1) -> None:
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"{self.kind}: dim must be an integer axis (1 for (N, K, ...) classes), got {dim!r}")
        self.dim = int(dim)
        self._cache: SoftmaxCache | None = None

    def __repr__(self) -> str:
        return f"{self.kind}()" if self.dim == 1 else f"{self.kind}(dim={self.dim})"

    def _axis(self, ndim: int, shape) -> int:
        axis = self.dim if self.dim >= 0 else ndim + self.dim
        if not 0 <= axis < ndim:
            raise ValueError(f"{self!r}: dim={self.dim} is out of range for a {ndim}-D input of shape "
                             f"{shape} (valid: -{ndim}..{ndim - 1})")
        return axis

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape in, the same out; ``dim`` must name an axis of (N, *in_shape)."""
        self._axis(len(in_shape) + 1, "(N, " + ", ".join(str(d) for d in in_shape) + ")")
        return tuple(in_shape)

    def _input(self, x):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: input dtype is {x.dtype}, but a floating array is needed")
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input (N, K, ...) with at least 2 dimensions, got shape "
                             f"{x.shape}")
        return np.ascontiguousarray(x), self._axis(x.ndim, str(x.shape))


class Softmax(_AlongDim):
    """Softmax along ``dim`` (default 1). x: (N, ...) -> y: same shape, each slice along dim sums to 1."""
    kind = "Softmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, axis = self._input(x)
        if x.size == 0:
            y = np.array(x, copy=True)
        else:
            e = np.exp(x - x.max(axis=axis, keepdims=True))           # every exponent <= 0
            y = e / e.sum(axis=axis, keepdims=True)                    # (N, ...)
        self._cache = SoftmaxCache(y=y, axis=axis)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = np.ascontiguousarray(self._check_grad(grad_y, cache.y.shape))
        y = cache.y
        return y * (g - (g * y).sum(axis=cache.axis, keepdims=True))


class LogSoftmax(_AlongDim):
    """Log of the softmax along ``dim`` (default 1), computed as x - m - log S (no log of a rounded p)."""
    kind = "LogSoftmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, axis = self._input(x)
        if x.size == 0:
            y = np.array(x, copy=True)
        else:
            d = x - x.max(axis=axis, keepdims=True)                    # x - m, <= 0
            y = d - np.log(np.exp(d).sum(axis=axis, keepdims=True))    # (N, ...)
        self._cache = SoftmaxCache(y=y, axis=axis)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = np.ascontiguousarray(self._check_grad(grad_y, cache.y.shape))
        p = np.exp(cache.y)                                            # the softmax probabilities
        return g - p * g.sum(axis=cache.axis, keepdims=True)
