"""Max- and average-pooling kernels, forward and backward, each beside a plain reference.

Shapes (NCHW, window KH x KW, stride sh, sw, padding ph, pw, dilation dh, dw)::

    x: (N, C, H, W)  ->  y: (N, C, OH, OW),   OH = pool_output_size(H, KH, sh, ph, dh, ceil_mode)

``pool_output_size`` is torch's rule: ``(H + 2*ph - dh*(KH - 1) - 1) / sh`` rounded down (or up with
``ceil_mode``), plus 1; with ``ceil_mode`` a last window that would start at or past ``H + ph`` (in
the right padding or beyond) is dropped, so every window starts inside the input or the left padding.
A ceil-mode window may run past the right padding; the part past it is not input and not padding.

Window (oh, ow) covers rows ``h0 + i*dh`` (``h0 = oh*sh - ph``, i < KH) and likewise columns; only the
rows and columns inside the input hold pixels.

Max pooling
    Padding is minus infinity: a padded cell never wins. ``argmax[n, c, oh, ow]`` is the flat index
    ``ih*W + iw`` of the winning input pixel in its (H, W) plane (PyTorch's ``return_indices``).
    Tie rule (PyTorch's CPU rule): the window is scanned row by row, left to right, and a value
    replaces the current maximum only if it is strictly greater, or if it is NaN. So among equal
    values the *first* in row-major order wins, and a NaN anywhere in the window wins (it propagates).
    Backward routes each output gradient to its winner; overlapping windows add up. A dilated window
    can miss every pixel (a dilation larger than the input); its output is -inf, as in torch, its
    argmax is -1 and it routes no gradient.

Average pooling (torch's ``avg_pool2d``)
    The sum of the window's real pixels, divided by
      ``divisor_override`` when it is given (> 0), else
      with ``count_include_pad``: the window's cells inside input + padding, i.e. (h1 - h0)*(w1 - w0)
      with ``h1 = min(h0 + KH, H + ph)`` (KH*KW except for a ceil-mode window running past the padding),
      without: the number of real pixels in the window.
    Backward spreads ``grad_y / divisor`` evenly over the window's real pixels.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .im2col import conv_output_size  # noqa: F401  (re-exported for the pooling callers)


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """torch's pooling output length (see the module docstring); may be < 1 (the caller refuses that)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:     # the last window would start in the right padding
        out -= 1
    return out


def _first_tap(start: int, dilation: int) -> int:
    """The first of ``start, start + d, start + 2d, ...`` that is >= 0."""
    return start if start >= 0 else start + ((-start + dilation - 1) // dilation) * dilation

# ----------------------------------------------------------------------------------------------
# Plain references (Python loops and slices: slow, obviously right).
# ----------------------------------------------------------------------------------------------

def maxpool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, y=None, argmax=None, dh=1, dw=1, ceil_mode=False):
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), argmax: int64 (N, C, OH, OW)), into y/argmax if given."""
    n, c, h, w = x.shape
    oh = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    ow = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.empty((n, c, oh, ow), dtype=x.dtype) if y is None else y
    argmax = np.empty((n, c, oh, ow), dtype=np.int64) if argmax is None else argmax
    for yo in range(oh):
        rows = [r for r in range(yo * sh - ph, yo * sh - ph + kh * dh, dh) if 0 <= r < h]   # real rows
        for xo in range(ow):
            cols = [q for q in range(xo * sw - pw, xo * sw - pw + kw * dw, dw) if 0 <= q < w]
            for b in range(n):
                for ci in range(c):
                    best, where = -np.inf, (rows[0] * w + cols[0] if rows and cols else -1)
                    for ih in rows:
                        for iw in cols:
                            v = x[b, ci, ih, iw]
                            if v > best or np.isnan(v):
                                best, where = v, ih * w + iw
                    y[b, ci, yo, xo] = best
                    argmax[b, ci, yo, xo] = where
    return y, argmax


def maxpool2d_backward_reference(grad_y, argmax, h, w, grad_x=None):
    """grad_y, argmax: (N, C, OH, OW) -> grad_x: (N, C, H, W), into grad_x if given. argmax -1 (a
    window without pixels) routes nothing."""
    n, c = grad_y.shape[:2]
    flat = np.zeros((n, c, h * w), dtype=grad_y.dtype)
    for b in range(n):
        for ci in range(c):
            k, g = argmax[b, ci].ravel(), grad_y[b, ci].ravel()
            np.add.at(flat[b, ci], k[k >= 0], g[k >= 0])
    if grad_x is None:
        return flat.reshape(n, c, h, w)
    grad_x[...] = flat.reshape(n, c, h, w)
    return grad_x


def avgpool_divisors(size, kernel, stride, pad, out, count_include_pad):
    """Per output position along one axis: (start, end) of its real pixels and its divisor factor
    (cells inside input + padding with ``count_include_pad``, else real pixels). Plain Python."""
    spans, factors = [], []
    for o in range(out):
        s0 = o * stride - pad
        s1 = min(s0 + kernel, size + pad)                  # the window, cut at the end of the padding
        a, b = max(s0, 0), min(s1, size)                   # its real pixels
        spans.append((a, b))
        factors.append(s1 - s0 if count_include_pad else max(b - a, 0))
    return spans, np.array(factors)


def avgpool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, ceil_mode=False, count_include_pad=True,
                                divisor_override=0):
    """x: (N, C, H, W) -> y: (N, C, OH, OW); torch's divisor rule (module docstring)."""
    n, c, h, w = x.shape
    oh = pool_output_size(h, kh, sh, ph, 1, ceil_mode)
    ow = pool_output_size(w, kw, sw, pw, 1, ceil_mode)
    rows, fh = avgpool_divisors(h, kh, sh, ph, oh, count_include_pad)
    cols, fw = avgpool_divisors(w, kw, sw, pw, ow, count_include_pad)
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for yo, (r0, r1) in enumerate(rows):
        for xo, (c0, c1) in enumerate(cols):
            div = divisor_override if divisor_override > 0 else fh[yo] * fw[xo]
            if r1 > r0 and c1 > c0:
                y[:, :, yo, xo] = x[:, :, r0:r1, c0:c1].sum(axis=(2, 3)) / x.dtype.type(div)
    return y


