"""ReLU in the executor: one fused pass over the memory, in the input's own layout.

``relu_forward`` writes y = max(x, 0) and the mask x > 0 in one pass, ``relu_backward`` is a
branch-free select (``np.where`` on a random mask mispredicts a branch per element:
benchmarks/PERFORMANCE.md, 'Fused ReLU kernels'). Both work on the flat memory, so a channel-major
activation stays channel-major. Same rule as ``tinycnn.layers.activation.ReLU``: ReLU'(0) = 0, NaN
stays NaN forward and gets gradient 0. float16/longdouble input runs the layer's plain code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...kernels import elementwise
from ..layout import as_view, is_channel_major, to_channel_major
from .base import Op


@dataclass(frozen=True)
class FlatLayout:
    """How an activation lies in memory: C order, or channel-major (C, H, W, N) behind an (N, C, H, W)
    view. ``flat`` gives its elements in memory order (a view when the array already has that
    layout, else a copy); ``unflat`` rebuilds an array of the same shape and layout from such a vector."""
    shape: tuple
    channel_major: bool

    @classmethod
    def of(cls, x):
        return cls(shape=x.shape, channel_major=is_channel_major(x))

    def flat(self, a):
        if self.channel_major:
            return to_channel_major(a).reshape(-1)                     # (C, H, W, N) memory, flat
        return np.ascontiguousarray(a).reshape(-1)

    def unflat(self, v):
        if self.channel_major:
            n, c, h, w = self.shape
            return as_view(v.reshape(c, h, w, n))                      # (N, C, H, W) view
        return v.reshape(self.shape)


@dataclass
class ReLUOpCache:
    positive: np.ndarray      # bool (size,): where x > 0, flat in x's memory order
    layout: FlatLayout        # x's shape and memory layout


class ReLUOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        alloc = self.cfg.alloc
        self.cache = None                                              # the old mask can be recycled
        layout = FlatLayout.of(x)
        y, positive = self.launch(elementwise.relu_forward, x.size, layout.flat(x),
                                  alloc.empty((x.size,), x.dtype), alloc.empty((x.size,), np.bool_))
        self.cache = ReLUOpCache(positive=positive, layout=layout)
        return layout.unflat(y)

    def backward(self, g, input_grad=True):
        cache = self.cache
        layout = cache.layout
        gx = self.launch(elementwise.relu_backward, g.size, cache.positive, layout.flat(g),
                         self.cfg.alloc.empty((g.size,), g.dtype))
        return layout.unflat(gx)
