"""Fused elementwise kernels for ReLU (and a residual join's sum + ReLU), each beside a plain NumPy
reference with the same signature.

They work on flat (1-D) arrays, so a caller can hand them any layout by flattening the memory in
order (``a.reshape(-1)`` of a C-contiguous array, or of a channel-major array's transpose).

    relu_forward(x) -> (y, positive):  y = max(x, 0) (NaN stays NaN), positive = x > 0   one pass
    relu_backward(positive, g) -> gx:  gx = g where positive, else 0 (ReLU'(0) = 0)      one pass
    add_relu_forward(a, b, y, positive) -> (y, positive):
                                       s = a + b, y = max(s, 0), positive = s > 0          one pass

Each takes optional output arrays (``y=``, ``positive=``, ``out=``: flat, of the right length and
dtype) to write into instead of allocating; the layers pass recycled buffers (``layers/buffers.py``).

Why (benchmarks/PERFORMANCE.md, 'Fused ReLU kernels'): ``np.where(positive, g, 0)`` on a mask that is true about half
the time, in no pattern, runs a branch per element that the CPU mispredicts: 6.8 ms for the 1.8 M elements of
the seed CNN's first activation at batch 64, against ~0.3 ms for a branch-free select. And the
forward's ``np.maximum`` plus ``x > 0`` are two passes where one will do.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange


def relu_forward_reference(x, y=None, positive=None):
    """x: (n,) -> (y: (n,) max(x, 0) with NaN kept, positive: bool (n,) x > 0). Plain NumPy."""
    y = np.maximum(x, x.dtype.type(0), out=y)
    positive = np.greater(x, 0, out=positive)
    return y, positive


def relu_backward_reference(positive, g, out=None):
    """positive: bool (n,), g: (n,) -> (n,) g where positive else 0. Plain NumPy."""
    if out is None:
        return np.where(positive, g, g.dtype.type(0))
    out[...] = np.where(positive, g, g.dtype.type(0))
    return out


@jit(parallel=True)
def relu_forward(x, y=None, positive=None):
    """x: (n,) -> (y, positive), one pass, parallel over the elements."""
    n = x.shape[0]
    if y is None:
        y = np.empty(n, dtype=x.dtype)
    if positive is None:
        positive = np.empty(n, dtype=np.bool_)
    for i in prange(n):
        v = x[i]
        p = v > 0
        positive[i] = p
        y[i] = v if (p or v != v) else 0.0       # NaN: v != v keeps it, as np.maximum does
    return y, positive


@jit(parallel=True)
def relu_backward(positive, g, out=None):
    """positive: bool (n,), g: (n,) -> (n,), a select with no branch, parallel over the elements."""
    n = g.shape[0]
    if out is None:
        out = np.empty(n, dtype=g.dtype)
    for i in prange(n):
        out[i] = g[i] if positive[i] else 0.0
    return out


def add_relu_forward_reference(a, b, y, positive):
    """a, b: (n,) -> writes y = max(a + b, 0) (NaN kept) and positive = a + b > 0, returns them."""
    s = a + b
    np.maximum(s, s.dtype.type(0), out=y)
    np.greater(s, 0, out=positive)
    return y, positive


@jit(parallel=True)
def add_relu_forward(a, b, y, positive):
    """See the reference: one pass where the plain code makes three (copy, add, ReLU)."""
    n = a.shape[0]
    for i in prange(n):
        v = a[i] + b[i]
        p = v > 0
        positive[i] = p
        y[i] = v if (p or v != v) else 0.0
    return y, positive
