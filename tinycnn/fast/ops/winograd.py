"""Conv2D's Winograd F(2x2, 3x3) path: the executor's ConvOp for 3x3, stride-1 layers (the winograd pass).

The mathematics and the float error bound are in ``tinycnn/kernels/winograd.py``. Here: which
layers take the path, and how forward and backward use it.

    forward:   xs: (C, H, W, N) channel-major input (a free view when the op before was fast)
               U = winograd_filter(W)                 (16, O, C), every call (the optimizer moves W)
               V = winograd_input(xs, ph, pw)         (16, C, T), T = TH*TW*N   [alloc.scratch]
               M[k] = U[k] @ V[k], k = 0..15          (16, O, T): 16 products   [alloc.empty]
                   (threads pass: ``kernels.matmul_batched`` deals whole products to the threads)
               out = winograd_output(M, b)            (O, OH, OW, N): bias added here [alloc.empty]
    backward:  dx is itself a stride-1 3x3 convolution: of g (O, OH, OW, N) with the flipped,
               channel-transposed filter W'[c, o, i, j] = W[o, c, 2 - i, 2 - j] and padding 2 - p
               (OH + 2 (2 - p) - 2 = H), so it runs the same three steps (no bias).
               dW stays im2col + one product, dW.T = cols @ g2d.T (the im2col op's own equation),
               with the ones row for the bias when ``cfg.bias_in_gemm``.

The weight gradient's columns are *recomputed* in backward from the cached input rather than kept
from forward: forward no longer needs them (Winograd reads the input itself), so keeping them would
mean an im2col in forward whose only use comes later and a 9 C OH OW N array held from forward to
backward. Recomputing costs the same one im2col per training step, puts it in backward, where
its columns die at the product (``alloc.scratch``), and costs nothing in inference or with a frozen
weight. What is kept is a reference to the input (no copy when it arrived channel-major, as Dense
keeps its input's view).

Which layers: ``applies(layer)`` (kernel 3x3, stride 1, groups 1, dilation 1, zero padding 0 or 1
on each axis: the cases the kernels implement) is checked by the winograd pass, which also asks for
enough channels; the output size is known only per call, so ``pays(h, w, ph, pw)`` is checked here
at every forward (smaller maps take the im2col path, and backward follows the forward's choice).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import kernels
from ...kernels import winograd as wk
from ..layout import as_view, to_channel_major
from .base import trainable

MIN_OUTPUT_SIZE = 6   # output height and width at least this (see ``pays``)


@dataclass
class WinogradCache:
    xs: np.ndarray            # (C, H, W, N): the input, channel-major, for the weight gradient's im2col
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)


def padding(layer) -> tuple[int, int]:
    (ph, _), (pw, _) = layer.padding_amounts
    return ph, pw


def applies(layer) -> bool:
    """Whether the Winograd path computes ``layer``: a 3x3, stride-1 Conv2D with groups 1, dilation 1
    and the same zero padding (0 or 1) before and after on each axis."""
    (top, bottom), (left, right) = layer.padding_amounts
    return (tuple(layer.kernel_size) == (3, 3) and tuple(layer.stride) == (1, 1)
            and getattr(layer, "groups", 1) == 1 and tuple(getattr(layer, "dilation", (1, 1))) == (1, 1)
            and getattr(layer, "padding_mode", "zeros") == "zeros"
            and top == bottom and left == right and top in (0, 1) and left in (0, 1))


def pays(h: int, w: int, ph: int, pw: int) -> bool:
    """The per-call part of the rule: output height and width >= MIN_OUTPUT_SIZE. A map of OH rows takes
    ceil(OH/2) tile rows, so an odd OH computes one row nobody reads: the products' work relative to
    im2col's is 16 TH TW / (9 OH OW), 0.44 for even sizes, 0.58 at 7 x 7 but 0.79 at 3 x 3, where the
    products are also too small for the transforms' passes over memory to pay."""
    return h + 2 * ph - 2 >= MIN_OUTPUT_SIZE and w + 2 * pw - 2 >= MIN_OUTPUT_SIZE


