"""MaxPool2D and AvgPool2D over NCHW input (PyTorch's semantics, every argument).

    x: (N, C, H, W) -> y: (N, C, OH, OW)        (or one unbatched image (C, H, W) -> (C, OH, OW))
    OH = floor_or_ceil((H + 2*ph - dh*(KH - 1) - 1) / sh) + 1     (likewise OW; dh = 1 for AvgPool2D)

stride defaults to kernel_size. Padding may be at most half the kernel (2*padding <= kernel), as in
PyTorch: otherwise a window could lie wholly in the padding. With ``ceil_mode`` the division rounds
up, but (torch's rule) a last window that would start in the right padding is dropped: every window
starts inside the input or the left padding (``kernels.pool_output_size``).

Max pooling (``dilation`` spaces the window's taps ``dh`` rows and ``dw`` columns apart)::

    y[n, c, oh, ow] = max over the window's taps of x      (padding is -inf: it never wins)
    dx[winner]     += g[n, c, oh, ow]                      (every other pixel of the window gets 0)

Subgradient rule for ties: the whole gradient goes to one element, the *first* maximum in row-major
order inside the window; a NaN anywhere in the window wins (it propagates), as PyTorch's CPU kernel
does. Overlapping windows add up at a pixel that wins several of them.

Average pooling: the sum of the window's real pixels divided by ``d`` (torch's ``avg_pool2d``)::

    d = divisor_override                      if given
      = (window cells inside input + padding) if count_include_pad (KH*KW but for a ceil-mode window
                                              that runs past the padding, which counts only up to it)
      = (window cells inside the input)       otherwise
    y[n, c, oh, ow] = sum(window) / d,        dx[pixel] += g[n, c, oh, ow] / d for every window it is in

The loops live in ``tinycnn.kernels.pool``, each beside a plain reference written as Python loops.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .. import kernels
from .._typing import IntPair
from .base import Layer, check_image_input, pair, unbatch
from .conv import output_size_or_raise


@dataclass
class MaxPoolCache:
    argmax: np.ndarray        # int64 (N, C, OH, OW): flat index ih*W + iw of each window's winner
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    unbatched: bool           # the input was one (C, H, W) image


@dataclass
class AvgPoolCache:
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, C, OH, OW)
    unbatched: bool


def _flag(value, name: str, owner: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


class _Pool2D(Layer):
    kind = "Pool2D"

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False) -> None:
        name = self.kind
        self.kernel_size = pair(kernel_size, "kernel_size", name, minimum=1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", name, minimum=1)
        self.padding = pair(padding, "padding", name, minimum=0)
        self.ceil_mode = _flag(ceil_mode, "ceil_mode", name)
        for axis, k, p in zip(("height", "width"), self.kernel_size, self.padding):
            if 2 * p > k:
                raise ValueError(
                    f"{self!r}: padding {p} is more than half the kernel {axis} {k}; "
                    f"padding must satisfy 2*padding <= kernel_size (here 2*{p} = {2 * p} > {k})"
                )
        self._cache = None

    def _extra_repr(self) -> str:
        return ", ceil_mode=True" if getattr(self, "ceil_mode", False) else ""

    def __repr__(self) -> str:
        return (f"{self.kind}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f"{self._extra_repr()})")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, H, W) -> (C, OH, OW)."""
        c, h, w = in_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        dh, dw = getattr(self, "dilation", (1, 1))          # MaxPool2D's; average pooling has none
        if not self.ceil_mode:
            return (c, output_size_or_raise(repr(self), "height", h, kh, sh, ph, dh),
                    output_size_or_raise(repr(self), "width", w, kw, sw, pw, dw))
        out = [c]
        for axis, n, k, s, p, d in (("height", h, kh, sh, ph, dh), ("width", w, kw, sw, pw, dw)):
            size = kernels.pool_output_size(n, k, s, p, d, True)
            if size < 1:
                raise ValueError(
                    f"{self!r}: output {axis} = ceil((in + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1 "
                    f"= ceil(({n} + 2*{p} - {d}*({k} - 1) - 1) / {s}) + 1 = {size} < 1: the "
                    f"{'dilated ' if d > 1 else ''}kernel does not fit in the padded input {axis} {n + 2 * p}")
            out.append(size)
        return tuple(out)

    def _input(self, x):
        """x checked: a C-contiguous float32/float64 (N, C, H, W) array whose windows fit, and whether
        it came as one unbatched (C, H, W) image."""
        x, unbatched = check_image_input(self, x)
        check_kernel_dtype(self, x.dtype, "input")
        self.output_shape(x.shape[1:])
        return x, unbatched

    def _grad(self, grad_y, cache):
        expected = cache.y_shape[1:] if cache.unbatched else cache.y_shape
        g = np.ascontiguousarray(self._check_grad(grad_y, expected)).reshape(cache.y_shape)
        check_kernel_dtype(self, g.dtype, "grad_y")
        return g


