"""Batch-norm kernels on channel-major memory, each beside a plain NumPy reference (same signature).

The executor hands batch norm its activation as (C, M) memory, M = H*W*N: one channel is one
contiguous row, so a channel's statistics and its normalisation are passes along one row, and the
channels run in parallel. The formulas are those of ``tinycnn.layers.batchnorm`` (read its docstring):

    bn_stats(x) -> (mean, var)                       float64 (C,): mean and *biased* variance of each
                                                     row, two passes (mean first, then squared
                                                     deviations), accumulated in float64
    bn_sums(x), bn_sqdev(x, mean)                    float64 (C,): a lane's share of the two passes,
                                                     when lanes normalise with the whole batch's
                                                     statistics (the sums of all lanes, in lane order)
    bn_normalize(x, mean, invstd, gamma, beta, affine, act, zero, x_hat, y, slope)
                                                     x_hat = round((x - mean) * invstd) (float64 inside)
                                                     z = x_hat * gamma + beta (in x's dtype), then
                                                     y = z (act 0), max(z, 0) (act 1: a fused ReLU;
                                                     NaN stays) or GELU(z) (act 2: a fused exact
                                                     GELU, which also writes slope = GELU'(z);
                                                     ``tinycnn.kernels.gelu``)
    bn_backward_sums(g, x_hat, y, slope, act, zero) -> (sum_g, sum_gx)
                                                     float64 (C,) of g', the gradient at z: g masked
                                                     by y > 0 (act 1: ReLU's rule, gradient 0 at 0 and
                                                     at NaN), g * slope (act 2), else g
    bn_backward_dx(g, x_hat, y, slope, act, zero, coef, sum_g, sum_gx, m, batch_stats, gx)
                                                     the layer's dx = coef (M g' - sum_g - x_hat sum_gx),
                                                     coef = gamma/(M sigma), or with running
                                                     statistics dx = coef g', coef = gamma/sigma

Error bound of the statistics (float64 accumulation of M float32 or float64 values, summed in order):
|computed - exact| <= (M - 1) u_64 sum|x| + O(u_64^2) for the sum, u_64 = 2^-53; for M <= 2^24 values
that is below 2^-29 sum|x|, far below float32's own rounding of the result (2^-24), so in float32 the
statistics are as good as exact. In float64 they agree with NumPy's pairwise sums within that bound,
which the property tests use. The products g * x_hat are formed in the input's dtype, as the layer does.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange
from .gelu import INV_SQRT_2PI, gelu_forward_reference, gelu_parts

ACT_NONE, ACT_RELU, ACT_GELU = 0, 1, 2      # the activation fused after the batch norm (``act``)


def bn_stats_reference(x):
    """x: (C, M) -> (mean, var): float64 (C,) each, var biased. Plain NumPy."""
    mean = x.mean(axis=1, dtype=np.float64)
    d = x - mean[:, None]
    return mean, np.mean(d * d, axis=1)


def bn_sums_reference(x):
    """x: (C, M) -> float64 (C,): each row's sum (a lane's share of a channel's statistics)."""
    return x.sum(axis=1, dtype=np.float64)


def bn_sqdev_reference(x, mean):
    """x: (C, M), mean: float64 (C,) -> float64 (C,): each row's sum of squared deviations from mean."""
    d = x - mean[:, None]
    return (d * d).sum(axis=1)


def bn_normalize_reference(x, mean, invstd, gamma, beta, affine, act, zero, x_hat, y, slope):
    """x: (C, M); mean, invstd: float64 (C,); gamma, beta: (C,) in x's dtype; act: ACT_NONE, ACT_RELU or
    ACT_GELU; zero: 0 in x's dtype. Writes x_hat, y: (C, M) (and slope: (C, M) for ACT_GELU, else
    untouched) and returns x_hat, y. Plain NumPy."""
    x_hat[...] = (x - mean[:, None]) * invstd[:, None]
    if affine:
        np.add(x_hat * gamma[:, None], beta[:, None], out=y)
    else:
        y[...] = x_hat
    if act == ACT_RELU:
        y[...] = np.where((y > 0) | np.isnan(y), y, zero)
    elif act == ACT_GELU:
        z = y.reshape(-1).copy()                                       # the batch norm's output
        gelu_forward_reference(z, y.reshape(-1), slope.reshape(-1))
    return x_hat, y


