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

How the code below makes this fast (measured in benchmarks/NOTES.md):

* ``out`` is (O, OH, OW, N) in memory (im2col_cm's columns run images fastest): the layer returns
  it as the (N, O, OH, OW) *view* ``out.transpose(3, 0, 1, 2)`` instead of copying it into C order
  ("channel-major", see ``layout.py``). The next layers keep that layout, so the gradient that comes
  back is channel-major too and ``g2d`` is a free reshape. ``im2col_cm`` / ``col2im_cm`` read and
  write that layout, in runs of N contiguous numbers.
* The bias rides in the matrix multiply: ``cols`` gets one extra row of ones and ``w2d`` the bias as
  an extra column, so ``out = [w2d | b] @ [cols; 1]`` and the last column of ``g2d @ cols.T`` is
  ``db``. No separate pass over the output or the gradient.
* ``cols`` is a per-layer workspace reused from one step to the next when the shape repeats; ``dcols``
  comes from one scratch buffer shared by all layers (it never outlives one backward); ``out`` and
  the input gradient are recycled arrays (``buffers.py``): no fresh pages on every step.
* The three products go through ``kernels.matmul``, which splits each over tinycnn's threads with
  BLAS single-threaded, so no BLAS worker spins on a core the next kernel needs (``kernels/gemm.py``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .. import kernels
from . import buffers
from .base import Layer, Parameter, check_input, float_dtype, kaiming_uniform, pair, positive_int
from .layout import as_view, is_channel_major, to_channel_major


@dataclass
class ConvCache:
    cols: np.ndarray          # (C*KH*KW [+1 row of ones with a bias], OH*OW*N), images fastest
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
    per_sample = True


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
        self._workspaces: dict[str, np.ndarray] = {}

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")

    def named_parameters(self):
        named = {"weight": self.weight}
        if self.bias is not None:
            named["bias"] = self.bias
        return named

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
        x = self._input(x)                                             # (N, C, H, W), maybe channel-major
        n, c = x.shape[:2]
        _, oh, ow = self.output_shape(x.shape[1:])
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        k = c * kh * kw
        xs = to_channel_major(x)                                       # (C, H, W, N): free if already so
        cols = self._workspace("cols", (k + (self.bias is not None), n * oh * ow))   # (C*KH*KW [+1], OH*OW*N)
        kernels.launch(kernels.im2col_cm, cols.size, xs, kh, kw, sh, sw, ph, pw, cols[:k])
        w2d = self.weight.data.reshape(self.out_channels, k)           # (O, C*KH*KW)
        if self.bias is not None:
            cols[k] = 1                                                # the bias's input: always 1
            w2d = np.concatenate([w2d, self.bias.data[:, None]], axis=1)   # (O, C*KH*KW + 1)
        out = buffers.empty((self.out_channels, n * oh * ow), self.dtype)   # (O, OH*OW*N) = (O, OH, OW, N)
        kernels.matmul(w2d, cols, out)                                 # out = w2d @ cols
        y = as_view(out.reshape(self.out_channels, oh, ow, n))         # (N, O, OH, OW) view
        self._cache = ConvCache(cols=cols, x_shape=x.shape, y_shape=y.shape)
        return y

    can_skip_input_grad = True

    def backward(self, grad_y, input_grad=True):
        """grad_y: (N, O, OH, OW) -> grad_x: (N, C, H, W), or None with ``input_grad=False``: then only
        the weight and bias gradients are formed (the first layer of a network needs no more)."""
        cache = self._need_cache(self._cache)
        g = self._check_grad(grad_y, cache.y_shape)
        n, c, h, w = cache.x_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        k = c * kh * kw
        g2d = to_channel_major(g, self.dtype).reshape(self.out_channels, -1)   # (O, OH*OW*N)
        # dW = g2d @ cols.T, computed as its transpose cols @ g2d.T: ~20 % faster in OpenBLAS for these
        # long-K shapes, same sums (benchmarks/NOTES.md 4.5)
        dwt = np.empty((cache.cols.shape[0], self.out_channels), self.dtype)   # (C*KH*KW [+1], O)
        kernels.matmul(cache.cols, g2d.T, dwt)
        self.weight.grad = np.ascontiguousarray(dwt[:k].T).reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad = dwt[k].copy()                             # = g2d.sum(axis=1), via the ones row
        if not input_grad:
            return None
        w2d = self.weight.data.reshape(self.out_channels, k)           # (O, C*KH*KW)
        dcols = _scratch(self.dtype, (k, g2d.shape[1]))                # (C*KH*KW, OH*OW*N)
        kernels.matmul(w2d.T, g2d, dcols)                              # dcols = w2d.T @ g2d
        dxs = kernels.launch(kernels.col2im_cm, dcols.size, dcols, c, n, h, w, kh, kw, sh, sw, ph, pw,
                             out=buffers.empty((c, h, w, n), self.dtype))   # (C, H, W, N)
        return as_view(dxs)                                            # (N, C, H, W) view

    def replica(self):
        rep = super().replica()
        rep._workspaces = {}                                           # its own im2col matrix
        return rep

    def _input(self, x):
        """``x`` validated as a floating (N, C, H, W) array of the layer's dtype. A channel-major view
        (see ``layout.py``) passes through as it is: it is already valid and the kernel reads it directly."""
        if isinstance(x, np.ndarray) and x.dtype == self.dtype and is_channel_major(x):
            return x
        return check_input(self, x, 4, "(N, C, H, W)", self.dtype)

    def _workspace(self, name, shape):
        """The layer's im2col matrix ``"cols"``, reused from one forward to the next while its shape
        repeats (it is read only by the backward of the forward that filled it). Large arrays (> 32 MB,
        e.g. at batch 256) would otherwise come fresh from the operating system, page by page, on
        every step."""
        ws = self._workspaces.get(name)
        if ws is None or ws.shape != shape:
            ws = self._workspaces[name] = np.empty(shape, dtype=self.dtype)
        return ws


_SCRATCH = threading.local()


def _scratch(dtype, shape) -> np.ndarray:
    """A scratch array for ``dcols``, shared by all Conv2D layers of this thread.

    ``dcols`` lives only from the matrix multiply to ``col2im`` inside one backward, so one buffer,
    grown to the largest layer's size, serves every layer: no per-step allocation (page faults above
    32 MB) and no per-layer copy kept between steps (that cost 84 MB at batch 256 for the seed CNN).
    Per thread, so two models trained in two threads never share it."""
    size = int(np.prod(shape))
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    buf = buffers.get(np.dtype(dtype))
    if buf is None or buf.size < size:
        buf = buffers[np.dtype(dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)