def check_kernel_dtype(layer, dtype, what):
    """The pooling kernels are compiled for float32 and float64 only (float16 and longdouble would
    reach Numba and fail there with a typing error)."""
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{layer!r}: {what} dtype is {dtype}; pooling runs in float32 or float64, "
                        f"convert it first, e.g. x.astype(np.float32)")


class MaxPool2D(_Pool2D):
    """Max pooling; ``dilation`` and ``ceil_mode`` as in ``torch.nn.MaxPool2d``."""
    kind = "MaxPool2D"

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 dilation: IntPair = 1, *, ceil_mode: bool = False) -> None:
        # (ceil_mode keyword-only: torch's fifth positional argument is return_indices)
        self.dilation = pair(dilation, "dilation", self.kind, minimum=1)
        super().__init__(kernel_size, stride, padding, ceil_mode)

    def _extra_repr(self) -> str:
        return (f", dilation={self.dilation}" if self.dilation != (1, 1) else "") + super()._extra_repr()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> y: (N, C, OH, OW); or (C, H, W) -> (C, OH, OW)."""
        x, unbatched = self._input(x)
        y, argmax = kernels.maxpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding, None, None,
                                              *self.dilation, self.ceil_mode)
        self._cache = MaxPoolCache(argmax=argmax, x_shape=x.shape, y_shape=y.shape, unbatched=unbatched)
        return unbatch(y, unbatched)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W), each gradient routed to its window's winner."""
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache)
        _, _, h, w = cache.x_shape
        return unbatch(kernels.maxpool2d_backward(g, cache.argmax, h, w), cache.unbatched)


class AvgPool2D(_Pool2D):
    """Average pooling; ``ceil_mode``, ``count_include_pad`` (default True: zero padding counts in the
    divisor) and ``divisor_override`` as in ``torch.nn.AvgPool2d``."""
    kind = "AvgPool2D"

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = _flag(count_include_pad, "count_include_pad", self.kind)
        if divisor_override is not None and (not isinstance(divisor_override, numbers.Integral)
                                             or isinstance(divisor_override, bool) or divisor_override < 1):
            raise ValueError(f"{self.kind}: divisor_override must be None or a positive integer, "
                             f"got {divisor_override!r}")
        self.divisor_override = None if divisor_override is None else int(divisor_override)

    def _extra_repr(self) -> str:
        extra = super()._extra_repr()
        if not getattr(self, "count_include_pad", True):      # (repr may run before __init__ ends)
            extra += ", count_include_pad=False"
        if getattr(self, "divisor_override", None) is not None:
            extra += f", divisor_override={self.divisor_override}"
        return extra

    def _options(self):
        """The kernels' trailing arguments: ceil_mode, count_include_pad, divisor (0: none)."""
        return self.ceil_mode, self.count_include_pad, self.divisor_override or 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> y: (N, C, OH, OW); or (C, H, W) -> (C, OH, OW)."""
        x, unbatched = self._input(x)
        y = kernels.avgpool2d_forward(x, *self.kernel_size, *self.stride, *self.padding, *self._options())
        self._cache = AvgPoolCache(x_shape=x.shape, y_shape=y.shape, unbatched=unbatched)
        return unbatch(y, unbatched)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W), each g / d spread over its window's pixels."""
        cache = self._need_cache(self._cache)
        g = self._grad(grad_y, cache)
        _, _, h, w = cache.x_shape
        return unbatch(kernels.avgpool2d_backward(g, h, w, *self.kernel_size, *self.stride, *self.padding,
                                                  *self._options()), cache.unbatched)
