"""GELU (exact, erf form) in the executor: one pass forward, one multiply backward, in the input's
own memory layout.

``gelu_forward`` writes y = x Phi(x) and the slope GELU'(x) = Phi(x) + x phi(x) in one pass over the
flat memory, evaluating erfc once per element (``tinycnn.kernels.gelu``); backward is
``g * slope``. The layer evaluates erfc in forward and again in backward, through ``np.vectorize``.
A channel-major activation stays channel-major. Only ``approximate='none'`` has this op (the tanh
form runs the layer's own code).
"""
from __future__ import annotations

from dataclasses import dataclass

from ... import kernels
from .base import Op
from .relu import FlatLayout


@dataclass
class GELUOpCache:
    slope: object             # (size,) GELU'(x) in x's dtype, flat in x's memory order
    layout: FlatLayout        # x's shape and memory layout


class GELUOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        alloc = self.cfg.alloc
        self.cache = None                                              # the old slope can be recycled
        layout = FlatLayout.of(x)
        y, slope = self.launch(kernels.gelu_forward, x.size, layout.flat(x),
                               alloc.empty((x.size,), x.dtype), alloc.empty((x.size,), x.dtype))
        self.cache = GELUOpCache(slope=slope, layout=layout)
        return layout.unflat(y)

    def backward(self, g, input_grad=True):
        cache = self.cache
        layout = cache.layout
        dt = cache.slope.dtype
        gx = self.launch(kernels.gelu_backward, g.size, cache.slope, layout.flat(g).astype(dt, copy=False),
                         self.cfg.alloc.empty((g.size,), dt))
        return layout.unflat(gx)