def avgpool2d_backward_reference(grad_y, h, w, kh, kw, sh, sw, ph, pw, ceil_mode=False, count_include_pad=True,
                                 divisor_override=0):
    """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W)."""
    n, c, oh, ow = grad_y.shape
    rows, fh = avgpool_divisors(h, kh, sh, ph, oh, count_include_pad)
    cols, fw = avgpool_divisors(w, kw, sw, pw, ow, count_include_pad)
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    for yo, (r0, r1) in enumerate(rows):
        for xo, (c0, c1) in enumerate(cols):
            div = divisor_override if divisor_override > 0 else fh[yo] * fw[xo]
            if r1 > r0 and c1 > c0:
                grad_x[:, :, r0:r1, c0:c1] += (grad_y[:, :, yo, xo] / grad_y.dtype.type(div))[:, :, None, None]
    return grad_x


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures; one thread per (image, channel) plane.
# ----------------------------------------------------------------------------------------------

@jit(parallel=True)
def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y=None, argmax=None, dh=1, dw=1, ceil_mode=False):
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), argmax: int64 (N, C, OH, OW)), written into ``y`` and
    ``argmax`` when given.

    2 x 2 windows without padding or dilation that all lie inside the input (``MaxPool2D(2)``, the
    common case) take an unrolled path: with a window only two pixels wide, the general loops below
    spend more time on loop bookkeeping than on comparing (measured 3x slower,
    benchmarks/PERFORMANCE.md, 'Max-pooling kernels'). Both paths visit each window's pixels in
    row-major order with the same strict ``>``/NaN rule, so values and winners are identical."""
    n, c, h, w = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1 + (sh - 1 if ceil_mode else 0)) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1 + (sw - 1 if ceil_mode else 0)) // sw + 1
    if ceil_mode and (oh - 1) * sh >= h + ph:              # torch: no window starts in the right padding
        oh -= 1
    if ceil_mode and (ow - 1) * sw >= w + pw:
        ow -= 1
    if y is None:
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
    if argmax is None:
        argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    if (kh == 2 and kw == 2 and ph == 0 and pw == 0 and dh == 1 and dw == 1
            and (oh - 1) * sh + 2 <= h and (ow - 1) * sw + 2 <= w):
        for p in prange(n * c):
            b = p // c
            ci = p % c
            for yo in range(oh):
                i0 = yo * sh
                for xo in range(ow):
                    j0 = xo * sw
                    best = x[b, ci, i0, j0]               # the first pixel: wins over -inf, NaN or not
                    where = i0 * w + j0
                    v = x[b, ci, i0, j0 + 1]
                    if v > best or np.isnan(v):
                        best = v
                        where = i0 * w + j0 + 1
                    v = x[b, ci, i0 + 1, j0]
                    if v > best or np.isnan(v):
                        best = v
                        where = (i0 + 1) * w + j0
                    v = x[b, ci, i0 + 1, j0 + 1]
                    if v > best or np.isnan(v):
                        best = v
                        where = (i0 + 1) * w + j0 + 1
                    y[b, ci, yo, xo] = best
                    argmax[b, ci, yo, xo] = where
        return y, argmax
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for yo in range(oh):
            h0 = yo * sh - ph
            hs = h0 if h0 >= 0 else h0 + ((-h0 + dh - 1) // dh) * dh     # first row tap inside the input
            he = min(h0 + (kh - 1) * dh + 1, h)
            for xo in range(ow):
                w0 = xo * sw - pw
                ws = w0 if w0 >= 0 else w0 + ((-w0 + dw - 1) // dw) * dw
                we = min(w0 + (kw - 1) * dw + 1, w)
                best = -np.inf
                where = hs * w + ws if hs < he and ws < we else -1      # -1: the window holds no pixel
                for ih in range(hs, he, dh):
                    for iw in range(ws, we, dw):
                        v = x[b, ci, ih, iw]
                        if v > best or np.isnan(v):
                            best = v
                            where = ih * w + iw
                y[b, ci, yo, xo] = best
                argmax[b, ci, yo, xo] = where
    return y, argmax


@jit(parallel=True)
def maxpool2d_backward(grad_y, argmax, h, w, grad_x=None):
    """grad_y, argmax: (N, C, OH, OW) -> grad_x: (N, C, H, W), written into ``grad_x`` (C-contiguous)
    when given. An argmax of -1 (a window without pixels) routes nothing.

    Writes through a flat (N, C, H*W) view so the winner's index k = ih*W + iw is used as it is:
    splitting it into k // W, k % W costs two integer divisions per output (measured 2x slower)."""
    n, c, oh, ow = grad_y.shape
    if grad_x is None:
        grad_x = np.empty((n, c, h, w), dtype=grad_y.dtype)
    flat = grad_x.reshape(n, c, h * w)                  # (N, C, H*W) view
    for p in prange(n * c):
        b = p // c
        ci = p % c
        flat[b, ci] = 0.0                               # each plane zeroed by the thread that fills it
        for yo in range(oh):
            for xo in range(ow):
                k = argmax[b, ci, yo, xo]
                if k >= 0:
                    flat[b, ci, k] += grad_y[b, ci, yo, xo]
    return grad_x


