"""Conv2D: cross-correlation through im2col and one matrix multiply per group.

Forward (N images, C -> O channels in G groups, kernel KH x KW; Cg = C/G, Og = O/G)::

    cols = im2col(x)                      # cols: (C*KH*KW, N*OH*OW), rows channel-major
    cols_g = cols as (G, Cg*KH*KW, M)     # M = N*OH*OW; group g's rows are its Cg channels' rows
    w_g  = weight as (G, Og, Cg*KH*KW)    # weight: (O, Cg, KH, KW), output channels grouped in order
    out  = (w_g @ cols_g) as (O, M) + b[:, None]
    y    = out as (N, O, OH, OW)

Each group is an ordinary convolution of its Cg input channels to its Og output channels; G = 1 is
the usual convolution, G = C (``groups=in_channels``) the depthwise one.

Backward, with g = grad_y laid out like ``out``, g_g = g2d as (G, Og, M)::

    dW_g   = g_g @ cols_g.T               # (G, Og, Cg*KH*KW): each weight sees every window it touched
    db     = g2d.sum(axis=1)              # (O,)
    dcols_g = w_g.T @ g_g                 # (G, Cg*KH*KW, M)
    dx     = col2im(dcols)                # adjoint of im2col: overlapping windows add up

Window geometry (torch's ``conv2d``): tap (i, j) of output (oh, ow) reads input pixel
``(oh*sh - pt + i*dh, ow*sw - pl + j*dw)``; outside the input it reads zero padding. ``padding`` is
an int, an (h, w) pair (the same amount before and after), ``'valid'`` (none) or ``'same'``: per axis
total = dilation*(kernel - 1), before = total // 2, after = total - before (the odd pixel goes after,
as torch does), which keeps OH = H and OW = W; torch refuses ``'same'`` with a stride > 1 and so does
this layer. OH = (H + pt + pb - dh*(KH - 1) - 1) // sh + 1 (likewise OW).

``padding_mode`` (torch's): ``'zeros'`` (the default) is the zero padding above, done inside im2col;
``'reflect'``, ``'replicate'`` and ``'circular'`` pad the input explicitly with copies of its own
pixels (``tinycnn.layers.padding``), by the same amounts, and the convolution then runs with padding 0::

    xp = pad(x, mode)                     # (N, C, H + pt + pb, W + pl + pr)
    y  = conv(xp, padding=0)              # the equations above on xp
    dx = pad_backward(col2im(dcols))      # each padded copy's gradient added into the pixel it copies

Like PyTorch (and unlike the textbook definition) this is cross-correlation: the kernel is not flipped.
A 3-D input (C, H, W) is one unbatched image, as in torch: the output is (O, OH, OW).

This file is the definition, and reads as the equations above. The fast executor (``tinycnn.fast``)
computes the same thing with other memory layouts and buffers for groups 1 (and, without im2col,
for depthwise groups == in_channels), dilation 1 and symmetric zero padding;
``tests/test_fast_equals_plain.py`` and ``tests/test_depthwise.py`` hold the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from .. import kernels
from .._typing import IntPair
from .base import Layer, Parameter, check_image_input, float_dtype, kaiming_uniform, pair, positive_int, unbatch
from .padding import Amounts, check_padding, check_padding_mode, pad, pad_backward


@dataclass
class ConvCache:
    cols: np.ndarray          # (C*KH*KW, N*OH*OW): the input's windows, one per column
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)
    unbatched: bool           # the input was one (C, H, W) image
    padded_shape: tuple | None = None   # (N, C, H + pt + pb, W + pl + pr): the input padded by padding_mode


def output_size_or_raise(owner: str, axis: str, size: int, k: int, s: int, p: int, d: int = 1,
                         p_end: int | None = None) -> int:
    """``(size + p + p_end - d*(k - 1) - 1) // s + 1`` (p_end defaults to p), or a ValueError that shows
    that formula with the numbers."""
    p_end = p if p_end is None else p_end
    out = kernels.conv_output_size(size, k, s, p, d, p_end)
    extent = d * (k - 1) + 1                                  # the dilated kernel's span
    if size + p + p_end < extent:
        padded = f"{size} + 2*{p}" if p == p_end else f"{size} + {p} + {p_end}"
        pad_term = "2*padding" if p == p_end else "padding_before + padding_after"
        if d == 1:
            raise ValueError(
                f"{owner}: kernel {axis} {k} is larger than the padded input {axis} "
                f"{padded} = {size + p + p_end}; output {axis} = (in + {pad_term} - kernel) // stride + 1 "
                f"= ({padded} - {k}) // {s} + 1 = {out}")
        raise ValueError(
            f"{owner}: dilated kernel {axis} dilation*(kernel - 1) + 1 = {d}*({k} - 1) + 1 = {extent} is larger "
            f"than the padded input {axis} {padded} = {size + p + p_end}; output {axis} = "
            f"(in + {pad_term} - dilation*(kernel - 1) - 1) // stride + 1 "
            f"= ({padded} - {d}*({k} - 1) - 1) // {s} + 1 = {out}")
    return out


def resolve_padding(padding: IntPair | str, kernel_size: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], owner: str) -> tuple[tuple[int, int] | str, Amounts]:
    """``padding`` as given -> (stored form, ((top, bottom), (left, right))).

    The stored form is what torch keeps: ``'same'``/``'valid'`` as strings, numbers as an (h, w) pair."""
    if isinstance(padding, str):
        if padding == "valid":
            return "valid", ((0, 0), (0, 0))
        if padding != "same":
            raise ValueError(f"{owner}: padding must be an int, an (h, w) pair, 'same' or 'valid', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{owner}: padding='same' is not supported for strided convolutions "
                             f"(stride = {stride}), as in torch; give the padding as numbers")
        amounts = []
        for k, d in zip(kernel_size, dilation):
            total = d * (k - 1)                               # keeps the output size equal to the input's
            amounts.append((total // 2, total - total // 2))  # the odd pixel goes after
        return "same", (amounts[0], amounts[1])
    ph, pw = pair(padding, "padding", owner, minimum=0)
    return (ph, pw), ((ph, ph), (pw, pw))


class Conv2D(Layer):
    """2-D convolution (cross-correlation) over NCHW input (or one (C, H, W) image).

    weight: (out_channels, in_channels // groups, KH, KW); bias: (out_channels,).
    x: (N, in_channels, H, W) -> y: (N, out_channels, OH, OW),
    OH = (H + pt + pb - dh*(KH - 1) - 1) // sh + 1 (likewise OW; pt = pb = padding for numbers).
    padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular', as in ``torch.nn.Conv2d``.
    """
    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair | str = 0, bias: bool = True, *, dilation: IntPair = 1, groups: int = 1,
                 padding_mode: str = "zeros", dtype: DTypeLike = np.float32,
                 rng: np.random.Generator | None = None) -> None:
        name = "Conv2D"
        self.in_channels = positive_int(in_channels, "in_channels", name)
        self.out_channels = positive_int(out_channels, "out_channels", name)
        self.kernel_size = pair(kernel_size, "kernel_size", name, minimum=1)
        self.stride = pair(stride, "stride", name, minimum=1)
        self.dilation = pair(dilation, "dilation", name, minimum=1)
        self.groups = positive_int(groups, "groups", name)
        for what, count in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if count % self.groups:
                raise ValueError(f"{name}: {what} must be divisible by groups, got {what} = {count}, "
                                 f"groups = {self.groups} ({count} % {self.groups} = {count % self.groups})")
        self.padding, self.padding_amounts = resolve_padding(padding, self.kernel_size, self.stride,
                                                             self.dilation, name)
        self.padding_mode = check_padding_mode(padding_mode, name)
        self.dtype = float_dtype(dtype, name)
        rng = np.random.default_rng() if rng is None else rng
        kh, kw = self.kernel_size
        cg = self.in_channels // self.groups
        fan_in = cg * kh * kw                                # torch: weight.size(1) * KH * KW
        self.weight = Parameter(kaiming_uniform(rng, (self.out_channels, cg, kh, kw), fan_in, self.dtype))
        self.bias = Parameter(kaiming_uniform(rng, (self.out_channels,), fan_in, self.dtype)) if bias else None
        self._cache: ConvCache | None = None

    def __repr__(self) -> str:
        extra = ""
        if self.dilation != (1, 1):
            extra += f", dilation={self.dilation}"
        if self.groups != 1:
            extra += f", groups={self.groups}"
        if getattr(self, "padding_mode", "zeros") != "zeros":
            extra += f", padding_mode={self.padding_mode!r}"
        padding = repr(self.padding) if isinstance(self.padding, str) else self.padding
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={padding}{extra})")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(C, H, W) -> (O, OH, OW), raising a clear error if the input cannot fit (or cannot be padded
        with ``padding_mode``)."""
        c, h, w = in_shape
        if c != self.in_channels:
            raise ValueError(f"{self!r}: expected {self.in_channels} input channels, got {c} "
                             f"(input shape (C, H, W) = {tuple(in_shape)})")
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        (pt, pb), (pl, pr) = self.padding_amounts
        if self.padding_mode != "zeros":
            check_padding(repr(self), self.padding_mode, (h, w), self.padding_amounts)
        oh = output_size_or_raise(repr(self), "height", h, kh, sh, pt, dh, pb)
        ow = output_size_or_raise(repr(self), "width", w, kw, sw, pl, dw, pr)
        return (self.out_channels, oh, ow)

    def _window_args(self) -> tuple[int, ...]:
        """The im2col/col2im window arguments: kh, kw, sh, sw, pt, pl, dh, dw, pb, pr (the padding 0
        when ``padding_mode`` pads the input itself)."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        (pt, pb), (pl, pr) = self.padding_amounts if self.padding_mode == "zeros" else ((0, 0), (0, 0))
        return kh, kw, sh, sw, pt, pl, dh, dw, pb, pr

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (N, C, H, W) -> y: (N, O, OH, OW); or x: (C, H, W) -> y: (O, OH, OW)."""
        x, unbatched = check_image_input(self, x, self.dtype)        # (N, C, H, W), C-contiguous
        n, x_shape = x.shape[0], x.shape
        _, oh, ow = self.output_shape(x.shape[1:])
        g, o = self.groups, self.out_channels
        padded_shape = None
        if self.padding_mode != "zeros":
            x = pad(x, self.padding_amounts, self.padding_mode)         # (N, C, H + pt + pb, W + pl + pr)
            padded_shape = x.shape
        cols = kernels.im2col(x, *self._window_args())                  # (C*KH*KW, N*OH*OW)
        k, m = cols.shape                                               # sizes spelled out: M may be 0
        cols_g = cols.reshape(g, k // g, m)                             # (G, Cg*KH*KW, M)
        w_g = self.weight.data.reshape(g, o // g, k // g)               # (G, Og, Cg*KH*KW)
        out = np.matmul(w_g, cols_g).reshape(o, m)                      # (O, N*OH*OW)
        if self.bias is not None:
            out += self.bias.data[:, None]
        y = out.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)             # (N, O, OH, OW)
        self._cache = ConvCache(cols=cols, x_shape=x_shape, y_shape=y.shape, unbatched=unbatched,
                                padded_shape=padded_shape)
        return unbatch(np.ascontiguousarray(y), unbatched)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        """grad_y: (N, O, OH, OW) -> grad_x: (N, C, H, W) (unbatched: without N); writes weight.grad
        and bias.grad."""
        cache = self._need_cache(self._cache)
        expected = cache.y_shape[1:] if cache.unbatched else cache.y_shape
        g = self._check_grad(grad_y, expected).astype(self.dtype, copy=False).reshape(cache.y_shape)
        n, c, h, w = cache.x_shape if cache.padded_shape is None else cache.padded_shape
        groups, o = self.groups, self.out_channels
        k, m = cache.cols.shape                                         # sizes spelled out: M may be 0
        g2d = g.transpose(1, 0, 2, 3).reshape(o, m)                     # (O, N*OH*OW), like ``out``
        g_g = g2d.reshape(groups, o // groups, m)                       # (G, Og, M)
        cols_g = cache.cols.reshape(groups, k // groups, m)             # (G, Cg*KH*KW, M)
        w_g = self.weight.data.reshape(groups, o // groups, k // groups)   # (G, Og, Cg*KH*KW)
        dw_g = np.matmul(g_g, cols_g.transpose(0, 2, 1))                # dW_g = g_g @ cols_g.T
        self.weight.grad = dw_g.reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad = g2d.sum(axis=1)                            # db = g2d.sum(axis=1)
        dcols = np.matmul(w_g.transpose(0, 2, 1), g_g).reshape(cache.cols.shape)   # (C*KH*KW, N*OH*OW)
        dx = kernels.col2im(dcols, n, c, h, w, *self._window_args())    # dx: (N, C, H, W), or padded
        if cache.padded_shape is not None:
            dx = pad_backward(dx, self.padding_amounts, self.padding_mode)   # (N, C, H, W)
        return unbatch(dx, cache.unbatched)
