"""Conv2D in cache-sized blocks of output pixels: the executor's path for thin convolutions.

A thin layer does little arithmetic per number of its columns. A 16 -> 16 channel 3x3 layer of
resnet20 at 32 x 32, batch 64, has columns of (144, 65,536) numbers, 37.7 MB, and its product does
2 * 16 = 32 flops per column number: im2col writes the 37.7 MB, the product reads them (and OpenBLAS
copies them into its packed panels once more), so memory, not the multiplies, sets the pace. Cut into
blocks of output pixels, the columns of one block are written and read while they are still in the
core's cache; the product is the same, done block by block:

    xs: (C, H, W, N) channel-major input; pixel p = oh*OW + ow; block b = pixels p0..p1-1,
        whose output is the column range out[:, p0*N : p1*N] of (O, OH*OW*N)

    forward:  cols_b = im2col_cm_pixels(xs, p0, p1)      (C*KH*KW, (p1-p0)*N)   [alloc.scratch]
              out[:, b] = w2d @ cols_b (+ bias)         (O, (p1-p0)*N)
    weight:   dW.T = sum over b of cols_b @ g[:, b].T    (C*KH*KW, O): the same N*OH*OW terms as
              one product's, summed in another order; cols_b formed again from xs
    input:    stride 1: dx is itself a stride-1 convolution, of g with the filter flipped in space
              and its channels swapped, W'[c, o, i, j] = W[o, c, KH-1-i, KW-1-j], and padding
              (KH-1-PH, KW-1-PW): from dx[c, a, b] = sum_{o,i,j} W[o, c, i, j] g[o, a+PH-i, b+PW-j],
              with i' = KH-1-i the index a+PH-i = a-(KH-1-PH)+i'; its output has
              OH + 2 (KH-1-PH) - KH + 1 = H rows. So it runs the same blocks, over g.
              Other strides (or PH > KH-1) keep the one-product path: dcols = w2d.T @ g, col2im.

Which layers: the blocks pass marks those with a small weight matrix (``passes/blocks.py``: every
block's product reads all of it again); at every call ``pays`` asks for columns many blocks long
(``MIN_BLOCKS``) and for one thread (in a lane, or with one thread in all): the blocks' products are
too short to split over threads, where the one large product of the unblocked path uses them all.
Each block holds about ``BLOCK_BYTES`` of columns. The numbers and what they bought:
benchmarks/PERFORMANCE.md, 'Thin convolutions in cache-sized blocks'.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ... import _jit, kernels

BLOCK_BYTES = 1 << 20           # columns of one block, about (the benchmark machine's cores: 1 MB of L2)
MIN_BLOCKS = 4                  # the whole columns at least this many blocks long
MIN_TRANSPOSED_CHANNELS = 16    # in_channels at least, for the input gradient as a blocked convolution


@dataclass
class BlockedConvCache:
    xs: np.ndarray            # (C, H, W, N): the input, channel-major, for the weight gradient's columns
    x_shape: tuple            # (N, C, H, W)
    y_shape: tuple            # (N, O, OH, OW)


def block_pixels(k: int, n: int, itemsize: int) -> int:
    """Output pixels per block: about ``BLOCK_BYTES`` of (K, pixels*N) columns, at least one pixel."""
    return max(1, BLOCK_BYTES // (k * n * itemsize))


def pays(k: int, n: int, pixels: int, itemsize: int) -> bool:
    """Whether a convolution with K = C*KH*KW column rows over ``pixels`` output pixels of ``n``
    images, marked by the blocks pass, runs in blocks in this call (see the module's docstring)."""
    if not (_jit.serial_here() or numba.get_num_threads() == 1):
        return False
    return pixels >= MIN_BLOCKS * block_pixels(k, n, itemsize)


def input_gradient_blocked(layer) -> bool:
    """Whether the input gradient runs as a blocked convolution of g: stride 1, PH <= KH-1, PW <= KW-1,
    and enough input channels (they are that convolution's output channels: with few, its product has
    as few rows and runs no faster than the one-product path)."""
    (kh, kw), (ph, _), (pw, _) = layer.kernel_size, *layer.padding_amounts
    return (tuple(layer.stride) == (1, 1) and ph <= kh - 1 and pw <= kw - 1
            and layer.in_channels >= MIN_TRANSPOSED_CHANNELS)


def convolve(op, xs, w2d, kh, kw, sh, sw, ph, pw, out2d, bias=None):
    """out2d (O, OH*OW*N) = the convolution of xs (C, H, W, N) with w2d (O, C*KH*KW), block by
    block, plus ``bias`` (O,) when given. Returns out2d."""
    c, h, w, n = xs.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    k = c * kh * kw
    step = block_pixels(k, n, xs.itemsize)
    for p0 in range(0, oh * ow, step):
        p1 = min(oh * ow, p0 + step)
        cols = op.cfg.alloc.scratch((k, (p1 - p0) * n), xs.dtype)             # (K, (p1-p0)*N)
        kernels.im2col_cm_pixels.serial(xs, kh, kw, sh, sw, ph, pw, p0, p1, cols)
        out_b = out2d[:, p0 * n:p1 * n]                                         # (O, (p1-p0)*N) view
        np.matmul(w2d, cols, out=out_b)
        if bias is not None:
            out_b += bias[:, None]
    return out2d


def weight_gradient(op, xs, g2d, kh, kw, sh, sw, ph, pw, with_bias):
    """(dW.T (C*KH*KW, O), db (O,) or None) from xs (C, H, W, N) and g2d (O, OH*OW*N), block by block."""
    c, h, w, n = xs.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    k, o = c * kh * kw, g2d.shape[0]
    step = block_pixels(k, n, xs.itemsize)
    dwt = np.zeros((k, o), xs.dtype)                                            # (C*KH*KW, O)
    part = np.empty((k, o), xs.dtype)
    db = np.zeros(o, xs.dtype) if with_bias else None
    for p0 in range(0, oh * ow, step):
        p1 = min(oh * ow, p0 + step)
        cols = op.cfg.alloc.scratch((k, (p1 - p0) * n), xs.dtype)             # the block's columns again
        kernels.im2col_cm_pixels.serial(xs, kh, kw, sh, sw, ph, pw, p0, p1, cols)
        g_b = g2d[:, p0 * n:p1 * n]                                             # (O, (p1-p0)*N) view
        np.matmul(cols, g_b.T, out=part)
        dwt += part
        if db is not None:
            db += g_b.sum(axis=1)
    return dwt, db


def forward(op, layer, xs, kh, kw, sh, sw, ph, pw, out2d):
    """The blocked forward: fills out2d (O, OH*OW*N) and returns the cache backward needs."""
    o = layer.out_channels
    w2d = layer.weight.data.reshape(o, -1)                                     # (O, C*KH*KW)
    bias = None if layer.bias is None else layer.bias.data
    convolve(op, xs, w2d, kh, kw, sh, sw, ph, pw, out2d, bias)
    c, h, w, n = xs.shape
    return BlockedConvCache(xs=xs, x_shape=(n, c, h, w), y_shape=(n, o, *layer.output_shape((c, h, w))[1:]))


def input_gradient(op, layer, g_cm, x_shape):
    """dx (C, H, W, N) of a stride-1 layer: the blocked convolution of g_cm (O, OH, OW, N) with the
    flipped, channel-swapped filter (see the module's docstring)."""
    n, c, h, w = x_shape
    (kh, kw), (ph, _), (pw, _) = layer.kernel_size, *layer.padding_amounts
    w_t = np.ascontiguousarray(layer.weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, O, KH, KW)
    dxs = op.cfg.alloc.empty((c, h, w, n), layer.dtype)                        # (C, H, W, N)
    convolve(op, g_cm, w_t.reshape(c, -1), kh, kw, 1, 1, kh - 1 - ph, kw - 1 - pw, dxs.reshape(c, -1))
    return dxs


__all__ = ["BlockedConvCache", "pays", "forward", "weight_gradient", "input_gradient",
           "input_gradient_blocked"]
