"""im2col and col2im: turning a convolution into one matrix multiply.

Layout (NCHW input, zero padding ``ph, pw`` before and ``ph_end, pw_end`` after, stride ``sh, sw``,
dilation ``dh, dw``)::

    x:    (N, C, H, W)
    cols: (C*KH*KW, N*OH*OW)      row    r = (c*KH + i)*KW + j   (channel, kernel row, kernel column)
                                  column q = (n*OH + oh)*OW + ow  (image, output row, output column)
    cols[r, q] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]   (0 where that index falls in the padding)

    OH = (H + ph + ph_end - dh*(KH - 1) - 1) // sh + 1      (likewise OW)

which for dilation 1 and symmetric padding (the defaults: ``ph_end = -1`` means "the same as ph") is
``(H + 2*ph - KH) // sh + 1``. Padding after the input can differ from padding before it only for
``Conv2D(padding='same')`` with an even dilated kernel extent (torch puts the odd pixel after).

With the weights flattened to ``w2d: (O, C*KH*KW)`` the convolution is ``w2d @ cols: (O, N*OH*OW)``.
``col2im`` is the adjoint of ``im2col``: it scatters each column entry back to the input pixel it came
from, *adding* where windows overlap. That sum is exactly the gradient of ``im2col``.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange


def conv_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, pad_end: int = -1) -> int:
    """Output length of a sliding window: ``(size + pad + pad_end - dilation*(kernel - 1) - 1) // stride + 1``
    (``pad_end = -1``: the same as ``pad``), i.e. ``(size + 2*pad - kernel) // stride + 1`` by default."""
    pad_end = pad if pad_end < 0 else pad_end
    return (size + pad + pad_end - dilation * (kernel - 1) - 1) // stride + 1


# ----------------------------------------------------------------------------------------------
# Plain NumPy references: one strided slice per kernel offset (i, j).
# ----------------------------------------------------------------------------------------------

def im2col_reference(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """x: (N, C, H, W) -> cols: (C*KH*KW, N*OH*OW). Plain NumPy."""
    n, c, h, w = x.shape
    ph_end = ph if ph_end < 0 else ph_end
    pw_end = pw if pw_end < 0 else pw_end
    oh = conv_output_size(h, kh, sh, ph, dh, ph_end)
    ow = conv_output_size(w, kw, sw, pw, dw, pw_end)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph_end), (pw, pw_end)))   # xp: (N, C, ph+H+ph_end, pw+W+pw_end)
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw                              # the tap's offset in the window
            patch = xp[:, :, top:top + sh * oh:sh, left:left + sw * ow:sw]   # patch: (N, C, OH, OW)
            cols[:, i, j] = patch.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im_reference(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """cols: (C*KH*KW, N*OH*OW) -> x: (N, C, H, W), summing overlapping windows. Plain NumPy."""
    ph_end = ph if ph_end < 0 else ph_end
    pw_end = pw if pw_end < 0 else pw_end
    oh = conv_output_size(h, kh, sh, ph, dh, ph_end)
    ow = conv_output_size(w, kw, sw, pw, dw, pw_end)
    cols6 = cols.reshape(c, kh, kw, n, oh, ow)
    xp = np.zeros((n, c, h + ph + ph_end, w + pw + pw_end), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            xp[:, :, top:top + sh * oh:sh, left:left + sw * ow:sw] += cols6[:, i, j].transpose(1, 0, 2, 3)
    return xp[:, :, ph:ph + h, pw:pw + w].copy()


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures, explicit loops, parallel over independent outputs.
# ----------------------------------------------------------------------------------------------

@jit(parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """x: (N, C, H, W) contiguous -> cols: (C*KH*KW, N*OH*OW). Each row is written by one thread."""
    n, c, h, w = x.shape
    pad_h = ph + (ph if ph_end < 0 else ph_end)                 # padding before + after
    pad_w = pw + (pw if pw_end < 0 else pw_end)
    oh = (h + pad_h - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pad_w - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    for r in prange(c * kh * kw):
        ci = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        for b in range(n):
            for y in range(oh):
                ih = y * sh - ph + i * dh
                base = (b * oh + y) * ow
                if ih < 0 or ih >= h:
                    for xo in range(ow):
                        cols[r, base + xo] = 0.0
                    continue
                for xo in range(ow):
                    iw = xo * sw - pw + j * dw
                    if iw < 0 or iw >= w:
                        cols[r, base + xo] = 0.0
                    else:
                        cols[r, base + xo] = x[b, ci, ih, iw]
    return cols


@jit(parallel=True)
def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh=1, dw=1, ph_end=-1, pw_end=-1):
    """cols: (C*KH*KW, N*OH*OW) -> x: (N, C, H, W). One thread per (image, channel) plane: no races."""
    pad_h = ph + (ph if ph_end < 0 else ph_end)
    pad_w = pw + (pw if pw_end < 0 else pw_end)
    oh = (h + pad_h - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pad_w - dw * (kw - 1) - 1) // sw + 1
    x = np.zeros((n, c, h, w), dtype=cols.dtype)
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for i in range(kh):
            for j in range(kw):
                r = (ci * kh + i) * kw + j
                for y in range(oh):
                    ih = y * sh - ph + i * dh
                    if ih < 0 or ih >= h:
                        continue
                    base = (b * oh + y) * ow
                    for xo in range(ow):
                        iw = xo * sw - pw + j * dw
                        if iw >= 0 and iw < w:
                            x[b, ci, ih, iw] += cols[r, base + xo]
    return x
