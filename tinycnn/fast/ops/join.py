"""The graph's joins: "add" (a residual block's y = f(x) + shortcut(x)) and "concat" (branches joined
along channels). Their backward is where a graph's gradients split:

    add:     y = x_1 + ... + x_k              dL/dx_i = g for every i   (the same array, read-only)
    concat:  y = [x_1 | ... | x_k] on dim     dL/dx_i = g[..., c_i : c_i + C_i, ...] (its slice)

(The other half of the rule, that a value read by several nodes gets the *sum* of their
gradients, is in ``Plan.backward``.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...kernels import elementwise
from .base import Op
from .relu import FlatLayout


@dataclass
class AddOpCache:
    inputs: int                       # how many inputs were added
    positive: np.ndarray | None       # with a fused ReLU: bool (size,) sum > 0, flat in y's memory order
    layout: FlatLayout | None         # with a fused ReLU: y's shape and memory layout


class AddOp(Op):
    """The sum of the inputs; with ``cfg.fuse_relu`` (the fusion pass: a residual block's post ReLU)
    also its ReLU: two inputs of the same shape and memory layout in one pass
    (``elementwise.add_relu_forward``), else the sum and then the ReLU kernel in place. Backward
    masks g once and hands the same masked array to every input."""

    @property
    def per_sample(self):
        return True

    def forward(self, *xs):
        self.cache = None                                              # the old mask can be recycled
        alloc = self.cfg.alloc
        if not self.cfg.fuse_relu:
            y = np.array(xs[0], copy=True)
            for x in xs[1:]:
                y += x
            self.cache = AddOpCache(inputs=len(xs), positive=None, layout=None)
            return y
        layout = FlatLayout.of(xs[0])
        positive = alloc.empty((xs[0].size,), np.bool_)
        same = (len(xs) == 2 and xs[0].dtype == xs[1].dtype and xs[0].shape == xs[1].shape
                and FlatLayout.of(xs[1]) == layout)
        if same:
            y = alloc.empty((xs[0].size,), xs[0].dtype)
            self.launch(elementwise.add_relu_forward, y.size, layout.flat(xs[0]), layout.flat(xs[1]), y, positive)
        else:
            s = np.array(xs[0], copy=True)
            for x in xs[1:]:
                s += x
            layout = FlatLayout.of(s)
            y = layout.flat(s)                                         # s's own memory: the ReLU in place
            self.launch(elementwise.relu_forward, y.size, y, y, positive)
        self.cache = AddOpCache(inputs=len(xs), positive=positive, layout=layout)
        return layout.unflat(y)

    def backward(self, g, input_grad=True):
        cache = self.cache
        if cache.positive is not None:                                 # the fused ReLU's mask
            layout = cache.layout
            g = layout.unflat(self.launch(elementwise.relu_backward, g.size, cache.positive, layout.flat(g),
                                          self.cfg.alloc.empty((g.size,), g.dtype)))
        return tuple(g for _ in range(cache.inputs))


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
