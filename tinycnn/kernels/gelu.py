"""GELU kernels (the exact, erf form: PyTorch's default), each beside a plain NumPy reference with
the same signature. They work on flat (1-D) arrays, so a caller hands them any memory layout.

    gelu_forward(x, y, slope) -> (y, slope)    y = x Phi(x), slope = Phi(x) + x phi(x) = GELU'(x)
    gelu_backward(slope, g, out) -> out        out = g * slope

Phi(x) = 0.5 erfc(-x / sqrt 2) is the normal CDF, phi(x) = exp(-x^2 / 2) / sqrt(2 pi) its density:
the formulas of ``tinycnn.layers.pointwise.GELU``, evaluated per element in float64 and rounded once
to the array's dtype on store. Forward computes Phi and phi once and uses them for both y and the
slope, so backward is one multiply per element (the layer evaluates erfc again in backward).

How Phi is computed: not with the C library's erfc, which is a call per element that no compiler
vectorises (~25 ns per element on the benchmark machine), but with arithmetic alone, which LLVM turns
into AVX-512 code (~5 ns; both figures one core, loaded machine). With z = |x| / sqrt 2:

    erfc(z) = exp(-z^2) erfcx(z)          erfcx, the scaled complementary error function, is smooth
                                          and bounded on [0, inf): 1 at 0, ~ 1 / (z sqrt pi) far out
    erfcx(z) = sum_k' c_k T_k(u),  u = (z - 2) / (z + 2)    (a Chebyshev series on u in [-1, 1); the
                                          28 coefficients ``ERFCX_CHEB`` are erfcx's, computed with
                                          mpmath at 40 digits by ``tests/test_fast_gelu.py``, which
                                          checks them; the terms left out are below 1e-17)
    exp(a), a = -x^2/2 <= 0 (exact for a float32 x): exp(a / 1024) by its Taylor series to the 16th
                                          power (|a / 1024| <= 0.98, clamped), then squared 10 times
    Phi(x) = w for x < 0, 1 - w for x >= 0, w = 0.5 exp(-z^2) erfcx(z) = Phi(-|x|)

Error (float64, relative): the squarings multiply the Taylor value's few roundings by 1024
(~1024 * 3 u_64 = 7e-13); the Chebyshev sum adds ~28 * 2 u_64 sum|c_k| absolute, below 1e-13
relative wherever erfcx(z) >= 0.02 (z <= 28, i.e. every x whose exp(-x^2/2) is a normal float64).
So y and the slope are within ``GELU_REL_ERR`` = 2e-12 (relative; for the slope, of |Phi| + |x phi|,
since the two terms cancel near x = -0.75) of the exact values, far below float32's rounding
(6e-8): stored in float32 the result is the exact value rounded once, but for the rare value that
lies within 2e-12 of a rounding boundary. In float64 it is within 2e-12 of the layer's libm value,
far inside the executor's 1e-10 bar. ``tests/test_fast_gelu.py`` checks the bound against mpmath.
Special values as the layer: NaN stays NaN, GELU(inf) = inf, GELU(-inf) = NaN (-inf * 0), slope NaN
at +-inf.

The scalar helper ``gelu_parts`` is shared with the fused batch-norm kernels
(``tinycnn.kernels.batchnorm``), compiled into them. Caveat of Numba's on-disk cache: it checks the
timestamp of a kernel's own file only, so after editing this file, touch ``batchnorm.py`` (or delete
``tinycnn/kernels/__pycache__/batchnorm.*.nb*``) or the batch-norm kernels keep the old helper.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import jit, prange

GELU_REL_ERR = 2e-12
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
EXP_MIN_ARG = -1000.0                  # exp(a) for a below this is 0 in float64 anyway
EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(17))      # 1/k!, k = 0..16
ERFCX_CHEB = (                         # erfcx(z) = c_0 / 2 + sum_k>=1 c_k T_k((z - 2) / (z + 2))
    0.7547521992517189, -0.4825091196506807, 0.12232459533097705, -0.017831149719276792,
    0.00032117365249439837, 0.0003503952564796157, -2.243880650620326e-05, -1.0537433119356064e-05,
    5.671331132647553e-07, 4.297681576665876e-07, 5.104952512865141e-09, -1.8899699318179606e-08,
    -2.242755529856193e-09, 6.855254370550185e-10, 2.1487959525733994e-10, -5.515409718485674e-12,
    -1.3477495048063454e-11, -2.0863894672105998e-12, 4.481881445148597e-13, 2.2684175777875652e-13,
    1.8505867519748427e-14, -1.1509611397547722e-14, -4.00989014707125e-15, -1.398284570577713e-16,
    2.635380772175244e-16, 7.953987696969458e-17, 9.151033515544547e-19, -6.071172780200994e-18,
)


# -- plain references: the same formulas, array at a time --------------------------------------

def _exp_nonpositive_reference(a):
    a = np.maximum(a, EXP_MIN_ARG)
    r = a * (1.0 / 1024.0)
    p = np.full_like(r, EXP_TAYLOR[16])
    for k in range(15, -1, -1):
        p = p * r + EXP_TAYLOR[k]
    for _ in range(10):
        p = p * p
    return p


def _erfcx_reference(z):
    z = np.minimum(z, 1e10)
    u = (z - 2.0) / (z + 2.0)
    u2 = 2.0 * u
    b1, b2 = np.full_like(u, ERFCX_CHEB[27]), np.zeros_like(u)
    for k in range(26, 0, -1):
        b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[k], b1
    return u * b1 - b2 + 0.5 * ERFCX_CHEB[0]


def gelu_parts_reference(v):
    """float64 array v -> (Phi(v), exp(-v^2 / 2)), float64 arrays."""
    e = _exp_nonpositive_reference(-0.5 * v * v)
    w = 0.5 * e * _erfcx_reference(np.abs(v) * INV_SQRT_2)
    return np.where(v < 0, w, 1.0 - w), e


def gelu_forward_reference(x, y, slope):
    """x: (n,) -> writes y, slope: (n,) in x's dtype and returns them. Plain NumPy (float64 inside)."""
    v = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        cdf, e = gelu_parts_reference(v)
        y[...] = v * cdf
        slope[...] = cdf + v * (e * INV_SQRT_2PI)
    return y, slope