@jit(parallel=True)
def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw, ceil_mode=False, count_include_pad=True, divisor_override=0):
    """x: (N, C, H, W) -> y: (N, C, OH, OW); torch's divisor rule (module docstring)."""
    n, c, h, w = x.shape
    oh = (h + 2 * ph - kh + (sh - 1 if ceil_mode else 0)) // sh + 1
    ow = (w + 2 * pw - kw + (sw - 1 if ceil_mode else 0)) // sw + 1
    if ceil_mode and (oh - 1) * sh >= h + ph:
        oh -= 1
    if ceil_mode and (ow - 1) * sw >= w + pw:
        ow -= 1
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for yo in range(oh):
            h0 = yo * sh - ph
            h1 = min(h0 + kh, h + ph)                   # cut at the end of the padding
            hs, he = max(h0, 0), min(h1, h)             # the real rows
            for xo in range(ow):
                w0 = xo * sw - pw
                w1 = min(w0 + kw, w + pw)
                ws, we = max(w0, 0), min(w1, w)
                if divisor_override > 0:
                    div = divisor_override
                elif count_include_pad:
                    div = (h1 - h0) * (w1 - w0)
                else:
                    div = (he - hs) * (we - ws)
                y[b, ci, yo, xo] = 0.0          # accumulate in the input's dtype, like the reference
                if he <= hs or we <= ws:
                    continue
                for ih in range(hs, he):
                    for iw in range(ws, we):
                        y[b, ci, yo, xo] += x[b, ci, ih, iw]
                y[b, ci, yo, xo] = y[b, ci, yo, xo] / div
    return y


@jit(parallel=True)
def avgpool2d_backward(grad_y, h, w, kh, kw, sh, sw, ph, pw, ceil_mode=False, count_include_pad=True,
                       divisor_override=0):
    """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W). (``ceil_mode`` is implied by grad_y's shape;
    it is a parameter so the signature matches the forward's.)"""
    n, c, oh, ow = grad_y.shape
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for yo in range(oh):
            h0 = yo * sh - ph
            h1 = min(h0 + kh, h + ph)
            hs, he = max(h0, 0), min(h1, h)
            for xo in range(ow):
                w0 = xo * sw - pw
                w1 = min(w0 + kw, w + pw)
                ws, we = max(w0, 0), min(w1, w)
                if divisor_override > 0:
                    div = divisor_override
                elif count_include_pad:
                    div = (h1 - h0) * (w1 - w0)
                else:
                    div = (he - hs) * (we - ws)
                if he <= hs or we <= ws:
                    continue
                g = grad_y[b, ci, yo, xo] / div
                for ih in range(hs, he):
                    for iw in range(ws, we):
                        grad_x[b, ci, ih, iw] += g
    return grad_x


