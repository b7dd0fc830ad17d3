"""MaxPool2D in the executor: the layer's kernels, on the layout its input comes in.

A channel-major input (a view of (C, H, W, N) memory) is pooled by the ``_cm`` kernels, which run
their innermost loops over the N contiguous images, and the output and the input gradient stay
channel-major; any other input takes the NCHW kernels. Same windows, tie rule and winners as
``tinycnn.layers.pool`` (``tests/test_kernels.py`` holds the two kernel families equal). Outputs,
winners and gradients come from the allocator. AvgPool2D's op runs the layer's NCHW kernels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ..layout import as_view, is_channel_major, to_channel_major
from .base import Op


@dataclass
class MaxPoolOpCache:
    argmax: np.ndarray        # int64 (C, OH, OW, N) or (N, C, OH, OW): flat index ih*W + iw of each winner
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    channel_major: bool       # True: the kernels ran on (C, H, W, N) memory


class MaxPoolOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        layer, alloc = self.layer, self.cfg.alloc
        self.cache = None                                              # its argmax can be recycled now
        args = (*layer.kernel_size, *layer.stride, *layer.padding)
        n, c, h, w = x.shape
        _, oh, ow = layer.output_shape((c, h, w))
        cm = is_channel_major(x)
        if cm:
            xs = to_channel_major(x)                                   # (C, H, W, N), no copy
            y, argmax = self.launch(kernels.maxpool2d_forward_cm, xs.size, xs, *args,
                                    alloc.empty((c, oh, ow, n), x.dtype), alloc.empty((c, oh, ow, n), np.int64))
            y = as_view(y)                                             # (N, C, OH, OW) view
        else:
            x = np.ascontiguousarray(x)
            y, argmax = self.launch(kernels.maxpool2d_forward, x.size, x, *args,
                                    alloc.empty((n, c, oh, ow), x.dtype), alloc.empty((n, c, oh, ow), np.int64))
        self.cache = MaxPoolOpCache(argmax=argmax, x_shape=(n, c, h, w), y_shape=y.shape, channel_major=cm)
        return y

    def backward(self, g, input_grad=True):
        cache, alloc = self.cache, self.cfg.alloc
        n, c, h, w = cache.x_shape
        if cache.channel_major:
            gs = to_channel_major(g)                                   # (C, OH, OW, N)
            gx = self.launch(kernels.maxpool2d_backward_cm, n * c * h * w, gs, cache.argmax, h, w,
                             alloc.empty((c, h, w, n), gs.dtype))
            return as_view(gx)                                         # (N, C, H, W) view
        g = np.ascontiguousarray(g)
        return self.launch(kernels.maxpool2d_backward, n * c * h * w, g, cache.argmax, h, w,
                           alloc.empty((n, c, h, w), g.dtype))


@dataclass
class AvgPoolOpCache:
    x_shape: tuple            # (N, C, H, W)


class AvgPoolOp(Op):
    """AvgPool2D: the layer's kernels on C-ordered memory (a channel-major input is copied first: no
    network of the benchmarks uses average pooling), launched serially inside a lane."""

    @property
    def per_sample(self):
        return True

    def forward(self, x):
        layer = self.layer
        x = np.ascontiguousarray(x)                                    # (N, C, H, W)
        self.cache = AvgPoolOpCache(x_shape=x.shape)
        return self.launch(kernels.avgpool2d_forward, x.size, x, *layer.kernel_size, *layer.stride, *layer.padding)

    def backward(self, g, input_grad=True):
        layer = self.layer
        n, c, h, w = self.cache.x_shape
        g = np.ascontiguousarray(g)
        return self.launch(kernels.avgpool2d_backward, n * c * h * w, g, h, w, *layer.kernel_size, *layer.stride,
                           *layer.padding)
