"""The graph's joins: "add" (a residual block's y = f(x) + shortcut(x)) and "concat" (branches joined
along channels). Their backward is where a graph's gradients split:

    add:     y = x_1 + ... + x_k              dL/dx_i = g for every i   (the same array, read-only)
    concat:  y = [x_1 | ... | x_k] on axis 1  dL/dx_i = g[:, c_i : c_i + C_i]

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
    @property
    def per_sample(self):
        return True

    def forward(self, *xs):
        self.cache = [x.shape[1] for x in xs]                  # channels per input
        return np.concatenate([np.ascontiguousarray(x) for x in xs], axis=1)

    def backward(self, g, input_grad=True):
        out, start = [], 0
        for c in self.cache:
            out.append(g[:, start:start + c])
            start += c
        return tuple(out)