# ----------------------------------------------------------------------------------------------
# Max pooling on channel-major activations: xs (C, H, W, N), images fastest (layers/layout.py).
# Same windows, same tie/NaN rule and the same flat winner index ih*W + iw as above; the innermost
# loops run over the N images, contiguous in memory, so they vectorise (a compare and two selects).
# ----------------------------------------------------------------------------------------------

def maxpool2d_forward_cm_reference(xs, kh, kw, sh, sw, ph, pw, y=None, argmax=None):
    """xs: (C, H, W, N) -> (y, argmax): (C, OH, OW, N), into y/argmax if given. The NCHW reference on
    the (N, C, H, W) view, transposed back."""
    yr, ar = maxpool2d_forward_reference(xs.transpose(3, 0, 1, 2), kh, kw, sh, sw, ph, pw)
    yr, ar = yr.transpose(1, 2, 3, 0), ar.transpose(1, 2, 3, 0)
    if y is None:
        y = np.ascontiguousarray(yr)
    else:
        y[...] = yr
    if argmax is None:
        argmax = np.ascontiguousarray(ar)
    else:
        argmax[...] = ar
    return y, argmax


def maxpool2d_backward_cm_reference(grad_y, argmax, h, w, grad_x=None):
    """grad_y, argmax: (C, OH, OW, N) -> grad_x: (C, H, W, N), into grad_x if given."""
    gx = maxpool2d_backward_reference(grad_y.transpose(3, 0, 1, 2), argmax.transpose(3, 0, 1, 2), h, w)
    if grad_x is None:
        return np.ascontiguousarray(gx.transpose(1, 2, 3, 0))
    grad_x[...] = gx.transpose(1, 2, 3, 0)
    return grad_x


@jit(parallel=True)
def maxpool2d_forward_cm(xs, kh, kw, sh, sw, ph, pw, y=None, argmax=None):
    """xs: (C, H, W, N) -> (y: (C, OH, OW, N), argmax: int64 (C, OH, OW, N)). One thread per output
    row (channel, oh). The window's first real pixel starts the maximum (as -inf would, with its
    index kept even if it is -inf); each later pixel replaces it if strictly greater or NaN."""
    c, h, w, n = xs.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if y is None:
        y = np.empty((c, oh, ow, n), dtype=xs.dtype)
    if argmax is None:
        argmax = np.empty((c, oh, ow, n), dtype=np.int64)
    for p in prange(c * oh):
        ci = p // oh
        yo = p % oh
        h0 = yo * sh - ph
        hs = max(h0, 0)
        he = min(h0 + kh, h)
        for xo in range(ow):
            w0 = xo * sw - pw
            ws = max(w0, 0)
            we = min(w0 + kw, w)
            first = hs * w + ws
            for b in range(n):
                y[ci, yo, xo, b] = xs[ci, hs, ws, b]
                argmax[ci, yo, xo, b] = first
            for ih in range(hs, he):
                for iw in range(ws, we):
                    k = ih * w + iw
                    if k == first:
                        continue
                    for b in range(n):                 # N contiguous images: a vectorised select
                        v = xs[ci, ih, iw, b]
                        cur = y[ci, yo, xo, b]
                        better = v > cur or v != v     # strictly greater, or NaN (NaN wins)
                        y[ci, yo, xo, b] = v if better else cur
                        argmax[ci, yo, xo, b] = k if better else argmax[ci, yo, xo, b]
    return y, argmax


@jit(parallel=True)
def maxpool2d_backward_cm(grad_y, argmax, h, w, grad_x=None):
    """grad_y, argmax: (C, OH, OW, N) -> grad_x: (C, H, W, N). One thread per channel (overlapping
    windows of one channel may route to the same pixel, so a channel is never split)."""
    c, oh, ow, n = grad_y.shape
    if grad_x is None:
        grad_x = np.empty((c, h, w, n), dtype=grad_y.dtype)
    flat = grad_x.reshape(c, h * w, n)                  # (C, H*W, N) view: the winner's k used as it is
    for ci in prange(c):
        flat[ci] = 0.0
        for yo in range(oh):
            for xo in range(ow):
                for b in range(n):
                    flat[ci, argmax[ci, yo, xo, b], b] += grad_y[ci, yo, xo, b]
    return grad_x