def gelu_backward_reference(slope, g, out):
    """slope, g: (n,) -> writes out = g * slope (in g's dtype) and returns it."""
    np.multiply(g, slope, out=out)
    return out


# -- kernels -----------------------------------------------------------------------------------
# The sums are written out term by term: a loop inside the element loop would keep LLVM from
# vectorising the element loop (it vectorises innermost loops only).

@jit(inline=True, float_division=True)
def _exp_nonpositive(a):
    """float64 a <= 0 -> exp(a) (see the module docstring)."""
    a = max(a, EXP_MIN_ARG)
    r = a * (1.0 / 1024.0)
    p = EXP_TAYLOR[16]
    p = p * r + EXP_TAYLOR[15]
    p = p * r + EXP_TAYLOR[14]
    p = p * r + EXP_TAYLOR[13]
    p = p * r + EXP_TAYLOR[12]
    p = p * r + EXP_TAYLOR[11]
    p = p * r + EXP_TAYLOR[10]
    p = p * r + EXP_TAYLOR[9]
    p = p * r + EXP_TAYLOR[8]
    p = p * r + EXP_TAYLOR[7]
    p = p * r + EXP_TAYLOR[6]
    p = p * r + EXP_TAYLOR[5]
    p = p * r + EXP_TAYLOR[4]
    p = p * r + EXP_TAYLOR[3]
    p = p * r + EXP_TAYLOR[2]
    p = p * r + EXP_TAYLOR[1]
    p = p * r + EXP_TAYLOR[0]
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p


@jit(inline=True, float_division=True)
def _erfcx(z):
    """float64 z >= 0 -> erfcx(z) = exp(z^2) erfc(z), Clenshaw's recurrence on ERFCX_CHEB."""
    z = min(z, 1e10)
    u = (z - 2.0) / (z + 2.0)
    u2 = 2.0 * u
    b2 = 0.0
    b1 = ERFCX_CHEB[27]
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[26], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[25], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[24], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[23], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[22], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[21], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[20], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[19], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[18], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[17], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[16], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[15], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[14], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[13], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[12], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[11], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[10], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[9], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[8], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[7], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[6], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[5], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[4], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[3], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[2], b1
    b1, b2 = u2 * b1 - b2 + ERFCX_CHEB[1], b1
    return u * b1 - b2 + 0.5 * ERFCX_CHEB[0]


@jit(inline=True, float_division=True)
def gelu_parts(v):
    """float64 v -> (Phi(v), exp(-v^2 / 2)), float64."""
    e = _exp_nonpositive(-0.5 * v * v)
    w = 0.5 * e * _erfcx(abs(v) * INV_SQRT_2)
    cdf = w if v < 0 else 1.0 - w
    return cdf, e


@jit(parallel=True, float_division=True)
def gelu_forward(x, y, slope):
    """See the reference; parallel over the elements, float64 inside, one rounding on each store."""
    n = x.shape[0]
    for i in prange(n):
        v = np.float64(x[i])
        cdf, e = gelu_parts(v)
        y[i] = v * cdf
        slope[i] = cdf + v * (e * INV_SQRT_2PI)
    return y, slope


@jit(parallel=True)
def gelu_backward(slope, g, out):
    """See the reference; parallel over the elements."""
    n = g.shape[0]
    for i in prange(n):
        out[i] = g[i] * slope[i]
    return out
