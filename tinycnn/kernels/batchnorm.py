"""Batch-norm kernels on channel-major memory, each beside a plain NumPy reference (same signature).

The executor hands batch norm its activation as (C, M) memory, M = H*W*N: one channel is one
contiguous row, so a channel's statistics and its normalisation are passes along one row, and the
channels run in parallel. The formulas are those of ``tinycnn.layers.batchnorm`` (read its docstring):

    bn_stats(x) -> (mean, var)                       float64 (C,): mean and *biased* variance of each
                                                     row, two passes (mean first, then squared
                                                     deviations), accumulated in float64
    bn_normalize(x, mean, invstd, gamma, beta, affine, relu, zero, x_hat, y)
                                                     x_hat = round((x - mean) * invstd) (float64 inside)
                                                     y = x_hat * gamma + beta (in x's dtype), then
                                                     max(., 0) when ``relu`` (a fused ReLU; NaN stays)
    bn_backward_sums(g, x_hat, y, relu) -> (sum_g, sum_gx)
                                                     float64 (C,); g masked by y > 0 when ``relu``
                                                     (ReLU's rule: gradient 0 at 0 and at NaN)
    bn_backward_dx(g, x_hat, y, relu, coef, sum_g, sum_gx, m, batch_stats, gx)
                                                     the layer's dx = coef (M g - sum_g - x_hat sum_gx),
                                                     coef = gamma/(M sigma), or with running
                                                     statistics dx = coef g, coef = gamma/sigma

Error bound of the statistics (float64 accumulation of M float32 or float64 values, summed in order):
|computed - exact| <= (M - 1) u_64 sum|x| + O(u_64^2) for the sum, u_64 = 2^-53; for M <= 2^24 values
that is below 2^-29 sum|x|, far below float32's own rounding of the result (2^-24), so in float32 the
statistics are as good as exact. In float64 they agree with NumPy's pairwise sums within that bound,
which the property tests use. The products g * x_hat are formed in the input's dtype, as the layer does.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange


def bn_stats_reference(x):
    """x: (C, M) -> (mean, var): float64 (C,) each, var biased. Plain NumPy."""
    mean = x.mean(axis=1, dtype=np.float64)
    d = x - mean[:, None]
    return mean, np.mean(d * d, axis=1)


def bn_normalize_reference(x, mean, invstd, gamma, beta, affine, relu, zero, x_hat, y):
    """x: (C, M); mean, invstd: float64 (C,); gamma, beta: (C,) in x's dtype; zero: 0 in x's dtype.
    Writes x_hat, y: (C, M) and returns them. Plain NumPy."""
    x_hat[...] = (x - mean[:, None]) * invstd[:, None]
    if affine:
        np.add(x_hat * gamma[:, None], beta[:, None], out=y)
    else:
        y[...] = x_hat
    if relu:
        y[...] = np.where((y > 0) | np.isnan(y), y, zero)
    return x_hat, y


def bn_backward_sums_reference(g, x_hat, y, relu, zero):
    """g, x_hat, y: (C, M) -> (sum_g, sum_gx): float64 (C,), g masked by y > 0 when ``relu``."""
    if relu:
        g = np.where(y > 0, g, zero)
    return g.sum(axis=1, dtype=np.float64), (g * x_hat).sum(axis=1, dtype=np.float64)


def bn_backward_dx_reference(g, x_hat, y, relu, zero, coef, sum_g, sum_gx, m, batch_stats, gx):
    """coef, sum_g, sum_gx: (C,) in x's dtype; m: M in x's dtype. Writes gx: (C, M) and returns it:
    coef * (m g - sum_g - x_hat sum_gx) with batch statistics, else coef * g."""
    if relu:
        g = np.where(y > 0, g, zero)
    if batch_stats:
        gx[...] = coef[:, None] * (m * g - sum_g[:, None] - x_hat * sum_gx[:, None])
    else:
        gx[...] = g * coef[:, None]
    return gx


@jit(parallel=True)
def bn_stats(x):
    """x: (C, M) C-contiguous -> (mean, var) float64 (C,); one channel per thread."""
    c, m = x.shape
    mean = np.empty(c, dtype=np.float64)
    var = np.empty(c, dtype=np.float64)
    for ci in prange(c):
        s = 0.0
        for i in range(m):
            s += x[ci, i]
        mu = s / m
        v = 0.0
        for i in range(m):
            d = x[ci, i] - mu
            v += d * d
        mean[ci] = mu
        var[ci] = v / m
    return mean, var


@jit(parallel=True)
def bn_normalize(x, mean, invstd, gamma, beta, affine, relu, zero, x_hat, y):
    """See the reference; one channel per thread."""
    c, m = x.shape
    for ci in prange(c):
        mu = mean[ci]
        s = invstd[ci]
        ga = gamma[ci]
        be = beta[ci]
        for i in range(m):
            x_hat[ci, i] = (x[ci, i] - mu) * s                         # float64, rounded once on store
            v = x_hat[ci, i]
            if affine:
                v = v * ga + be                                        # in x's dtype
            if relu and not (v > 0 or v != v):
                v = zero
            y[ci, i] = v
    return x_hat, y


@jit(parallel=True)
def bn_backward_sums(g, x_hat, y, relu, zero):
    """See the reference; one channel per thread, float64 accumulators."""
    c, m = g.shape
    sum_g = np.empty(c, dtype=np.float64)
    sum_gx = np.empty(c, dtype=np.float64)
    for ci in prange(c):
        sg = 0.0
        sgx = 0.0
        for i in range(m):
            gi = g[ci, i]
            if relu and not y[ci, i] > 0:
                gi = zero
            sg += gi
            sgx += gi * x_hat[ci, i]                                   # the product in x's dtype
        sum_g[ci] = sg
        sum_gx[ci] = sgx
    return sum_g, sum_gx


@jit(parallel=True)
def bn_backward_dx(g, x_hat, y, relu, zero, coef, sum_g, sum_gx, m, batch_stats, gx):
    """See the reference; one channel per thread."""
    c, n = g.shape
    for ci in prange(c):
        k = coef[ci]
        sg = sum_g[ci]
        sgx = sum_gx[ci]
        for i in range(n):
            gi = g[ci, i]
            if relu and not y[ci, i] > 0:
                gi = zero
            if batch_stats:
                gx[ci, i] = k * (m * gi - sg - x_hat[ci, i] * sgx)
            else:
                gx[ci, i] = gi * k
    return gx
