"""Benchmark-only: ReLU and 2 x 2 max pooling fused into one pass each way (proposal C in NOTES.md).

Not part of tinycnn. It exists to measure what fusing would buy before anyone changes Sequential.
ReLU then MaxPool2D(2) computes, per window, the first maximum of r = max(x, 0) (NaN kept, as
np.maximum does) and routes the gradient to that winner times ReLU'(x) = [x > 0]. The fused pass
does the same comparisons on the same r values, so the result is bit-for-bit the shipped layers'
(``whatif.check_same_values`` verifies it on every run), and because the pooled value y equals the
winner's r, [winner x > 0] is simply [y > 0]: the backward needs no ReLU mask at all.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinycnn.layers.layout import is_channel_major


@njit(parallel=True, cache=False)
def relu_maxpool2x2_forward(x):
    """x: (A, B, H, W) planes -> y: (A, B, H//2, W//2) max of max(x, 0), argmax: int64 flat ih*W + iw."""
    a, b, h, w = x.shape
    oh, ow = h // 2, w // 2
    y = np.empty((a, b, oh, ow), dtype=x.dtype)
    argmax = np.empty((a, b, oh, ow), dtype=np.int64)
    for p in prange(a * b):
        i = p // b
        j = p % b
        for yo in range(oh):
            i0 = 2 * yo
            for xo in range(ow):                    # unrolled: loops of two cost more than the work
                j0 = 2 * xo
                v = x[i, j, i0, j0]
                best = v if (v > 0 or v != v) else 0.0      # ReLU, NaN kept
                where = i0 * w + j0
                v = x[i, j, i0, j0 + 1]
                r = v if (v > 0 or v != v) else 0.0
                if r > best or r != r:
                    best = r
                    where = i0 * w + j0 + 1
                v = x[i, j, i0 + 1, j0]
                r = v if (v > 0 or v != v) else 0.0
                if r > best or r != r:
                    best = r
                    where = (i0 + 1) * w + j0
                v = x[i, j, i0 + 1, j0 + 1]
                r = v if (v > 0 or v != v) else 0.0
                if r > best or r != r:
                    best = r
                    where = (i0 + 1) * w + j0 + 1
                y[i, j, yo, xo] = best
                argmax[i, j, yo, xo] = where
    return y, argmax


@njit(parallel=True, cache=False)
def relu_maxpool2x2_backward(g, y, argmax, h, w):
    """g, y, argmax: (A, B, OH, OW) -> dx: (A, B, H, W); the winner gets g where y > 0."""
    a, b, oh, ow = g.shape
    dx = np.zeros((a, b, h * w), dtype=g.dtype)
    for p in prange(a * b):
        i = p // b
        j = p % b
        for yo in range(oh):
            for xo in range(ow):
                if y[i, j, yo, xo] > 0:
                    dx[i, j, argmax[i, j, yo, xo]] = g[i, j, yo, xo]
    return dx.reshape(a, b, h, w)


class FusedReLUMaxPool2x2:
    """Stands in for ``ReLU(), MaxPool2D(2)`` inside a benchmark model; keeps the input's layout."""

    def parameters(self):
        return []

    def named_parameters(self):
        return {}

    def named_buffers(self):
        return {}

    def train(self, mode=True):
        return self

    def output_shape(self, in_shape):
        c, h, w = in_shape
        return (c, h // 2, w // 2)

    def forward(self, x):
        self.cm = is_channel_major(x)
        planes = x.transpose(1, 0, 2, 3) if self.cm else np.ascontiguousarray(x)
        self.h, self.w = planes.shape[2:]
        self.y, self.argmax = relu_maxpool2x2_forward(planes)
        return self.y.transpose(1, 0, 2, 3) if self.cm else self.y

    def backward(self, grad_y):
        g = np.asarray(grad_y)
        g = np.ascontiguousarray(g.transpose(1, 0, 2, 3)) if self.cm else np.ascontiguousarray(g)
        dx = relu_maxpool2x2_backward(g, self.y, self.argmax, self.h, self.w)
        return dx.transpose(1, 0, 2, 3) if self.cm else dx
