"""Depthwise convolution on channel-major memory: one small filter per output channel, no im2col.

A depthwise Conv2D (``groups == in_channels``, out_channels = M * in_channels, M the *multiplier*)
convolves every input channel on its own: output channel o reads input channel ``c = o // M`` only
(the layer groups its output channels in order: channels c*M ... c*M + M - 1 belong to input c).
Through im2col it is C matrix products of shape (M, KH*KW) @ (KH*KW, N*OH*OW), far too thin for
BLAS, plus the im2col copy itself (KH*KW times the input). Here each output value is its KH*KW taps
summed in place, straight from the input. Memory is the executor's channel-major layout, images
fastest (``tinycnn.fast.layout``), so every innermost loop runs over N (for stride 1 along the rows:
over W*N) contiguous numbers in every array it touches, and vectorises::

    xs:  (C, H, W, N)       input
    w:   (O, KH, KW)        the layer's (O, 1, KH, KW) weight, O = M*C
    b:   (O,)               bias, or a length-0 array for none
    out: (O, OH, OW, N)     out[o, y, x, n] = b[o] + sum_{i,j} w[o, i, j] xs[o // M, y*sh - ph + i, x*sw - pw + j, n]
                            (zero where the index falls in the padding; OH = (H + 2*ph - KH) // sh + 1)

    depthwise_forward(xs, w, b, sh, sw, ph, pw, out) -> out
    depthwise_backward_input(g, w, sh, sw, ph, pw, dx) -> dx          dx: (C, H, W, N), g: (O, OH, OW, N)
                            dx[c, h, v, n] = sum over m < M and every (i, j, y, x) with
                            y*sh - ph + i = h, x*sw - pw + j = v of w[c*M + m, i, j] g[c*M + m, y, x, n]
    depthwise_backward_weight(xs, g, sh, sw, ph, pw, dw, db) -> dw    dw: (O, KH, KW); db: (O,) or length 0
                            dw[o, i, j] = sum_{y, x, n} g[o, y, x, n] xs[o // M, y*sh - ph + i, x*sw - pw + j, n]
                            db[o]       = sum_{y, x, n} g[o, y, x, n]   (skipped when db has length 0)

Threads: forward runs one (output channel, output row) per iteration, the input gradient one (input
channel, input row), which that iteration alone writes (gathering every tap that reads it, so no
races), the weight gradient one output channel. Every output element is written, so ``out``/``dx``
may come uninitialised from the allocator.

Error bounds (u = the unit roundoff of the dtype, gamma_n = n u / (1 - n u), Higham section 3.1;
S = the same sum over absolute values):

* forward: the bias, then the KH*KW products added in (i, j) order in the input's dtype:
  |out - exact| <= gamma_{KH*KW + 1} S (S = |b| + sum |w| |x|).
* input gradient: at most M*KH*KW products per element in the input's dtype:
  |dx - exact| <= gamma_{M*KH*KW} S.
* weight and bias gradient: a sum of N*OH*OW terms, so it is accumulated in float64. Products of two
  float32 numbers are exact in float64 (24 + 24 significand bits < 53); each tap keeps OW*N float64
  partial sums, each summing at most OH products, which are then added up: a float64 sum of the
  N*OH*OW terms in an order of depth at most OH + OW*N - 1, so the float64 value is within
  gamma_{OH + OW*N}(u_64) S of the exact sum (u_64 = 2^-53), and the result returned in the input's
  dtype is within u |exact| + (1 + u) gamma_{OH + OW*N}(u_64) S of it (float64 input: each product
  rounds once too, gamma_{OH + OW*N + 1}(u_64)). The bias gradient's float64 sum runs in order over
  all N*OH*OW terms: within u |exact| + (1 + u) gamma_{N*OH*OW}(u_64) S. For float32 at the sizes of
  a CIFAR-10 network (N*OH*OW < 10^6) the float64 term is below 1.2e-10 S: the gradient is as good as
  its one final rounding (float32's u = 2^-24) unless the terms cancel by more than a factor ~500
  (S > 500 |exact|).

The references beside the kernels (``*_reference``) are plain NumPy, one strided slice per tap, and
are the specification; ``tests/test_depthwise.py`` holds the kernels to them.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .im2col import conv_output_size


@jit(inline=True)
def _valid_columns(j, ow, w, sw, pw):
    """[x0, x1): the output columns x whose tap j reads a real input column x*sw - pw + j in [0, W)."""
    x0 = 0 if pw - j <= 0 else (pw - j + sw - 1) // sw
    x1 = min(ow, (w - 1 + pw - j) // sw + 1)                 # floor division: <= 0 when none
    return x0, max(x0, x1)


@jit(inline=True)
def _axpy(dst, src, a):
    """dst += a * src over two equally long 1-D runs. (A loop from 0 over fresh slices: Numba then
    needs no negative-index check per element, and LLVM vectorises it.)"""
    for q in range(dst.shape[0]):
        dst[q] += a * src[q]


@jit(inline=True)
def _dot_into(acc, a, b):
    """acc += a * b elementwise in float64 over three equally long 1-D runs (float32 products are
    exact in float64)."""
    for q in range(acc.shape[0]):
        acc[q] += np.float64(a[q]) * np.float64(b[q])


# ----------------------------------------------------------------------------------------------
# Plain NumPy references: one strided slice of the padded input per tap (i, j).
# ----------------------------------------------------------------------------------------------

def _padded_per_output_channel(xs, o, ph, pw):
    """xs: (C, H, W, N) -> (O, H + 2ph, W + 2pw, N): zero padded, input channel c repeated for its M
    output channels c*M ... c*M + M - 1."""
    c = xs.shape[0]
    xp = np.pad(xs, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    return np.repeat(xp, o // c, axis=0)


def _tap(arr, i, j, sh, sw, oh, ow):
    """The (.., OH, OW, N) strided slice of a padded (.., Hp, Wp, N) array that tap (i, j) reads."""
    return arr[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]


def depthwise_forward_reference(xs, w, b, sh, sw, ph, pw, out):
    """xs: (C, H, W, N), w: (O, KH, KW), b: (O,) or (0,) -> out: (O, OH, OW, N), filled and returned.
    Plain NumPy: the taps' products summed in the input's dtype, then the bias."""
    c, h, wd, n = xs.shape
    o, kh, kw = w.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(wd, kw, sw, pw)
    xr = _padded_per_output_channel(xs, o, ph, pw)                   # (O, Hp, Wp, N)
    acc = np.zeros((o, oh, ow, n), dtype=out.dtype)
    for i in range(kh):
        for j in range(kw):
            acc += w[:, i, j, None, None, None] * _tap(xr, i, j, sh, sw, oh, ow)
    if b.shape[0] > 0:
        acc += b[:, None, None, None]
    out[...] = acc
    return out


def depthwise_backward_input_reference(g, w, sh, sw, ph, pw, dx):
    """g: (O, OH, OW, N), w: (O, KH, KW) -> dx: (C, H, W, N) (its shape gives C, H, W), filled and
    returned. Plain NumPy: each tap's w * g added into the padded input it read, the M output channels
    of an input channel summed, the padding cut off."""
    o, oh, ow, n = g.shape
    c, h, wd, _ = dx.shape
    _, kh, kw = w.shape
    ph_total, pw_total = h + 2 * ph, wd + 2 * pw
    dxp = np.zeros((o, ph_total, pw_total, n), dtype=dx.dtype)      # per output channel, padded
    for i in range(kh):
        for j in range(kw):
            _tap(dxp, i, j, sh, sw, oh, ow)[...] += w[:, i, j, None, None, None] * g
    summed = dxp.reshape(c, o // c, ph_total, pw_total, n).sum(axis=1)
    dx[...] = summed[:, ph:ph + h, pw:pw + wd]
    return dx


def depthwise_backward_weight_reference(xs, g, sh, sw, ph, pw, dw, db):
    """xs: (C, H, W, N), g: (O, OH, OW, N) -> dw: (O, KH, KW) (its shape gives KH, KW), filled and
    returned; db: (O,) filled with the sums of g, or length 0 (left alone). Plain NumPy, float64
    products and sums, rounded once to dw's dtype."""
    o, oh, ow, n = g.shape
    _, kh, kw = dw.shape
    xr = _padded_per_output_channel(xs, o, ph, pw).astype(np.float64)
    g64 = g.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            dw[:, i, j] = (g64 * _tap(xr, i, j, sh, sw, oh, ow)).sum(axis=(1, 2, 3))
    if db.shape[0] > 0:
        db[...] = g64.sum(axis=(1, 2, 3))
    return dw


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures. Arrays C-contiguous.
# ----------------------------------------------------------------------------------------------

