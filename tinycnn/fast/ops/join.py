"""The graph's joins: "add" (a residual block's y = f(x) + shortcut(x)) and "concat" (branches joined
along channels). Their backward is where a graph's gradients split:

    add:     y = x_1 + ... + x_k              dL/dx_i = g for every i   (the same array, read-only)
    concat:  y = [x_1 | ... | x_k] on dim     dL/dx_i = g[..., c_i : c_i + C_i, ...] (its slice)

(The other half of the rule, that a value read by several nodes gets the *sum* of their
gradients, is in ``Plan.backward``.)
"""
from __future__ import annotations

import numpy as np

from .base import Op


class AddOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, *xs):
        self.cache = len(xs)
        y = np.array(xs[0], copy=True)
        for x in xs[1:]:
            y += x
        return y

    def backward(self, g, input_grad=True):
        return tuple(g for _ in range(self.cache))


class ConcatOp(Op):
    """``layer``: the Concat container (for its ``dim``)."""

    @property
    def per_sample(self):
        return True

    def forward(self, *xs):
        dim = self.layer.dim
        axis = dim if dim >= 0 else xs[0].ndim + dim
        self.cache = (axis, [x.shape[axis] for x in xs])               # the axis, each input's size on it
        return np.concatenate([np.ascontiguousarray(x) for x in xs], axis=axis)

    def backward(self, g, input_grad=True):
        axis, sizes = self.cache
        out, start = [], 0
        for c in sizes:
            index = [slice(None)] * g.ndim
            index[axis] = slice(start, start + c)
            out.append(g[tuple(index)])
            start += c
        return tuple(out)
