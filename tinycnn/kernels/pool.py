"""Max- and average-pooling kernels, forward and backward, each beside a plain reference.

Shapes (NCHW, window KH x KW, stride sh, sw, padding ph, pw)::

    x: (N, C, H, W)  ->  y: (N, C, OH, OW),   OH = (H + 2*ph - KH) // sh + 1  (likewise OW)

Max pooling
    Padding is minus infinity: a padded cell never wins. ``argmax[n, c, oh, ow]`` is the flat index
    ``ih*W + iw`` of the winning input pixel in its (H, W) plane (PyTorch's ``return_indices``).
    Tie rule (PyTorch's CPU rule): the window is scanned row by row, left to right, and a value
    replaces the current maximum only if it is strictly greater, or if it is NaN. So among equal
    values the *first* in row-major order wins, and a NaN anywhere in the window wins (it propagates).
    Backward routes each output gradient to its winner; overlapping windows add up.

Average pooling
    Zero padding counts in the average (PyTorch's ``count_include_pad=True``): every window divides
    by KH*KW. Backward spreads ``grad_y / (KH*KW)`` evenly over the window's real pixels.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .im2col import conv_output_size


# ----------------------------------------------------------------------------------------------
# Plain references (Python loops: slow, obviously right).
# ----------------------------------------------------------------------------------------------

def maxpool2d_forward_reference(x, kh, kw, sh, sw, ph, pw, y=None, argmax=None):
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), argmax: int64 (N, C, OH, OW)), into y/argmax if given."""
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    y = np.empty((n, c, oh, ow), dtype=x.dtype) if y is None else y
    argmax = np.empty((n, c, oh, ow), dtype=np.int64) if argmax is None else argmax
    for b in range(n):
        for ci in range(c):
            for yo in range(oh):
                for xo in range(ow):
                    h0, w0 = yo * sh - ph, xo * sw - pw
                    best, where = -np.inf, max(h0, 0) * w + max(w0, 0)   # first real pixel
                    for ih in range(max(h0, 0), min(h0 + kh, h)):
                        for iw in range(max(w0, 0), min(w0 + kw, w)):
                            v = x[b, ci, ih, iw]
                            if v > best or np.isnan(v):
                                best, where = v, ih * w + iw
                    y[b, ci, yo, xo] = best
                    argmax[b, ci, yo, xo] = where
    return y, argmax


def maxpool2d_backward_reference(grad_y, argmax, h, w, grad_x=None):
    """grad_y, argmax: (N, C, OH, OW) -> grad_x: (N, C, H, W), into grad_x if given."""
    n, c = grad_y.shape[:2]
    flat = np.zeros((n, c, h * w), dtype=grad_y.dtype)
    for b in range(n):
        for ci in range(c):
            np.add.at(flat[b, ci], argmax[b, ci].ravel(), grad_y[b, ci].ravel())
    if grad_x is None:
        return flat.reshape(n, c, h, w)
    grad_x[...] = flat.reshape(n, c, h, w)
    return grad_x


def avgpool2d_forward_reference(x, kh, kw, sh, sw, ph, pw):
    """x: (N, C, H, W) -> y: (N, C, OH, OW); zero padding counts in the mean."""
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    return y / x.dtype.type(kh * kw)


def avgpool2d_backward_reference(grad_y, h, w, kh, kw, sh, sw, ph, pw):
    """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W)."""
    n, c, oh, ow = grad_y.shape
    g = grad_y / grad_y.dtype.type(kh * kw)
    gp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_y.dtype)
    for i in range(kh):
        for j in range(kw):
            gp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += g
    return gp[:, :, ph:ph + h, pw:pw + w].copy()


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures; one thread per (image, channel) plane.
# ----------------------------------------------------------------------------------------------

@jit(parallel=True)
def maxpool2d_forward(x, kh, kw, sh, sw, ph, pw, y=None, argmax=None):
    """x: (N, C, H, W) -> (y: (N, C, OH, OW), argmax: int64 (N, C, OH, OW)), written into ``y`` and
    ``argmax`` when given.

    2 x 2 windows without padding (``MaxPool2D(2)``, the common case) take an unrolled path: with a
    window only two pixels wide, the general loops below spend more time on loop bookkeeping than on
    comparing (measured 3x slower, benchmarks/PERFORMANCE.md, 'Max-pooling kernels'). Both paths visit each window's pixels in
    row-major order with the same strict ``>``/NaN rule, so values and winners are identical."""
    n, c, h, w = x.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    if y is None:
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
    if argmax is None:
        argmax = np.empty((n, c, oh, ow), dtype=np.int64)
    if kh == 2 and kw == 2 and ph == 0 and pw == 0:
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
            hs = max(h0, 0)
            he = min(h0 + kh, h)
            for xo in range(ow):
                w0 = xo * sw - pw
                ws = max(w0, 0)
                we = min(w0 + kw, w)
                best = -np.inf
                where = hs * w + ws
                for ih in range(hs, he):
                    for iw in range(ws, we):
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
    when given.

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
                flat[b, ci, argmax[b, ci, yo, xo]] += grad_y[b, ci, yo, xo]
    return grad_x


@jit(parallel=True)
def avgpool2d_forward(x, kh, kw, sh, sw, ph, pw):
    """x: (N, C, H, W) -> y: (N, C, OH, OW); zero padding counts in the mean."""
    n, c, h, w = x.shape
    oh = (h + 2 * ph - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    area = kh * kw
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for yo in range(oh):
            h0 = yo * sh - ph
            for xo in range(ow):
                w0 = xo * sw - pw
                y[b, ci, yo, xo] = 0.0          # accumulate in the input's dtype, like the reference
                for ih in range(max(h0, 0), min(h0 + kh, h)):
                    for iw in range(max(w0, 0), min(w0 + kw, w)):
                        y[b, ci, yo, xo] += x[b, ci, ih, iw]
                y[b, ci, yo, xo] = y[b, ci, yo, xo] / area
    return y


@jit(parallel=True)
def avgpool2d_backward(grad_y, h, w, kh, kw, sh, sw, ph, pw):
    """grad_y: (N, C, OH, OW) -> grad_x: (N, C, H, W)."""
    n, c, oh, ow = grad_y.shape
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    area = kh * kw
    for p in prange(n * c):
        b = p // c
        ci = p % c
        for yo in range(oh):
            h0 = yo * sh - ph
            for xo in range(ow):
                w0 = xo * sw - pw
                g = grad_y[b, ci, yo, xo] / area
                for ih in range(max(h0, 0), min(h0 + kh, h)):
                    for iw in range(max(w0, 0), min(w0 + kw, w)):
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
