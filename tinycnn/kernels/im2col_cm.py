"""Channel-major im2col and col2im: the layout of Conv2D's fast path.

Inside a network tinycnn keeps activations *channel-major*: the memory is laid out (C, H, W, N),
images fastest, and the user sees the (N, C, H, W) view ``xs.transpose(3, 0, 1, 2)`` (see
``tinycnn/layers/layout.py``). In that layout the convolution needs no transpose copies at all::

    xs:   (C, H, W, N)           channel-major input
    cols = im2col_cm(xs):        (C*KH*KW, OH*OW*N)   row r = (c*KH + i)*KW + j, column q = (oh*OW + ow)*N + n
    out  = w2d @ cols:           (O, OH*OW*N)  is already the channel-major output (O, OH, OW, N)
    backward: g as (O, OH*OW*N) is a free view of a channel-major gradient;
    dcols = w2d.T @ g;  dxs = col2im_cm(dcols): (C, H, W, N)

``cols`` has the rows of ``im2col`` (im2col.py) and the same columns in another order (images
fastest instead of slowest). ``im2col_cm`` writes into a caller-given ``out`` so Conv2D can reuse one
workspace from step to step.

Why images fastest (benchmarks/PERFORMANCE.md, 'Channel-major layout'): every value im2col copies and col2im adds
belongs to a run of N numbers that are contiguous in both arrays, so the innermost loops are N long (64 at
batch 64) and vectorise, where the (C, N, H, W) order of the first version gave them rows of 13-30
with a bounds test per element. Measured at the seed CNN's 32 -> 64 layer, batch 64, one core:
im2col 2.3 -> 0.8 ms, col2im 4.7 -> 1.1 ms.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .im2col import col2im_reference, conv_output_size, im2col_reference

# ----------------------------------------------------------------------------------------------
# References: the NCHW references applied to the transposed view.
# ----------------------------------------------------------------------------------------------

def _columns_images_fastest(cols_nchw, n, oh, ow):
    """(K, N*OH*OW) columns in (n, oh, ow) order -> (K, OH*OW*N) columns in (oh, ow, n) order."""
    k = cols_nchw.shape[0]
    return cols_nchw.reshape(k, n, oh, ow).transpose(0, 2, 3, 1).reshape(k, oh * ow * n)


def im2col_cm_reference(xs, kh, kw, sh, sw, ph, pw, out):
    """xs: (C, H, W, N) -> out: (C*KH*KW, OH*OW*N), filled and returned. Plain NumPy."""
    c, h, w, n = xs.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    cols = im2col_reference(xs.transpose(3, 0, 1, 2), kh, kw, sh, sw, ph, pw)   # (K, N*OH*OW)
    out[...] = _columns_images_fastest(cols, n, oh, ow)
    return out


def col2im_cm_reference(cols, c, n, h, w, kh, kw, sh, sw, ph, pw, out=None):
    """cols: (C*KH*KW, OH*OW*N) -> dxs: (C, H, W, N), summing overlapping windows; written into
    ``out`` (C-contiguous (C, H, W, N)) when given. Plain NumPy."""
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    k = cols.shape[0]
    cols_nchw = cols.reshape(k, oh, ow, n).transpose(0, 3, 1, 2).reshape(k, n * oh * ow)
    dxs = col2im_reference(cols_nchw, n, c, h, w, kh, kw, sh, sw, ph, pw).transpose(1, 2, 3, 0)
    if out is None:
        return np.ascontiguousarray(dxs)
    out[...] = dxs
    return out


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures.
# ----------------------------------------------------------------------------------------------

@jit(inline=True)
def _columns_of_row(xs, r, kh, kw, sh, sw, ph, pw, ow, p0, p1, out_row):
    """Row r = (c*KH + i)*KW + j of the columns of output pixels p0..p1-1 (p = oh*OW + ow), written
    into out_row: ((p1 - p0) * N,), pixel p's N images at (p - p0) * N."""
    c, h, w, n = xs.shape
    ci = r // (kh * kw)
    i = (r // kw) % kh
    j = r % kw
    for q in range(p1 - p0):                           # q >= 0: Numba needs no negative-index test
        p = p0 + q                                     # below, and the copies vectorise
        ih = (p // ow) * sh - ph + i
        iw = (p % ow) * sw - pw + j
        base = q * n
        if ih < 0 or ih >= h or iw < 0 or iw >= w:
            for b in range(n):                         # the window pixel lies in the padding
                out_row[base + b] = 0.0
        else:
            for b in range(n):                         # N contiguous numbers in both arrays
                out_row[base + b] = xs[ci, ih, iw, b]


@jit(parallel=True)
def im2col_cm(xs, kh, kw, sh, sw, ph, pw, out):
    """xs: (C, H, W, N) contiguous -> out: (C*KH*KW, OH*OW*N), filled and returned. One thread per row."""
    c, h, w, n = xs.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    for r in prange(c * kh * kw):
        _columns_of_row(xs, r, kh, kw, sh, sw, ph, pw, ow, 0, oh * ow, out[r])
    return out


@jit(parallel=True)
def im2col_cm_pixels(xs, kh, kw, sh, sw, ph, pw, p0, p1, out):
    """The columns of output pixels p0..p1-1 only (p = oh*OW + ow): out (C*KH*KW, (p1-p0)*N) is
    ``im2col_cm``'s columns p0*N .. p1*N - 1. For Conv2D's cache-sized blocks (fast/ops/conv.py)."""
    c, h, w, n = xs.shape
    ow = (w + 2 * pw - kw) // sw + 1
    for r in prange(c * kh * kw):
        _columns_of_row(xs, r, kh, kw, sh, sw, ph, pw, ow, p0, p1, out[r])
    return out


def im2col_cm_pixels_reference(xs, kh, kw, sh, sw, ph, pw, p0, p1, out):
    """Plain NumPy: the same columns cut out of ``im2col_cm_reference``'s whole matrix."""
    c, h, w, n = xs.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    whole = im2col_cm_reference(xs, kh, kw, sh, sw, ph, pw, np.empty((c * kh * kw, oh * ow * n), xs.dtype))
    out[...] = whole[:, p0 * n:p1 * n]
    return out


@jit(parallel=True)
def col2im_cm(cols, c, n, h, w, kh, kw, sh, sw, ph, pw, out=None):
    """cols: (C*KH*KW, OH*OW*N) -> dxs: (C, H, W, N), written into ``out`` (C-contiguous) when given.

    One thread per input row (channel ci, row ih): it alone writes dxs[ci, ih], gathering every
    (i, y) with y*sh - ph + i == ih, so there are no races; each row is zeroed by its own thread."""
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    dxs = np.empty((c, h, w, n), dtype=cols.dtype) if out is None else out
    for p in prange(c * h):
        ci = p // h
        ih = p % h
        dxs[ci, ih] = 0.0
        for i in range(kh):
            t = ih + ph - i                            # = y * sh for the output row y that reads ih
            if t < 0 or t % sh != 0:
                continue
            y = t // sh
            if y >= oh:
                continue
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                for x in range(ow):
                    iw = x * sw - pw + j
                    if iw < 0 or iw >= w:
                        continue
                    base = (y * ow + x) * n
                    for b in range(n):                 # N contiguous numbers in both arrays
                        dxs[ci, ih, iw, b] += cols[r, base + b]
    return dxs
