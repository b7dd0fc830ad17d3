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

from .base import Layer


def _check_float(layer, x):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed")
    return x


@dataclass
class ReLUCache:
    positive: np.ndarray      # bool, shape of x: where x > 0 (the gradient passes only there)


@dataclass
class SigmoidCache:
    y: np.ndarray             # the output, shape of x


@dataclass
class TanhCache:
    y: np.ndarray             # the output, shape of x


class ReLU(Layer):
    def __init__(self) -> None:
        self._cache = None

    def __repr__(self) -> str:
        return "ReLU()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = max(x, 0), any shape; NaN stays NaN."""
        x = _check_float(self, x)
        self._cache = ReLUCache(positive=x > 0)          # False at 0 and at NaN: ReLU'(0) = 0
        return np.maximum(x, x.dtype.type(0))            # NaN propagates through np.maximum

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """dx = g where x > 0, else 0."""
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.positive.shape)
        return np.where(cache.positive, g, g.dtype.type(0))


class Sigmoid(Layer):
    def __init__(self) -> None:
        self._cache = None

    def __repr__(self) -> str:
        return "Sigmoid()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_float(self, x)
        # exp of a non-positive number only: no overflow for any x.
        e = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self._cache = SigmoidCache(y=y)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y.shape)
        y = cache.y
        return g * (1 - y) * y


class Tanh(Layer):
    def __init__(self) -> None:
        self._cache = None

    def __repr__(self) -> str:
        return "Tanh()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_float(self, x)
        # Evaluate in float64 (exact for float32 input), round once to x's dtype.
        y = np.tanh(x.astype(np.float64, copy=False)).astype(x.dtype, copy=False)
        self._cache = TanhCache(y=y)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y.shape)
        y = cache.y
        return g * (1 - y * y)                # dtanh/dx = 1 - tanh(x)**2
