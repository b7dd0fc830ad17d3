"""Depthwise Conv2D in the executor: ``groups == in_channels``, each channel convolved on its own.

The layer (``tinycnn.layers.conv``) computes a grouped convolution as one matrix product per group;
with one input channel per group those products are (M, KH*KW) @ (KH*KW, N*OH*OW), M the
multiplier (out_channels // in_channels): too thin for BLAS, and the im2col copy in front of them
moves KH*KW times the input. This op sums the taps in place instead (``tinycnn.kernels.depthwise``:
the equations, the threading and the error bounds), on channel-major memory:

* layout: the input is read as (C, H, W, N) memory (a free view when the op before was fast, one
  transpose copy otherwise); the output (O, OH, OW, N) and the input gradient (C, H, W, N) are
  handed on as (N, ., ., .) views with ``cfg.channel_major``, else copied into C order (as ConvOp).
* the bias is added by the forward kernel as it starts each row (``cfg.bias_in_gemm`` is ConvOp's
  and not read here); its gradient comes with the weight gradient's pass over g.
* memory: the output and the input gradient come from ``cfg.alloc``; the op keeps the input's
  channel-major memory for the weight gradient (nothing is copied for it when it came so).
* ``backward(g, input_grad=False)`` forms only dW and db; a frozen weight (``requires_grad`` False)
  skips the weight-gradient kernel (a trainable bias then gets the float64 sum of g alone).
* threads: each kernel is launched through ``self.launch``: its serial twin inside a lane or for
  small work, so two lanes never launch the parallel variant at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ..layout import as_view, to_channel_major
from .base import Op, trainable


@dataclass
class DepthwiseConvOpCache:
    xs: np.ndarray            # (C, H, W, N) the input, channel-major, layer dtype (None: not needed)
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)


def _padding(layer) -> tuple[int, int]:
    """(ph, pw): the op runs only symmetric zero padding, dilation 1 (``ops.make_op`` checks)."""
    (ph, _), (pw, _) = layer.padding_amounts
    return ph, pw


def _weight(layer) -> np.ndarray:
    """The (O, 1, KH, KW) weight as a C-contiguous (O, KH, KW) array in the layer's dtype."""
    o = layer.out_channels
    kh, kw = layer.kernel_size
    return np.ascontiguousarray(layer.weight.data, dtype=layer.dtype).reshape(o, kh, kw)


class DepthwiseConvOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        layer, cfg = self.layer, self.cfg
        self.cache = None
        n, c, h, w = x.shape
        o, oh, ow = layer.output_shape((c, h, w))                      # raises the layer's clear errors
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        dt = layer.dtype
        xs = to_channel_major(x, dt)                                   # (C, H, W, N): free if already so
        b = (np.ascontiguousarray(layer.bias.data, dtype=dt) if layer.bias is not None
             else np.empty(0, dt))                                     # (O,) or (0,): no bias
        out = cfg.alloc.empty((o, oh, ow, n), dt)                      # (O, OH, OW, N), every element written
        self.launch(kernels.depthwise_forward, out.size * kh * kw, xs, _weight(layer), b, sh, sw, ph, pw, out)
        y = as_view(out)                                               # (N, O, OH, OW) view
        self.cache = DepthwiseConvOpCache(xs=xs, x_shape=(n, c, h, w), y_shape=y.shape)
        return y if cfg.channel_major else np.ascontiguousarray(y)

    def backward(self, g, input_grad=True):
        layer, cfg, cache = self.layer, self.cfg, self.cache
        n, c, h, w = cache.x_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        o = layer.out_channels
        dt = layer.dtype
        gs = to_channel_major(g, dt)                                   # (O, OH, OW, N)
        self.grads = {}
        bias_grad = layer.bias is not None and trainable(layer.bias)
        if trainable(layer.weight):
            dw = np.empty((o, kh, kw), dt)
            db = np.empty(o if bias_grad else 0, dt)                   # length 0: no bias gradient
            self.launch(kernels.depthwise_backward_weight, gs.size * kh * kw, cache.xs, gs, sh, sw, ph, pw, dw, db)
            self.grads["weight"] = dw.reshape(layer.weight.data.shape)  # (O, 1, KH, KW)
            if bias_grad:
                self.grads["bias"] = db
        elif bias_grad:                                                # a frozen weight: g's sums alone
            self.grads["bias"] = gs.reshape(o, -1).sum(axis=1, dtype=np.float64).astype(dt)
        if not input_grad:
            return None
        dxs = cfg.alloc.empty((c, h, w, n), dt)                        # (C, H, W, N), every element written
        self.launch(kernels.depthwise_backward_input, gs.size * kh * kw, gs, _weight(layer), sh, sw, ph, pw, dxs)
        gx = as_view(dxs)                                              # (N, C, H, W) view
        return gx if cfg.channel_major else np.ascontiguousarray(gx)