def _convolve(op, xs, u, bias, ph, pw):
    """xs: (C, H, W, N), u: (16, O, C), bias: (O,) or length 0 -> (O, OH, OW, N) from the allocator."""
    cfg, dtype = op.cfg, xs.dtype
    c, h, w, n = xs.shape
    o = u.shape[1]
    oh, th = wk.tiles(h, ph)
    ow, tw = wk.tiles(w, pw)
    t = th * tw * n                                                    # tiles of all images
    v = cfg.alloc.scratch((16, c, t), dtype)                           # (16, C, T): dies at the products
    op.launch(kernels.winograd_input, v.size, xs, ph, pw, v)
    m = cfg.alloc.empty((16, o, t), dtype)                             # (16, O, T)
    if cfg.split_products:                                             # m[k] = u[k] @ v[k]: (O, C) @ (C, T)
        kernels.matmul_batched(u, v, m)                                # the 16 products dealt to the threads
    else:
        np.matmul(u, v, out=m)                                         # BLAS's own threads
    out = cfg.alloc.empty((o, oh, ow, n), dtype)                       # (O, OH, OW, N)
    op.launch(kernels.winograd_output, out.size, m, bias, oh, ow, n, out)
    return out


def forward(op, x):
    """ConvOp.forward on the Winograd path: x (N, C, H, W) in any layout -> y (N, O, OH, OW)."""
    layer, cfg = op.layer, op.cfg
    n, c, h, w = x.shape
    ph, pw = padding(layer)
    xs = to_channel_major(x, layer.dtype)                              # (C, H, W, N): free if already so
    u = wk.winograd_filter(layer.weight.data, layer.dtype)             # (16, O, C)
    bias = layer.bias.data if layer.bias is not None else np.empty(0, layer.dtype)
    y = as_view(_convolve(op, xs, u, bias, ph, pw))                    # (N, O, OH, OW) view
    op.cache = WinogradCache(xs=xs, x_shape=(n, c, h, w), y_shape=y.shape)
    return y if cfg.channel_major else np.ascontiguousarray(y)


def backward(op, g, input_grad=True):
    """ConvOp.backward after a Winograd forward: parameter gradients into ``op.grads``; dx (N, C, H, W)
    or None."""
    layer, cfg, cache = op.layer, op.cfg, op.cache
    n, c, h, w = cache.x_shape
    ph, pw = padding(layer)
    o = layer.out_channels
    k = c * 9
    gs = to_channel_major(g, layer.dtype)                              # (O, OH, OW, N)
    g2d = gs.reshape(o, -1)                                            # (O, OH*OW*N)
    op.grads = {}
    bias_trains = layer.bias is not None and trainable(layer.bias)
    if trainable(layer.weight):
        bias_row = bias_trains and cfg.bias_in_gemm
        cols = cfg.alloc.scratch((k + bias_row, g2d.shape[1]), layer.dtype)   # (C*9 [+1], OH*OW*N)
        op.launch(kernels.im2col_cm, k * g2d.shape[1], cache.xs, 3, 3, 1, 1, ph, pw, cols[:k])
        if bias_row:
            cols[k] = 1
        dwt = np.empty((cols.shape[0], o), layer.dtype)               # (C*9 [+1], O)
        op.matmul(cols, g2d.T, dwt)                                    # dW.T = cols @ g2d.T
        op.grads["weight"] = np.ascontiguousarray(dwt[:k].T).reshape(layer.weight.data.shape)
        if bias_trains:
            op.grads["bias"] = dwt[k].copy() if bias_row else g2d.sum(axis=1)
    elif bias_trains:                                                  # a frozen weight: no product
        op.grads["bias"] = g2d.sum(axis=1)
    if not input_grad:
        return None
    flipped = layer.weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)   # (C, O, 3, 3)
    u = wk.winograd_filter(flipped, layer.dtype)                       # (16, C, O)
    dxs = _convolve(op, gs, u, np.empty(0, layer.dtype), 2 - ph, 2 - pw)   # (C, H, W, N)
    gx = as_view(dxs)                                                  # (N, C, H, W) view
    return gx if cfg.channel_major else np.ascontiguousarray(gx)
