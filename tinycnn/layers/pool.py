"""MaxPool2D and AvgPool2D over NCHW input (PyTorch's semantics, floor mode).

    x: (N, C, H, W) -> y: (N, C, OH, OW),  OH = (H + 2*ph - KH) // sh + 1  (likewise OW)

stride defaults to kernel_size. Padding may be at most half the kernel (2*padding <= kernel), as in
PyTorch: otherwise a window could lie wholly in the padding.

Max pooling backward routes each gradient to the window's winner; ties go to the first maximum in
row-major order inside the window (see ``tinycnn.kernels.pool``). Average pooling counts padded zeros
in the mean (divisor KH*KW always) and spreads the gradient evenly.

Layout: MaxPool2D gives its output (and the input gradient) back in the input's memory layout, so
a channel-major activation from Conv2D stays channel-major (see ``layout.py``); AvgPool2D returns
C order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import kernels
from . import buffers
from .base import Layer, check_input, pair
from .conv import output_size_or_raise
from .layout import as_view, is_channel_major, to_channel_major


@dataclass
class MaxPoolCache:
    argmax: np.ndarray        # int64 (C, OH, OW, N) or (N, C, OH, OW): flat index ih*W + iw of each winner
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    channel_major: bool       # True: the kernels ran on (C, H, W, N) memory (see _prepare)


@dataclass
class AvgPoolCache:
    x_shape: tuple            # (N, C, H, W); average pooling always works in C order
    y_shape: tuple            # (N, C, OH, OW)


class _Pool2D(Layer):
    per_sample = True

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

    def _prepare(self, x, keep_channel_major):
        """-> (arr, channel_major): ``x`` checked and C-contiguous for the kernels.

        A channel-major input (``layout.py``) is handed over as its (C, H, W, N) memory with no copy
        when ``keep_channel_major`` (max pooling has kernels for that layout), and the result comes
        back in the same layout; any other input becomes a C-ordered (N, C, H, W) array."""
        cm = keep_channel_major and isinstance(x, np.ndarray) and is_channel_major(x)
        if not cm:
            x = np.ascontiguousarray(check_input(self, x, 4, "(N, C, H, W)"))
        _check_kernel_dtype(self, x.dtype, "input")
        self.output_shape(x.shape[1:])
        return (to_channel_major(x) if cm else x), cm

    def _grad(self, grad_y, expected_shape, channel_major):
        """grad_y checked (shape, floating), C-contiguous float32/float64, laid out as the forward's
        input was (see ``_prepare``): (C, OH, OW, N) if channel-major, else (N, C, OH, OW)."""
        g = self._check_grad(grad_y, expected_shape)
        _check_kernel_dtype(self, g.dtype, "grad_y")
        return to_channel_major(g) if channel_major else np.ascontiguousarray(g)


def _check_kernel_dtype(layer, dtype, what):
    """The pooling kernels are compiled for float32 and float64 only (float16 and longdouble would
    reach Numba and fail there with a typing error)."""
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer!r}: {what} dtype is {dtype}; pooling runs in float32 or float64, "
                        f"convert it first, e.g. x.astype(np.float32)")


class MaxPool2D(_Pool2D):
    kind = "MaxPool2D"

    def forward(self, x):
        arr, cm = self._prepare(x, keep_channel_major=True)            # (C, H, W, N) or (N, C, H, W)
        args = (*self.kernel_size, *self.stride, *self.padding)
        self._cache = None                                             # its argmax can be recycled now
        if cm:
            c, h, w, n = arr.shape
            _, oh, ow = self.output_shape((c, h, w))
            y, argmax = kernels.launch(kernels.maxpool2d_forward_cm, arr.size, arr, *args,
                                       buffers.empty((c, oh, ow, n), arr.dtype),
                                       buffers.empty((c, oh, ow, n), np.int64))
            x_shape, y = (n, c, h, w), as_view(y)                      # y: (N, C, OH, OW) view
        else:
            n, c, h, w = arr.shape
            _, oh, ow = self.output_shape((c, h, w))
            y, argmax = kernels.launch(kernels.maxpool2d_forward, arr.size, arr, *args,
                                       buffers.empty((n, c, oh, ow), arr.dtype),
                                       buffers.empty((n, c, oh, ow), np.int64))
            x_shape = arr.shape
        self._cache = MaxPoolCache(argmax=argmax, x_shape=x_shape, y_shape=y.shape, channel_major=cm)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape, cache.channel_major)
        n, c, h, w = cache.x_shape
        if cache.channel_major:                                        # g: (C, OH, OW, N)
            gx = kernels.launch(kernels.maxpool2d_backward_cm, n * c * h * w, g, cache.argmax, h, w,
                                buffers.empty((c, h, w, n), g.dtype))
            return as_view(gx)                                         # (N, C, H, W) view
        return kernels.launch(kernels.maxpool2d_backward, n * c * h * w, g, cache.argmax, h, w,
                              buffers.empty((n, c, h, w), g.dtype))


class AvgPool2D(_Pool2D):
    """Average pooling. Its kernels work on C-ordered (N, C, H, W) arrays; a channel-major input is
    copied into that order first (no network in this project's benchmarks uses it)."""
    kind = "AvgPool2D"

    def forward(self, x):
        arr, _ = self._prepare(x, keep_channel_major=False)            # (N, C, H, W)
        y = kernels.launch(kernels.avgpool2d_forward, arr.size, arr, *self.kernel_size, *self.stride, *self.padding)
        self._cache = AvgPoolCache(x_shape=arr.shape, y_shape=y.shape)
        return y

    def backward(self, grad_y):
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache.y_shape, False)                   # (N, C, OH, OW)
        _, _, h, w = cache.x_shape
        n, c = cache.x_shape[:2]
        return kernels.launch(kernels.avgpool2d_backward, n * c * h * w, g, h, w, *self.kernel_size,
                              *self.stride, *self.padding)
