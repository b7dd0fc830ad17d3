"""MaxPool2D and AvgPool2D over NCHW input (PyTorch's semantics, floor mode).

    x: (N, C, H, W) -> y: (N, C, OH, OW),  OH = (H + 2*ph - KH) // sh + 1  (likewise OW)

stride defaults to kernel_size. Padding may be at most half the kernel (2*padding <= kernel), as in
PyTorch: otherwise a window could lie wholly in the padding.

Max pooling backward routes each gradient to the window's winner; ties go to the first maximum in
row-major order inside the window (see ``tinycnn.kernels.pool``). Average pooling counts padded zeros
in the mean (divisor KH*KW always) and spreads the gradient evenly.

Layout: the output (and the input gradient) come back in the input's memory layout, so a
channel-major activation from Conv2D stays channel-major (see ``layout.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from . import buffers
from .base import Layer, check_input, pair
from .conv import output_size_or_raise
from .layout import is_channel_major, to_channel_major


@dataclass
class MaxPoolCache:
    argmax: np.ndarray        # int64 planes (A, B, OH, OW): flat index ih*W + iw of each window's winner
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    channel_major: bool       # planes are (C, N) if True, else (N, C): see _planes


@dataclass
class AvgPoolCache:
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    channel_major: bool


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

    def _prepare(self, x):
        """-> (planes, channel_major): ``x`` checked, as C-contiguous (A, B, H, W) planes for the kernels.

        Pooling works on each (H, W) plane alone, so the order of the two leading axes does not matter
        to it: a channel-major input (``layout.py``) is pooled as (C, N) planes with no copy, and the
        result handed back in the same layout; any other input is made C-ordered (N, C) planes."""
        if not (isinstance(x, np.ndarray) and is_channel_major(x)):
            x = check_input(self, x, 4, "(N, C, H, W)")
        _check_kernel_dtype(self, x.dtype, "input")
        self.output_shape(x.shape[1:])
        cm = is_channel_major(x)
        return (x.transpose(1, 0, 2, 3) if cm else x), cm

    def _grad(self, grad_y, expected_shape, channel_major):
        """grad_y checked (shape, floating) and as C-contiguous float32/float64 planes laid out as the
        forward's (see ``_prepare``)."""
        g = self._check_grad(grad_y, expected_shape)
        _check_kernel_dtype(self, g.dtype, "grad_y")
        return to_channel_major(g) if channel_major else np.ascontiguousarray(g)

    @staticmethod
    def _unplanes(a, channel_major):
        """Kernel result planes -> the (N, C, ., .) array the user sees (a view when channel-major)."""
        return a.transpose(1, 0, 2, 3) if channel_major else a


def _check_kernel_dtype(layer, dtype, what):
    """The pooling kernels are compiled for float32 and float64 only (float16 and longdouble would
    reach Numba and fail there with a typing error)."""
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer!r}: {what} dtype is {dtype}; pooling runs in float32 or float64, "
                        f"convert it first, e.g. x.astype(np.float32)")


class MaxPool2D(_Pool2D):
    kind = "MaxPool2D"

    def forward(self, x):
        planes, cm = self._prepare(x)                                  # (A, B, H, W)
        a, b = planes.shape[:2]
        _, oh, ow = self.output_shape(self._unplanes(planes, cm).shape[1:])
        self._cache = None                                             # its argmax can be recycled now
        y, argmax = kernels.maxpool2d_forward(planes, *self.kernel_size, *self.stride, *self.padding,
                                              buffers.empty((a, b, oh, ow), planes.dtype),
                                              buffers.empty((a, b, oh, ow), np.int64))
        y = self._unplanes(y, cm)                                      # (N, C, OH, OW)
        self._cache = MaxPoolCache(argmax=argmax, x_shape=self._unplanes(planes, cm).shape,
                                   y_shape=y.shape, channel_major=cm)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape, cache.channel_major)    # (A, B, OH, OW)
        _, _, h, w = cache.x_shape
        gx = kernels.maxpool2d_backward(g, cache.argmax, h, w, buffers.empty((*g.shape[:2], h, w), g.dtype))
        return self._unplanes(gx, cache.channel_major)


class AvgPool2D(_Pool2D):
    kind = "AvgPool2D"

    def forward(self, x):
        planes, cm = self._prepare(x)                                  # (A, B, H, W)
        y = self._unplanes(kernels.avgpool2d_forward(planes, *self.kernel_size, *self.stride, *self.padding), cm)
        self._cache = AvgPoolCache(x_shape=self._unplanes(planes, cm).shape, y_shape=y.shape, channel_major=cm)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape, cache.channel_major)    # (A, B, OH, OW)
        _, _, h, w = cache.x_shape
        gx = kernels.avgpool2d_backward(g, h, w, *self.kernel_size, *self.stride, *self.padding)
        return self._unplanes(gx, cache.channel_major)
