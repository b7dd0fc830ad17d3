"""Dense and Flatten in the executor.

Dense: the layer's three products (y = X W^T + b, dW = G^T X, dX = G W) through ``self.matmul``
(split over tinycnn's threads with BLAS single-threaded when the threads pass says so), and
``backward(g, input_grad=False)`` forms only dW and db. Flatten: a channel-major input is copied
into C order once (the flattened features must be (C, H, W)-ordered per sample, as torch's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Op


@dataclass
class DenseOpCache:
    x2d: np.ndarray           # (M, in), C order
    x_shape: tuple            # (N, ..., in)


class DenseOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        layer = self.layer
        x2d = np.ascontiguousarray(x, dtype=layer.dtype).reshape(-1, layer.in_features)   # (M, in)
        y = self.matmul(x2d, layer.weight.data.T, np.empty((x2d.shape[0], layer.out_features), layer.dtype))
        if layer.bias is not None:
            y += layer.bias.data
        self.cache = DenseOpCache(x2d=x2d, x_shape=x.shape)
        return y.reshape(*x.shape[:-1], layer.out_features)

    def backward(self, g, input_grad=True):
        layer, cache = self.layer, self.cache
        g2d = np.ascontiguousarray(g, dtype=layer.dtype).reshape(-1, layer.out_features)   # (M, out)
        self.grads = {"weight": self.matmul(g2d.T, cache.x2d, np.empty(layer.weight.data.shape, layer.dtype))}
        if layer.bias is not None:
            self.grads["bias"] = g2d.sum(axis=0)                       # (out,)
        if not input_grad:
            return None
        return self.matmul(g2d, layer.weight.data, np.empty(cache.x2d.shape, layer.dtype)).reshape(cache.x_shape)


class FlattenOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        self.cache = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], int(np.prod(x.shape[1:])))

    def backward(self, g, input_grad=True):
        return g.reshape(self.cache)
