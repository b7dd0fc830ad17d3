"""Channel-major im2col and col2im: the layout of Conv2D's fast path.

Inside a network tinycnn keeps activations *channel-major*: the memory is laid out (C, N, H, W) and
the user sees the (N, C, H, W) view ``xc.transpose(1, 0, 2, 3)`` (as PyTorch's memory formats do).
In that layout the convolution needs no transpose copies at all::

    xc:   (C, N, H, W)           channel-major input
    cols = im2col_cm(xc):        (C*KH*KW, N*OH*OW)   row r = (c*KH + i)*KW + j, column q = (n*OH + oh)*OW + ow
    out  = w2d @ cols:           (O, N*OH*OW)  is already the channel-major output (O, N, OH, OW)
    backward: g as (O, N*OH*OW) is a free view of a channel-major gradient;
    dcols = w2d.T @ g;  dxc = col2im_cm(dcols): (C, N, H, W)

``cols`` is the same matrix that ``im2col`` (im2col.py) builds from NCHW input (same rows, same
columns); only where the input is read from differs. ``im2col_cm`` writes into a caller-given ``out``
so Conv2D can reuse one workspace from step to step.

Speed notes (benchmarks/NOTES.md, one thread, seed-CNN shapes at batch 64): ``im2col_cm`` keeps one
loop per output row with the padding test inside it, like ``im2col``, and runs as fast as it;
splitting each row into zeros / copy / zeros was measured 2x slower, because rows are short (13-30
columns here) and three short loops cost more than one. ``col2im_cm`` works out each row's valid
range first; against ``col2im`` it measured 2.8 vs 4.2 ms at the 32->64 layer, 1.0 vs 0.8 ms and
0.75 vs 0.67 ms at the other two.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .im2col import col2im_reference, im2col_reference


# ----------------------------------------------------------------------------------------------
# References: the NCHW references applied to the transposed view.
# ----------------------------------------------------------------------------------------------

def im2col_cm_reference(xc, kh, kw, sh, sw, ph, pw, out):
    """xc: (C, N, H, W) -> out: (C*KH*KW, N*OH*OW), filled and returned. Plain NumPy."""
    out[...] = im2col_reference(xc.transpose(1, 0, 2, 3), kh, kw, sh, sw, ph, pw)
    return out


def col2im_cm_reference(cols, c, n, h, w, kh, kw, sh, sw, ph, pw, out=None):
    """cols: (C*KH*KW, N*OH*OW) -> dxc: (C, N, H, W), summing overlapping windows; written into ``out``
    (C-contiguous (C, N, H, W)) when given. Plain NumPy."""
    dxc = col2im_reference(cols, n, c, h, w, kh, kw, sh, sw, ph, pw).transpose(1, 0, 2, 3)
    if out is None:
        return np.ascontiguousarray(dxc)
    out[...] = dxc
    return out


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures.
# ----------------------------------------------------------------------------------------------

@jit
def _valid_columns(ow, w, j, sw, pw):
    """Output columns xo whose input column xo*sw - pw + j lies inside [0, w): the range [lo, hi)."""
    lo = 0 if j >= pw else (pw - j + sw - 1) // sw
    hi = (w - 1 + pw - j) // sw + 1
    if hi > ow:
        hi = ow
    if hi < lo:
        hi = lo
    return lo, hi


@jit(parallel=True)
def im2col_cm(xc, kh, kw, sh, sw, ph, pw, out):
    """xc: (C, N, H, W) contiguous -> out: (C*KH*KW, N*OH*OW), filled and returned. One thread per row."""
    c, n, h, w = xc.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
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
                        out[r, base + xo] = 0.0
                    continue
                for xo in range(ow):
                    iw = xo * sw - pw + j
                    if iw < 0 or iw >= w:
                        out[r, base + xo] = 0.0
                    else:
                        out[r, base + xo] = xc[ci, b, ih, iw]
    return out


@jit(parallel=True)
def col2im_cm(cols, c, n, h, w, kh, kw, sh, sw, ph, pw, out=None):
    """cols: (C*KH*KW, N*OH*OW) -> dxc: (C, N, H, W), written into ``out`` (C-contiguous) when given.
    One thread per (channel, image) plane: no races; each plane is zeroed by its own thread."""
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    dxc = np.empty((c, n, h, w), dtype=cols.dtype) if out is None else out
    for p in prange(c * n):
        ci = p // n
        b = p % n
        dxc[ci, b] = 0.0
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                lo, hi = _valid_columns(ow, w, j, sw, pw)
                iw0 = lo * sw - pw + j
                for y in range(oh):
                    ih = y * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    base = (b * oh + y) * ow + lo
                    if sw == 1:
                        for t in range(hi - lo):
                            dxc[ci, b, ih, iw0 + t] += cols[r, base + t]
                    else:
                        for t in range(hi - lo):
                            dxc[ci, b, ih, iw0 + t * sw] += cols[r, base + t]
    return dxc
