"""im2col and col2im: turning a convolution into one matrix multiply.

Layout (NCHW input, zero padding ``ph, pw``, stride ``sh, sw``)::

    x:    (N, C, H, W)
    cols: (C*KH*KW, N*OH*OW)      row    r = (c*KH + i)*KW + j   (channel, kernel row, kernel column)
                                  column q = (n*OH + oh)*OW + ow  (image, output row, output column)
    cols[r, q] = x[n, c, oh*sh - ph + i, ow*sw - pw + j]   (0 where that index falls in the padding)

    OH = (H + 2*ph - KH) // sh + 1,   OW = (W + 2*pw - KW) // sw + 1

With the weights flattened to ``w2d: (O, C*KH*KW)`` the convolution is ``w2d @ cols: (O, N*OH*OW)``.
``col2im`` is the adjoint of ``im2col``: it scatters each column entry back to the input pixel it came
from, *adding* where windows overlap. That sum is exactly the gradient of ``im2col``.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a sliding window: ``(size + 2*pad - kernel) // stride + 1``."""
    return (size + 2 * pad - kernel) // stride + 1


# ----------------------------------------------------------------------------------------------
# Plain NumPy references: one strided slice per kernel offset (i, j).
# ----------------------------------------------------------------------------------------------

def im2col_reference(x, kh, kw, sh, sw, ph, pw):
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW). Plain NumPy."""
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))          # xp: (N, C, H+2ph, W+2pw)
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]    # patch: (N, C, OH, OW)
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im_reference(cols, n, c, h, w, kh, kw, sh, sw, ph, pw):
    """cols: (C*KH*KW, N*OH*OW) -> x: (N, C, H, W), summing overlapping windows. Plain NumPy."""
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    cols6 = cols.reshape(c, kh, kw, n, oh, ow)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += cols6[:, i, j].transpose(1, 0, 2, 3)
    return xp[:, :, ph:ph + h, pw:pw + w].copy()


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures, explicit loops, parallel over independent outputs.
# ----------------------------------------------------------------------------------------------

@jit(parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw):
    """x: (N, C, H, W) contiguous -> cols: (C*KH*KW, N*OH*OW). Each row is written by one thread."""
    n, c, h, w = x.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    for r in prange(c * kh * kw):
        ci = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        for b in range(n):
            for y in range(oh):
                ih = y * sh - ph + i
                base = (b * oh + y) * ow
                if ih < 0 or ih >= h:
                    for xo in range(ow):
                        cols[r, base + xo] = 0.0
                    continue
                for xo in range(ow):
                    iw = xo * sw - pw + j
                    if iw < 0 or iw >= w:
                        cols[r, base + xo] = 0.0
                    else:
                        cols[r, base + xo] = x[b, ci, ih, iw]
    return cols


@jit(parallel=True)
def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw):
    """cols: (C*KH*KW, N*OH*OW) -> x: (N, C, H, W). One thread per (image, channel) plane: no races."""
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    x = np.zeros((n, c, h, w), dtype=cols.dtype)
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                for y in range(oh):
                    ih = y * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    base = (b * oh + y) * ow
                    for xo in range(ow):
                        iw = xo * sw - pw + j
                        if iw >= 0 and iw < w:
                            x[b, ci, ih, iw] += cols[r, base + xo]
    return x
