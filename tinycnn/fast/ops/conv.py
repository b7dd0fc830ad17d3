"""Conv2D in the executor: the layer's four equations on channel-major memory.

Same mathematics as ``tinycnn.layers.conv`` (read that first); what differs is only where numbers
live and which routine moves them:

* layout: the input is read as (C, H, W, N) memory (a free view when the op before was fast, one
  transpose copy otherwise); ``im2col_cm`` writes columns in (OH, OW, N) order, so ``w2d @ cols`` *is*
  the channel-major output (O, OH, OW, N) and the gradient that comes back is a free (O, OH*OW*N)
  view. With ``cfg.channel_major`` off, the output and the input gradient are copied into C order.
* fusion (``cfg.bias_in_gemm``): ``cols`` gets one more row of ones and ``w2d`` the bias as one more
  column, so ``out = [w2d | b] @ [cols; 1]`` adds the bias inside the product, and the last row of the
  weight-gradient product is ``db = g2d.sum(axis=1)``: no pass over the output or the gradient.
* the weight gradient is computed as its transpose, ``dW.T = cols @ g2d.T`` (same sums; the long
  reduction runs faster that way in OpenBLAS: benchmarks/PERFORMANCE.md, 'Weight gradient as its
  transpose').
* memory: ``out`` comes from the allocator (recycled from step to step); ``cols`` and ``dcols`` from
  its scratch buffer: ``cols`` dies at forward's product and is formed again from the kept input
  ``xs`` for the weight gradient (one more im2col per step, against keeping a C*KH*KW-fold copy of
  every convolution's input from forward to backward; benchmarks/PERFORMANCE.md, 'Columns formed
  again in backward'), ``dcols`` dies at col2im.
* ``backward(g, input_grad=False)`` forms only dW and db (the prune pass asks that of the first layer).
* a 1x1 convolution with stride 1 and no padding: its columns *are* the input, so ``cols`` is the
  free (C, H*W*N) view of ``xs`` and the input gradient's product writes the (C, H, W, N) result
  itself (no im2col, no col2im; without the bias row, which would need a copy).
* a frozen weight (``requires_grad`` False) skips the weight-gradient product (a trainable bias
  then gets ``g2d.sum(axis=1)``): the frozen first convolution of a whitened network.
* ``cfg.conv_blocks`` (the blocks pass): a thin layer (small weight matrix, long columns) on one
  thread runs in cache-sized blocks of output pixels (``ops/conv_blocks.py``); backward follows the
  path forward took.
* ``cfg.winograd`` (the winograd pass): a 3x3, stride-1 layer whose output is large enough runs
  Winograd F(2x2, 3x3) instead (``ops/winograd.py``); backward follows the path forward took.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ..layout import as_view, to_channel_major
from . import conv_blocks, winograd
from .base import Op, trainable


@dataclass
class ConvOpCache:
    xs: np.ndarray            # (C, H, W, N): the input, channel-major, for the weight gradient's im2col
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)


def _padding(layer) -> tuple[int, int]:
    """(ph, pw) from the layer's resolved padding (numbers, 'valid' or 'same'): the op runs only
    symmetric padding, groups 1 and dilation 1 (``ops.make_op`` sends other layers to PlainOp)."""
    (ph, _), (pw, _) = layer.padding_amounts
    return ph, pw


def _pointwise(layer, bias_row: bool) -> bool:
    """True for a 1x1, stride-1, unpadded convolution without the bias row: its im2col is the identity."""
    return (tuple(layer.kernel_size) == (1, 1) and tuple(layer.stride) == (1, 1)
            and _padding(layer) == (0, 0) and not bias_row)


class ConvOp(Op):
    @property
    def per_sample(self):
        return True

    def forward(self, x):
        layer, cfg = self.layer, self.cfg
        self.cache = None                                              # its kept input may be recycled now
        n, c, h, w = x.shape
        _, oh, ow = layer.output_shape((c, h, w))
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        if cfg.winograd and winograd.pays(h, w, ph, pw):
            return winograd.forward(self, x)
        k = c * kh * kw
        o = layer.out_channels
        bias_row = layer.bias is not None and cfg.bias_in_gemm
        xs = to_channel_major(x, layer.dtype)                          # (C, H, W, N): free if already so
        if cfg.conv_blocks and conv_blocks.pays(k, n, oh * ow, xs.itemsize):
            out = cfg.alloc.empty((o, oh * ow * n), layer.dtype)       # (O, OH*OW*N) = (O, OH, OW, N)
            self.cache = conv_blocks.forward(self, layer, xs, kh, kw, sh, sw, ph, pw, out)
            y = as_view(out.reshape(o, oh, ow, n))                     # (N, O, OH, OW) view
            return y if cfg.channel_major else np.ascontiguousarray(y)
        if _pointwise(layer, bias_row):
            cols = xs.reshape(k, oh * ow * n)                          # (C, H*W*N): the input itself
        else:
            cols = cfg.alloc.scratch((k + bias_row, oh * ow * n), layer.dtype)  # (C*KH*KW [+1], OH*OW*N)
            self.launch(kernels.im2col_cm, cols.size, xs, kh, kw, sh, sw, ph, pw, cols[:k])
        w2d = layer.weight.data.reshape(o, k)                          # (O, C*KH*KW)
        if bias_row:
            cols[k] = 1                                                # the bias's input: always 1
            w2d = np.concatenate([w2d, layer.bias.data[:, None]], axis=1)   # (O, C*KH*KW + 1)
        out = cfg.alloc.empty((o, oh * ow * n), layer.dtype)           # (O, OH*OW*N) = (O, OH, OW, N)
        self.matmul(w2d, cols, out)                                    # out = w2d @ cols
        if layer.bias is not None and not bias_row:
            out += layer.bias.data[:, None]
        y = as_view(out.reshape(o, oh, ow, n))                         # (N, O, OH, OW) view
        self.cache = ConvOpCache(xs=xs, x_shape=(n, c, h, w), y_shape=y.shape)
        return y if cfg.channel_major else np.ascontiguousarray(y)

    def backward(self, g, input_grad=True):
        layer, cfg, cache = self.layer, self.cfg, self.cache
        if isinstance(cache, winograd.WinogradCache):
            return winograd.backward(self, g, input_grad)
        if isinstance(cache, conv_blocks.BlockedConvCache):
            return self._blocked_backward(g, input_grad)
        n, c, h, w = cache.x_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        k = c * kh * kw
        o = layer.out_channels
        g2d = to_channel_major(g, layer.dtype).reshape(o, -1)          # (O, OH*OW*N)
        self.grads = {}
        if trainable(layer.weight):
            bias_row = layer.bias is not None and cfg.bias_in_gemm
            if _pointwise(layer, bias_row):
                cols = cache.xs.reshape(k, g2d.shape[1])               # (C, H*W*N): the input itself
            else:
                cols = cfg.alloc.scratch((k + bias_row, g2d.shape[1]), layer.dtype)   # forward's columns again
                self.launch(kernels.im2col_cm, k * g2d.shape[1], cache.xs, kh, kw, sh, sw, ph, pw, cols[:k])
                if bias_row:
                    cols[k] = 1
            dwt = np.empty((cols.shape[0], o), layer.dtype)            # (C*KH*KW [+1], O)
            self.matmul(cols, g2d.T, dwt)                              # dW.T = cols @ g2d.T
            self.grads["weight"] = np.ascontiguousarray(dwt[:k].T).reshape(layer.weight.data.shape)
            if layer.bias is not None and trainable(layer.bias):
                # the ones row's product is g2d.sum(axis=1); without it, the sum itself
                self.grads["bias"] = dwt[k].copy() if dwt.shape[0] > k else g2d.sum(axis=1)
        elif layer.bias is not None and trainable(layer.bias):          # a frozen weight: no product
            self.grads["bias"] = g2d.sum(axis=1)
        if not input_grad:
            return None
        gx = as_view(self._input_gradient(g2d, cache.x_shape))         # (N, C, H, W) view
        return gx if cfg.channel_major else np.ascontiguousarray(gx)

    def _input_gradient(self, g2d, x_shape):
        """dxs (C, H, W, N) from g2d (O, OH*OW*N) through one product: dcols = w2d.T @ g2d, col2im
        (a 1x1 stride-1 unpadded layer: the product is dxs itself)."""
        layer, cfg = self.layer, self.cfg
        n, c, h, w = x_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        k, o = c * kh * kw, layer.out_channels
        w2d = layer.weight.data.reshape(o, k)                          # (O, C*KH*KW)
        if _pointwise(layer, False):                                   # dcols *is* the input gradient
            dxs = cfg.alloc.empty((c, h, w, n), layer.dtype)           # (C, H, W, N)
            self.matmul(w2d.T, g2d, dxs.reshape(k, g2d.shape[1]))      # dx = w2d.T @ g2d
            return dxs
        dcols = cfg.alloc.scratch((k, g2d.shape[1]), layer.dtype)      # (C*KH*KW, OH*OW*N); cols is dead
        self.matmul(w2d.T, g2d, dcols)                                 # dcols = w2d.T @ g2d
        return self.launch(kernels.col2im_cm, dcols.size, dcols, c, n, h, w, kh, kw, sh, sw, ph, pw,
                           out=cfg.alloc.empty((c, h, w, n), layer.dtype))   # (C, H, W, N)

    def _blocked_backward(self, g, input_grad):
        """Backward of a forward that ran in blocks (``conv_blocks``): dW and db block by block, dx as
        the blocked convolution of g (stride 1) or through one product."""
        layer, cfg, cache = self.layer, self.cfg, self.cache
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, _padding(layer)
        o = layer.out_channels
        g_cm = to_channel_major(g, layer.dtype)                        # (O, OH, OW, N)
        g2d = g_cm.reshape(o, -1)                                      # (O, OH*OW*N)
        self.grads = {}
        bias_grad = layer.bias is not None and trainable(layer.bias)
        if trainable(layer.weight):
            dwt, db = conv_blocks.weight_gradient(self, cache.xs, g2d, kh, kw, sh, sw, ph, pw, bias_grad)
            self.grads["weight"] = np.ascontiguousarray(dwt.T).reshape(layer.weight.data.shape)
            if bias_grad:
                self.grads["bias"] = db
        elif bias_grad:                                                # a frozen weight: no product
            self.grads["bias"] = g2d.sum(axis=1)
        if not input_grad:
            return None
        if conv_blocks.input_gradient_blocked(layer):
            dxs = conv_blocks.input_gradient(self, layer, g_cm, cache.x_shape)   # (C, H, W, N)
        else:
            dxs = self._input_gradient(g2d, cache.x_shape)
        gx = as_view(dxs)                                              # (N, C, H, W) view
        return gx if cfg.channel_major else np.ascontiguousarray(gx)
