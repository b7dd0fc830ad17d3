"""Flatten and Dense (fully connected).

Flatten: (N, d1, d2, ...) -> (N, d1*d2*...), in C order (so it matches torch.nn.Flatten on NCHW).

Dense, on x: (N, in) -- or any (N, ..., in), as torch.nn.Linear: the leading axes are rows of one
matrix X: (M, in), M = N * ...::

    y  = X @ W.T + b            # (M, out);  W: (out, in), b: (out,)
    dW = G.T @ X                # (out, in): the sum over rows of g_m x_m^T
    db = G.sum(axis=0)          # (out,)
    dX = G @ W                  # (M, in)

with G the upstream gradient as (M, out); y and dX get the leading axes back.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .base import Layer, Parameter, float_dtype, kaiming_uniform, positive_int


@dataclass
class FlattenCache:
    x_shape: tuple


@dataclass
class DenseCache:
    x2d: np.ndarray           # (M, in): the input with its leading axes as rows
    x_shape: tuple            # (N, ..., in)


def _check_float(layer, x):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{layer!r}: input dtype is {x.dtype}, but a floating array is needed")
    return x


class Flatten(Layer):
    def __init__(self) -> None:
        self._cache = None

    def __repr__(self) -> str:
        return "Flatten()"

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(np.prod(in_shape)),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, d1, d2, ...) -> (N, d1*d2*...)."""
        x = _check_float(self, x)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input (N, ...) with at least 2 dimensions, got shape {x.shape}")
        self._cache = FlattenCache(x_shape=x.shape)
        return np.ascontiguousarray(x).reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        n = cache.x_shape[0]
        g = self._check_grad(grad_y, (n, int(np.prod(cache.x_shape[1:]))))
        return g.reshape(cache.x_shape)


class Dense(Layer):
    """Fully connected layer. weight: (out_features, in_features); bias: (out_features,).

    x: (N, ..., in_features) -> y: (N, ..., out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype: DTypeLike = np.float32,
                 rng: np.random.Generator | None = None) -> None:
        name = "Dense"
        self.in_features = positive_int(in_features, "in_features", name)
        self.out_features = positive_int(out_features, "out_features", name)
        self.dtype = float_dtype(dtype, name)
        rng = np.random.default_rng() if rng is None else rng
        self.weight = Parameter(kaiming_uniform(rng, (self.out_features, self.in_features),
                                                self.in_features, self.dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_features,), self.in_features,
                                              self.dtype)) if bias else None
        self._cache = None

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}" + (", bias=False)" if self.bias is None else ")")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(..., in_features) per sample -> (..., out_features)."""
        if len(in_shape) < 1:
            raise ValueError(f"{self!r}: expected (..., {self.in_features}) features per sample, got shape ()")
        if in_shape[-1] != self.in_features:
            extra = "" if len(in_shape) == 1 else (f" on the last axis of the per-sample shape {tuple(in_shape)}; "
                                                   f"put a Flatten() before this layer to flatten an image")
            raise ValueError(f"{self!r}: expected {self.in_features} input features, got {in_shape[-1]}{extra}")
        return (*in_shape[:-1], self.out_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, ..., in) -> y: (N, ..., out)."""
        x = _check_float(self, x)
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected a 2-D input (N, in_features) or more axes (N, ..., "
                             f"in_features), got {x.ndim}-D input of shape {x.shape}")
        if x.ndim > 2 and x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: expected a 2-D input (N, in_features), got {x.ndim}-D input of shape "
                             f"{x.shape}, whose last axis is {x.shape[-1]}, not {self.in_features} (inputs "
                             f"(N, ..., in_features) are accepted too); put a Flatten() before this layer")
        self.output_shape(x.shape[1:])
        x2d = np.ascontiguousarray(x, dtype=self.dtype).reshape(-1, self.in_features)   # X: (M, in)
        y = x2d @ self.weight.data.T                                    # (M, out)
        if self.bias is not None:
            y += self.bias.data
        self._cache = DenseCache(x2d=x2d, x_shape=x.shape)
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """grad_y: (N, ..., out) -> grad_x: (N, ..., in); writes weight.grad and bias.grad."""
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, (*cache.x_shape[:-1], self.out_features))
        g2d = np.ascontiguousarray(g, dtype=self.dtype).reshape(-1, self.out_features)   # G: (M, out)
        self.weight.grad = g2d.T @ cache.x2d                           # dW = G.T @ X: (out, in)
        if self.bias is not None:
            self.bias.grad = g2d.sum(axis=0)                           # db: (out,)
        return (g2d @ self.weight.data).reshape(cache.x_shape)         # dX = G @ W
