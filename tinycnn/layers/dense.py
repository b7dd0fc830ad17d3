"""Flatten and Dense (fully connected).

Flatten: (N, d1, d2, ...) -> (N, d1*d2*...), in C order (so it matches torch.nn.Flatten on NCHW).

Dense:   x: (N, in) -> y = x @ W.T + b: (N, out);  W: (out, in), b: (out,)
         dW = g.T @ x: (out, in);  db = g.sum(0): (out,);  dx = g @ W: (N, in)
         (the products go through ``kernels.matmul``: BLAS single-threaded, split over tinycnn's threads)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from .base import Layer, Parameter, check_input, float_dtype, kaiming_uniform, positive_int


@dataclass
class FlattenCache:
    x_shape: tuple


@dataclass
class DenseCache:
    x: np.ndarray             # (N, in)


class Flatten(Layer):
    per_sample = True

    def __init__(self):
        self._cache = None

    def __repr__(self):
        return "Flatten()"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{self!r}: input dtype is {x.dtype}, but a floating array is needed")
        if x.ndim < 2:
            raise ValueError(f"{self!r}: expected input (N, ...) with at least 2 dimensions, got shape {x.shape}")
        self._cache = FlattenCache(x_shape=x.shape)
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        n = cache.x_shape[0]
        g = self._check_grad(grad_y, (n, int(np.prod(cache.x_shape[1:]))))
        return g.reshape(cache.x_shape)


class Dense(Layer):
    """Fully connected layer. weight: (out_features, in_features); bias: (out_features,)."""
    per_sample = True


    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        name = "Dense"
        self.in_features = positive_int(in_features, "in_features", name)
        self.out_features = positive_int(out_features, "out_features", name)
        self.dtype = float_dtype(dtype, name)
        rng = np.random.default_rng() if rng is None else rng
        self.weight = Parameter(kaiming_uniform(rng, (self.out_features, self.in_features),
                                                self.in_features, self.dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_features,), self.in_features, self.dtype)) if bias else None
        self._cache = None

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features})"

    def named_parameters(self):
        named = {"weight": self.weight}
        if self.bias is not None:
            named["bias"] = self.bias
        return named

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ValueError(f"{self!r}: expected a flat (features,) input per sample, got {tuple(in_shape)}; "
                             f"put a Flatten() before this layer")
        if in_shape[0] != self.in_features:
            raise ValueError(f"{self!r}: expected {self.in_features} input features, got {in_shape[0]}")
        return (self.out_features,)

    def forward(self, x):
        x = check_input(self, x, 2, "(N, in_features)", self.dtype)
        self.output_shape(x.shape[1:])
        self._cache = DenseCache(x=x)
        y = kernels.matmul(x, self.weight.data.T, np.empty((x.shape[0], self.out_features), self.dtype))  # (N, out)
        if self.bias is not None:
            y += self.bias.data
        return y

    can_skip_input_grad = True

    def backward(self, grad_y, input_grad=True):
        """grad_y: (N, out) -> grad_x: (N, in), or None with ``input_grad=False`` (weights only)."""
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, (cache.x.shape[0], self.out_features))
        # C order whatever the caller's layout: g.sum's summation order depends on the memory layout
        g = np.ascontiguousarray(g, dtype=self.dtype)
        self.weight.grad = kernels.matmul(g.T, cache.x, np.empty(self.weight.data.shape, self.dtype))  # (out, in)
        if self.bias is not None:
            self.bias.grad = g.sum(axis=0)          # (out,)
        if not input_grad:
            return None
        return kernels.matmul(g, self.weight.data, np.empty(cache.x.shape, self.dtype))   # (N, in)