@jit(parallel=True)
def depthwise_forward(xs, w, b, sh, sw, ph, pw, out):
    """xs: (C, H, W, N), w: (O, KH, KW), b: (O,) or (0,) -> out: (O, OH, OW, N), filled and returned.
    One (output channel, output row) per iteration."""
    c, h, wd, n = xs.shape
    o, kh, kw = w.shape
    oh, ow = out.shape[1], out.shape[2]
    mult = o // c
    has_bias = b.shape[0] > 0
    xs_rows = xs.reshape((c, h, wd * n))                      # a row's (W, N) as one run
    out_rows = out.reshape((o, oh, ow * n))
    for p in prange(o * oh):
        oc = p // oh
        y = p % oh
        ci = oc // mult
        row = out_rows[oc, y]                                 # (OW*N,)
        if has_bias:
            row[:] = b[oc]
        else:
            row[:] = 0.0
        for i in range(kh):
            ih = y * sh - ph + i
            if ih < 0 or ih >= h:
                continue                                      # the whole tap row lies in the padding
            src = xs_rows[ci, ih]                             # (W*N,)
            for j in range(kw):
                wv = w[oc, i, j]
                x0, x1 = _valid_columns(j, ow, wd, sw, pw)
                if sw == 1:                                   # columns x0..x1 read one contiguous run
                    _axpy(row[x0 * n:x1 * n], src[(x0 - pw + j) * n:(x1 - pw + j) * n], wv)
                else:
                    for x in range(x0, x1):                   # N contiguous numbers in both arrays
                        s = (x * sw - pw + j) * n
                        _axpy(row[x * n:(x + 1) * n], src[s:s + n], wv)
    return out


