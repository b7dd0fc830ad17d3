"""MaxPool2D and AvgPool2D over NCHW input (PyTorch's semantics, floor mode).

    x: (N, C, H, W) -> y: (N, C, OH, OW),  OH = (H + 2*ph - KH) // sh + 1  (likewise OW)

stride defaults to kernel_size. Padding may be at most half the kernel (2*padding <= kernel), as in
PyTorch: otherwise a window could lie wholly in the padding.

Max pooling::

    y[n, c, oh, ow] = max over the window of x         (padding is -inf: it never wins)
    dx[winner]     += g[n, c, oh, ow]                  (every other pixel of the window gets 0)

Subgradient rule for ties: the whole gradient goes to one element, the *first* maximum in row-major
order inside the window; a NaN anywhere in the window wins (it propagates), as PyTorch's CPU kernel
does. Overlapping windows add up at a pixel that wins several of them.

Average pooling counts padded zeros in the mean (divisor KH*KW always) and spreads the gradient
evenly: ``dx[pixel] += g / (KH*KW)`` for every window the pixel lies in.

The loops live in ``tinycnn.kernels.pool``, each beside a plain reference written as Python loops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from .base import Layer, check_input, pair
from .conv import output_size_or_raise


@dataclass
class MaxPoolCache:
    argmax: np.ndarray        # int64 (N, C, OH, OW): flat index ih*W + iw of each window's winner
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)


@dataclass
class AvgPoolCache:
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)


class _Pool2D(Layer):
    kind = "Pool2D"

    def __init__(self, kernel_size, stride=None, padding=0):
        name = self.kind
        self.kernel_size = pair(kernel_size, "kernel_size", name, minimum=1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name, minimum=1)
        self.padding = pair(padding, "padding", name, minimum=0)
        for axis, k, p in zip(("height", "width"), self.kernel_size, self.padding):
            if 2 * p > k:
                raise ValueError(
                    f"{self!r}: padding {p} is more than half the kernel {axis} {k}; "
                    f"padding must satisfy 2*padding <= kernel_size (here 2*{p} = {2 * p} > {k})"
                )
        self._cache = None

    def __repr__(self):
        return f"{self.kind}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding})"

    def output_shape(self, in_shape):
        """(C, H, W) -> (C, OH, OW)."""
        c, h, w = in_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (c, output_size_or_raise(repr(self), "height", h, kh, sh, ph),
                output_size_or_raise(repr(self), "width", w, kw, sw, pw))

    def _input(self, x):
        """x checked: a C-contiguous float32/float64 (N, C, H, W) array whose windows fit."""
        x = check_input(self, x, 4, "(N, C, H, W)")
        check_kernel_dtype(self, x.dtype, "input")
        self.output_shape(x.shape[1:])
        return x

    def _grad(self, grad_y, expected_shape):
        g = np.ascontiguousarray(self._check_grad(grad_y, expected_shape))
        check_kernel_dtype(self, g.dtype, "grad_y")
        return g


def check_kernel_dtype(layer, dtype, what):
    """The pooling kernels are compiled for float32 and float64 only (float16 and longdouble would
    reach Numba and fail there with a typing error)."""
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer!r}: {what} dtype is {dtype}; pooling runs in float32 or float64, "
                        f"convert it first, e.g. x.astype(np.float32)")


class MaxPool2D(_Pool2D):
    kind = "MaxPool2D"

    def forward(self, x):
        """x: (N, C, H, W) -> y: (N, C, OH, OW)."""
        x = self._input(x)
        y, argmax = kernels.maxpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding)
        self._cache = MaxPoolCache(argmax=argmax, x_shape=x.shape, y_shape=y.shape)
        return y

    def backward(self, grad_y):
        """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W), each gradient routed to its window's winner."""
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape)
        _, _, h, w = cache.x_shape
        return kernels.maxpool2d_backward(g, cache.argmax, h, w)


class AvgPool2D(_Pool2D):
    """Average pooling; zero padding counts in the average (divisor KH*KW), as in PyTorch."""
    kind = "AvgPool2D"

    def forward(self, x):
        """x: (N, C, H, W) -> y: (N, C, OH, OW)."""
        x = self._input(x)
        y = kernels.avgpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding)
        self._cache = AvgPoolCache(x_shape=x.shape, y_shape=y.shape)
        return y

    def backward(self, grad_y):
        """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W), each g / (KH*KW) spread over its window."""
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape)
        _, _, h, w = cache.x_shape
        return kernels.avgpool2d_backward(g, h, w, *self.kernel_size, *self.stride, *self.padding)
