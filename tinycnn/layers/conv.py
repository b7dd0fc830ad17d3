"""Conv2D: cross-correlation through im2col and one matrix multiply.

Forward (N images, C -> O channels, kernel KH x KW)::

    cols = im2col(x)                      # cols: (C*KH*KW, N*OH*OW)
    out  = w2d @ cols + b[:, None]        # w2d: (O, C*KH*KW), out: (O, N*OH*OW)
    y    = out as (N, O, OH, OW)

Backward, with g = grad_y laid out like ``out``, g2d: (O, N*OH*OW)::

    dW    = g2d @ cols.T                  # (O, C*KH*KW): each weight sees every window it touched
    db    = g2d.sum(axis=1)               # (O,)
    dcols = w2d.T @ g2d                   # (C*KH*KW, N*OH*OW)
    dx    = col2im(dcols)                 # adjoint of im2col: overlapping windows add up

Like PyTorch (and unlike the textbook definition) this is cross-correlation: the kernel is not flipped.

This file is the definition, and reads as the equations above. The fast executor (``tinycnn.fast``)
computes the same thing with other memory layouts and buffers; ``tests/test_fast_equals_plain.py``
holds the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from .base import Layer, Parameter, check_input, float_dtype, kaiming_uniform, pair, positive_int


@dataclass
class ConvCache:
    cols: np.ndarray          # (C*KH*KW, N*OH*OW): the input's windows, one per column
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)


def output_size_or_raise(owner: str, axis: str, size: int, k: int, s: int, p: int) -> int:
    """``(size + 2p - k) // s + 1``, or a ValueError that shows that formula with the numbers."""
    out = kernels.conv_output_size(size, k, s, p)
    if size + 2 * p < k:
        raise ValueError(
            f"{owner}: kernel {axis} {k} is larger than the padded input {axis} "
            f"{size} + 2*{p} = {size + 2 * p}; output {axis} = (in + 2*padding - kernel) // stride + 1 "
            f"= ({size} + 2*{p} - {k}) // {s} + 1 = {out}"
        )
    return out


class Conv2D(Layer):
    """2-D convolution (cross-correlation) over NCHW input.

    weight: (out_channels, in_channels, KH, KW); bias: (out_channels,).
    x: (N, in_channels, H, W) -> y: (N, out_channels, OH, OW),
    OH = (H + 2*ph - KH) // sh + 1, OW = (W + 2*pw - KW) // sw + 1.
    """
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, *,
                 dtype=np.float32, rng=None):
        name = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = pair(kernel_size, "kernel_size", name, minimum=1)
        self.stride = pair(stride, "stride", name, minimum=1)
        self.padding = pair(padding, "padding", name, minimum=0)
        self.dtype = float_dtype(dtype, name)
        rng = np.random.default_rng() if rng is None else rng
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        self.weight = Parameter(kaiming_uniform(rng, (self.out_channels, self.in_channels, kh, kw),
                                                fan_in, self.dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, self.dtype)) if bias else None
        self._cache: ConvCache | None = None

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")

    def output_shape(self, in_shape):
        """(C, H, W) -> (O, OH, OW), raising a clear error if the input cannot fit."""
        c, h, w = in_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels, got {c} "
                             f"(input shape (C, H, W) = {tuple(in_shape)})")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = output_size_or_raise(repr(self), "height", h, kh, sh, ph)
        ow = output_size_or_raise(repr(self), "width", w, kw, sw, pw)
        return (self.out_channels, oh, ow)

    def forward(self, x):
        """x: (N, C, H, W) -> y: (N, O, OH, OW)."""
        x = check_input(self, x, 4, "(N, C, H, W)", self.dtype)         # C-contiguous, layer dtype
        n = x.shape[0]
        _, oh, ow = self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        cols = kernels.im2col(x, kh, kw, sh, sw, ph, pw)                # (C*KH*KW, N*OH*OW)
        w2d = self.weight.data.reshape(self.out_channels, -1)           # (O, C*KH*KW)
        out = w2d @ cols                                                # (O, N*OH*OW)
        if self.bias is not None:
            out += self.bias.data[:, None]
        y = out.reshape(self.out_channels, n, oh, ow).transpose(1, 0, 2, 3)   # (N, O, OH, OW)
        self._cache = ConvCache(cols=cols, x_shape=x.shape, y_shape=y.shape)
        return np.ascontiguousarray(y)

    def backward(self, grad_y):
        """grad_y: (N, O, OH, OW) -> grad_x: (N, C, H, W); writes weight.grad and bias.grad."""
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y_shape).astype(self.dtype, copy=False)
        n, c, h, w = cache.x_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        g2d = g.transpose(1, 0, 2, 3).reshape(self.out_channels, -1)   # (O, N*OH*OW), like ``out``
        w2d = self.weight.data.reshape(self.out_channels, -1)           # (O, C*KH*KW)
        self.weight.grad = (g2d @ cache.cols.T).reshape(self.weight.data.shape)   # dW = g2d @ cols.T
        if self.bias is not None:
            self.bias.grad = g2d.sum(axis=1)                            # db = g2d.sum(axis=1)
        dcols = w2d.T @ g2d                                             # (C*KH*KW, N*OH*OW)
        return kernels.col2im(dcols, n, c, h, w, kh, kw, sh, sw, ph, pw)   # dx: (N, C, H, W)