def _gradient_at_z(g, y, slope, act, zero):
    """The gradient at the batch norm's own output z from the one at y (the fused activation's)."""
    if act == ACT_RELU:
        return np.where(y > 0, g, zero)
    if act == ACT_GELU:
        return g * slope
    return g


def bn_backward_sums_reference(g, x_hat, y, slope, act, zero):
    """g, x_hat, y, slope: (C, M) -> (sum_g', sum_g'x): float64 (C,), g' the gradient at z."""
    g = _gradient_at_z(g, y, slope, act, zero)
    return g.sum(axis=1, dtype=np.float64), (g * x_hat).sum(axis=1, dtype=np.float64)


def bn_backward_dx_reference(g, x_hat, y, slope, act, zero, coef, sum_g, sum_gx, m, batch_stats, gx):
    """coef, sum_g, sum_gx: (C,) in x's dtype; m: M in x's dtype. Writes gx: (C, M) and returns it:
    coef * (m g' - sum_g - x_hat sum_gx) with batch statistics, else coef * g'."""
    g = _gradient_at_z(g, y, slope, act, zero)
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
def bn_sums(x):
    """See the reference; one channel per thread, float64 accumulators."""
    c, m = x.shape
    out = np.empty(c, dtype=np.float64)
    for ci in prange(c):
        s = 0.0
        for i in range(m):
            s += x[ci, i]
        out[ci] = s
    return out


@jit(parallel=True)
def bn_sqdev(x, mean):
    """See the reference; one channel per thread, float64 accumulators."""
    c, m = x.shape
    out = np.empty(c, dtype=np.float64)
    for ci in prange(c):
        mu = mean[ci]
        v = 0.0
        for i in range(m):
            d = x[ci, i] - mu
            v += d * d
        out[ci] = v
    return out


@jit(parallel=True, float_division=True)
def bn_normalize(x, mean, invstd, gamma, beta, affine, act, zero, x_hat, y, slope):
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
            if act == ACT_GELU:
                z = np.float64(v)
                cdf, e = gelu_parts(z)
                y[ci, i] = z * cdf                                     # float64, rounded once on store
                slope[ci, i] = cdf + z * (e * INV_SQRT_2PI)
                continue
            if act == ACT_RELU and not (v > 0 or v != v):
                v = zero
            y[ci, i] = v
    return x_hat, y


@jit(parallel=True)
def bn_backward_sums(g, x_hat, y, slope, act, zero):
    """See the reference; one channel per thread, float64 accumulators."""
    c, m = g.shape
    sum_g = np.empty(c, dtype=np.float64)
    sum_gx = np.empty(c, dtype=np.float64)
    for ci in prange(c):
        sg = 0.0
        sgx = 0.0
        for i in range(m):
            gi = g[ci, i]
            if act == ACT_RELU and not y[ci, i] > 0:
                gi = zero
            elif act == ACT_GELU:
                gi = gi * slope[ci, i]                                 # in x's dtype
            sg += gi
            sgx += gi * x_hat[ci, i]                                   # the product in x's dtype
        sum_g[ci] = sg
        sum_gx[ci] = sgx
    return sum_g, sum_gx


@jit(parallel=True)
def bn_backward_dx(g, x_hat, y, slope, act, zero, coef, sum_g, sum_gx, m, batch_stats, gx):
    """See the reference; one channel per thread."""
    c, n = g.shape
    for ci in prange(c):
        k = coef[ci]
        sg = sum_g[ci]
        sgx = sum_gx[ci]
        for i in range(n):
            gi = g[ci, i]
            if act == ACT_RELU and not y[ci, i] > 0:
                gi = zero
            elif act == ACT_GELU:
                gi = gi * slope[ci, i]
            if batch_stats:
                gx[ci, i] = k * (m * gi - sg - x_hat[ci, i] * sgx)
            else:
                gx[ci, i] = gi * k
    return gx