@jit(parallel=True)
def depthwise_backward_input(g, w, sh, sw, ph, pw, dx):
    """g: (O, OH, OW, N), w: (O, KH, KW) -> dx: (C, H, W, N), filled and returned. One (input channel,
    input row) per iteration: it alone writes dx[c, h], gathering every tap of the channel's M filters
    that read row h."""
    o, oh, ow, n = g.shape
    c, h, wd, _ = dx.shape
    _, kh, kw = w.shape
    mult = o // c
    g_rows = g.reshape((o, oh, ow * n))
    dx_rows = dx.reshape((c, h, wd * n))
    for p in prange(c * h):
        ci = p // h
        ih = p % h
        row = dx_rows[ci, ih]                                 # (W*N,)
        row[:] = 0.0
        for m in range(mult):
            oc = ci * mult + m
            for i in range(kh):
                t = ih + ph - i                               # = y * sh for the output row y that reads ih
                if t < 0 or t % sh != 0:
                    continue
                y = t // sh
                if y >= oh:
                    continue
                src = g_rows[oc, y]                           # (OW*N,)
                for j in range(kw):
                    wv = w[oc, i, j]
                    x0, x1 = _valid_columns(j, ow, wd, sw, pw)
                    if sw == 1:
                        _axpy(row[(x0 - pw + j) * n:(x1 - pw + j) * n], src[x0 * n:x1 * n], wv)
                    else:
                        for x in range(x0, x1):
                            d = (x * sw - pw + j) * n
                            _axpy(row[d:d + n], src[x * n:(x + 1) * n], wv)
    return dx


@jit(parallel=True)
def depthwise_backward_weight(xs, g, sh, sw, ph, pw, dw, db):
    """xs: (C, H, W, N), g: (O, OH, OW, N) -> dw: (O, KH, KW), filled and returned; db: (O,) filled with
    the sums of g, or length 0 (left alone). float64 accumulators (the bound is in the module's
    docstring). One output channel per iteration."""
    c, h, wd, n = xs.shape
    o, oh, ow, _ = g.shape
    _, kh, kw = dw.shape
    mult = o // c
    with_bias = db.shape[0] > 0
    xs_rows = xs.reshape((c, h, wd * n))
    g_rows = g.reshape((o, oh, ow * n))
    for oc in prange(o):
        ci = oc // mult
        acc = np.empty(ow * n, dtype=np.float64)              # per (x, n): the tap's partial sums over y
        for i in range(kh):
            for j in range(kw):
                x0, x1 = _valid_columns(j, ow, wd, sw, pw)
                acc[:] = 0.0
                for y in range(oh):
                    ih = y * sh - ph + i
                    if ih < 0 or ih >= h:
                        continue
                    src = xs_rows[ci, ih]
                    gr = g_rows[oc, y]
                    if sw == 1:
                        _dot_into(acc[x0 * n:x1 * n], gr[x0 * n:x1 * n], src[(x0 - pw + j) * n:(x1 - pw + j) * n])
                    else:
                        for x in range(x0, x1):
                            s = (x * sw - pw + j) * n
                            _dot_into(acc[x * n:(x + 1) * n], gr[x * n:(x + 1) * n], src[s:s + n])
                total = 0.0
                for q in range(x0 * n, x1 * n):
                    total += acc[q]
                dw[oc, i, j] = total
        if with_bias:
            total = 0.0
            for y in range(oh):
                gr = g_rows[oc, y]
                for q in range(ow * n):
                    total += np.float64(gr[q])
            db[oc] = total
    return dw
