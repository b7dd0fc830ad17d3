"""Winograd F(2x2, 3x3): a 3x3, stride-1 convolution with 16 multiplications per 2x2 output tile
and channel pair instead of 36.

One output tile Y (2 x 2) of one (input channel, output channel) pair comes from a 4 x 4 input tile d
(read with stride 2, so neighbouring tiles overlap by two pixels) and the 3 x 3 filter g (Lavin & Gray
2016, 'Fast Algorithms for Convolutional Neural Networks')::

    U = G g G^T          (4 x 4)   filter transform      G   = [[1, 0, 0], [1/2, 1/2, 1/2],
    V = B^T d B          (4 x 4)   input transform             [1/2, -1/2, 1/2], [0, 0, 1]]
    M = U * V            (4 x 4)   elementwise, summed   B^T = [[1, 0, -1, 0], [0, 1, 1, 0],
                                   over input channels         [0, -1, 1, 0], [0, 1, 0, -1]]
    Y = A^T M A (+ b)    (2 x 2)   output transform      A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Because the transforms are linear, the sum over the C input channels can be done in the transformed
domain: for each of the 16 positions k = (xi, nu) of the 4 x 4 tile, ``M[k] = U[k] @ V[k]`` is an
ordinary matrix multiply (O, C) @ (C, T) over all T = N * TH * TW tiles at once. That is the whole
point: 16 products of (O, C, T), i.e. 16 * O * C * T multiply-adds, where im2col's one product of
(O, 9C, OH*OW*N) costs 9 * O * C * 4T = 36 * O * C * T (for even OH, OW).

Layouts (channel-major, images fastest, as ``im2col_cm``)::

    xs: (C, H, W, N)                    input; padding ph (rows) and pw (columns) of zeros on both sides
    OH = H + 2 ph - 2, OW = W + 2 pw - 2; TH = ceil(OH / 2), TW = ceil(OW / 2)
    tile (ty, tx) of image n: column q = (ty * TW + tx) * N + n; it reads input rows 2 ty - ph ... + 3
        and columns 2 tx - pw ... + 3 (zero outside the input: the padding, and the overhang of the
        last tile when OH or OW is odd)
    V: (16, C, TH*TW*N)                 winograd_input:  V[4 xi + nu, c, q] = (B^T d B)[xi, nu]
    U: (16, O, C)                       winograd_filter: U[4 xi + nu, o, c] = (G g G^T)[xi, nu]
    M: (16, O, TH*TW*N)                 M[k] = U[k] @ V[k]  (the caller's 16 products)
    out: (O, OH, OW, N)                 winograd_output: the 2 x 2 tiles, cropped at an odd border, + bias

An odd OH (or OW) makes the last row (column) of tiles compute one row of outputs nobody reads: the
input tile overhangs into zeros and the output transform writes only the rows inside OH.

Float error (u: unit roundoff of the dtype; gamma_n = n u / (1 - n u), Higham's bound for any sum of
n terms, in any order, FMA or not). Write |G|, |B^T|, |A^T| for the elementwise absolute matrices and

    S_W = |A^T| [ sum_c (|G| |g_c| |G|^T) * (|B^T| |d_c| |B|) ] |A| + |b|        (per output element)

(the same algorithm run on |g|, |d|, |b| with the transforms' absolute values, exactly). Then the
computed output differs from the exact convolution by at most

    |y_computed - y| <= gamma_{C+11} * S_W

Derivation, one output element: multiplications by 0, +-1 and +-1/2 are exact (no underflow assumed),
so only additions round.
  * U is formed in float64 and rounded once to the dtype; G has at most 3 nonzeros a row, so each of
    its two stages is a sum of at most 3 terms: |U_c - U| <= gamma_4 |G||g||G|^T (float64 or float32:
    gamma_4 covers both the two float64 stages and the one final rounding).
  * V: each row of B^T has 2 nonzeros, so each stage is one addition: |V_c - V| <= gamma_2 |B^T||d||B|.
  * M[k] = sum over C products of the perturbed operands, rounded: |M_c - M| <= gamma_{C+6} M~, where
    M~ = sum_c (|G||g_c||G|^T) (|B^T||d_c||B|), since (1 + gamma_4)(1 + gamma_2)(1 + gamma_C) - 1
    <= gamma_{C+6}.
  * Y: each row of A^T has 3 nonzeros: two stages of two additions, and the bias one more:
    gamma_5 on |A^T||M_c||A| + |b|; with M_c's own error that is gamma_{(C+6)+5} S_W.
The bound grows with C (one rounding per channel in the products) and with the 64 = 8 * 8
coefficient weight of S_W: per channel the weights of |g_ij| |d_kl| in S_W sum to 64 (8 per axis:
|A^T| (|G||g|) * (|B^T||d|) in one dimension), where the direct convolution's S has weight 9. So
S_W <= 64 C max|g| max|d| + |b| against S <= 9 C max|g| max|d| + |b| for the direct sum, whose bound
is gamma_{9C+1} S: the worst cases are of the same size (gamma_{C+11} 64 vs gamma_{9C+1} 9, ratio
-> 0.79 for large C), but typical errors of Winograd are larger, because S_W also weighs the products
that cancel in the transforms. Barabasz et al. 2020 ('Error analysis and improving the accuracy of
Winograd convolution for deep neural networks') prove norm-wise bounds of this form (the transforms'
norms times the length of the sums) and show them growing exponentially with the tile size; F(2x2,
3x3), whose points are 0, 1, -1 and infinity and whose coefficients are 0, +-1, +-1/2, has the
smallest of the family. The input gradient is the same computation (C -> O input channels, no bias):
gamma_{O+11} S_W of the flipped, transposed filter on the output gradient.
``tests/test_winograd.py`` checks outputs against float64 within this bound.

Non-finite input: the transforms combine the whole 4 x 4 tile, so an inf or NaN pixel reaches all
four outputs of every tile that reads it (as NaN where an inf meets -inf in the output transform),
also the outputs whose 3 x 3 window does not contain it, where the direct sum stays finite; and a
tile of huge finite values can overflow in V = B^T d B where the direct sum would not. Finite data
of ordinary range is unaffected; a network whose activations hold inf or NaN has diverged either way.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit, prange

# The transforms (rows of G, B^T, A^T as in the docstring). The kernels below spell them out.
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
BT = np.array([[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]])
AT = np.array([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]])


def tiles(size: int, pad: int) -> tuple[int, int]:
    """(output length, tile count) of one axis: OH = size + 2 pad - 2, TH = ceil(OH / 2)."""
    out = size + 2 * pad - 2
    return out, (out + 1) // 2


# ----------------------------------------------------------------------------------------------
# Plain NumPy references: the equations with the matrices above, tile by tile through slicing.
# ----------------------------------------------------------------------------------------------

def winograd_filter_reference(weight, dtype=None):
    """weight: (O, C, 3, 3) -> U: (16, O, C), U[4 xi + nu, o, c] = (G g G^T)[xi, nu], formed in float64
    and rounded once to ``dtype`` (default: the weight's). Plain NumPy."""
    o, c = weight.shape[:2]
    u = np.einsum("ai,ocij,bj->aboc", G, weight.astype(np.float64), G)         # (4, 4, O, C)
    return u.reshape(16, o, c).astype(weight.dtype if dtype is None else dtype)


def winograd_input_reference(xs, ph, pw, out):
    """xs: (C, H, W, N) -> out: (16, C, TH*TW*N), the input tiles' transforms B^T d B; filled and
    returned. Plain NumPy."""
    c, h, w, n = xs.shape
    _, th = tiles(h, ph)
    _, tw = tiles(w, pw)
    # zero padding before, and after as far as the last tile reaches (2 t + 2 rows in all)
    xp = np.zeros((c, 2 * th + 2, 2 * tw + 2, n), dtype=xs.dtype)
    rows, cols = min(h, 2 * th + 2 - ph), min(w, 2 * tw + 2 - pw)
    xp[:, ph:ph + rows, pw:pw + cols] = xs[:, :rows, :cols]
    d = np.empty((c, th, tw, 4, 4, n), dtype=xs.dtype)                          # every 4 x 4 tile
    for i in range(4):
        for j in range(4):
            d[:, :, :, i, j] = xp[:, i:i + 2 * th:2, j:j + 2 * tw:2]
    v = np.einsum("ai,ctsijn,bj->abctsn", BT.astype(xs.dtype), d, BT.astype(xs.dtype))   # (4, 4, C, TH, TW, N)
    out[...] = v.reshape(16, c, th * tw * n)
    return out


def winograd_output_reference(m, bias, oh, ow, n, out):
    """m: (16, O, TH*TW*N) -> out: (O, OH, OW, N) = A^T m A per tile, cropped to OH x OW, plus
    bias (O,) (a length-0 array: no bias); filled and returned. Plain NumPy."""
    o = m.shape[1]
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    m6 = m.reshape(4, 4, o, th, tw, n)
    at = AT.astype(m.dtype)
    y = np.einsum("ai,ijotsn,bj->otasbn", at, m6, at).reshape(o, 2 * th, 2 * tw, n)
    out[...] = y[:, :oh, :ow]
    if bias.shape[0]:
        out += bias.reshape(o, 1, 1, 1)
    return out


# ----------------------------------------------------------------------------------------------
# Numba kernels: same signatures (the filter transform is small: NumPy in both).
# ----------------------------------------------------------------------------------------------

def winograd_filter(weight, dtype=None):
    """weight: (O, C, 3, 3) -> U: (16, O, C) contiguous; G g G^T in float64 (two small products),
    rounded once to ``dtype`` (default: the weight's)."""
    o, c = weight.shape[:2]
    gg = np.matmul(np.matmul(G, weight.astype(np.float64)), G.T)              # (O, C, 4, 4)
    return np.ascontiguousarray(gg.reshape(o, c, 16).transpose(2, 0, 1), dtype=weight.dtype if dtype is None
                                else dtype)


@jit(parallel=True)
def winograd_input(xs, ph, pw, out):
    """xs: (C, H, W, N) contiguous -> out: (16, C, TH*TW*N), filled and returned. One thread per
    (channel, tile row); each tile's 4 x 4 x N pixels are gathered into a small buffer (zeros where the
    tile overhangs the input), then transformed with N-long inner loops."""
    c, h, w, n = xs.shape
    oh = h + 2 * ph - 2
    ow = w + 2 * pw - 2
    th = (oh + 1) // 2
    tw = (ow + 1) // 2
    for p in prange(c * th):
        ci = p // th
        ty = p % th
        d = np.empty((16, n), dtype=xs.dtype)
        for tx in range(tw):
            for i in range(4):
                ih = 2 * ty - ph + i
                for j in range(4):
                    iw = 2 * tx - pw + j
                    if ih < 0 or ih >= h or iw < 0 or iw >= w:
                        for b in range(n):
                            d[4 * i + j, b] = 0.0
                    else:
                        for b in range(n):
                            d[4 * i + j, b] = xs[ci, ih, iw, b]
            base = (ty * tw + tx) * n
            for b in range(n):
                # t = B^T d (rows), one column j at a time: t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3
                t00 = d[0, b] - d[8, b]
                t01 = d[1, b] - d[9, b]
                t02 = d[2, b] - d[10, b]
                t03 = d[3, b] - d[11, b]
                t10 = d[4, b] + d[8, b]
                t11 = d[5, b] + d[9, b]
                t12 = d[6, b] + d[10, b]
                t13 = d[7, b] + d[11, b]
                t20 = d[8, b] - d[4, b]
                t21 = d[9, b] - d[5, b]
                t22 = d[10, b] - d[6, b]
                t23 = d[11, b] - d[7, b]
                t30 = d[4, b] - d[12, b]
                t31 = d[5, b] - d[13, b]
                t32 = d[6, b] - d[14, b]
                t33 = d[7, b] - d[15, b]
                # V = t B (columns), the same four combinations
                q = base + b
                out[0, ci, q] = t00 - t02
                out[1, ci, q] = t01 + t02
                out[2, ci, q] = t02 - t01
                out[3, ci, q] = t01 - t03
                out[4, ci, q] = t10 - t12
                out[5, ci, q] = t11 + t12
                out[6, ci, q] = t12 - t11
                out[7, ci, q] = t11 - t13
                out[8, ci, q] = t20 - t22
                out[9, ci, q] = t21 + t22
                out[10, ci, q] = t22 - t21
                out[11, ci, q] = t21 - t23
                out[12, ci, q] = t30 - t32
                out[13, ci, q] = t31 + t32
                out[14, ci, q] = t32 - t31
                out[15, ci, q] = t31 - t33
    return out


@jit(parallel=True)
def winograd_output(m, bias, oh, ow, n, out):
    """m: (16, O, TH*TW*N) -> out: (O, OH, OW, N), filled and returned; bias (O,), or length 0 for
    none. One thread per (output channel, tile row); a tile's rows and columns beyond OH, OW (an odd
    border) are not written."""
    o = m.shape[1]
    th = (oh + 1) // 2
    tw = (ow + 1) // 2
    bvec = np.zeros(o, dtype=m.dtype)                  # the bias in m's dtype (zeros: none given)
    if bias.shape[0] > 0:
        bvec[:] = bias
    for p in prange(o * th):
        oc = p // th
        ty = p % th
        bv = bvec[oc]
        y0 = 2 * ty
        row2 = y0 + 1 < oh                             # the tile's second output row exists
        for tx in range(tw):
            x0 = 2 * tx
            col2 = x0 + 1 < ow
            base = (ty * tw + tx) * n
            for b in range(n):
                q = base + b
                # s = A^T m (rows): s0 = m0 + m1 + m2, s1 = m1 - m2 - m3, one column j at a time
                s00 = m[0, oc, q] + m[4, oc, q] + m[8, oc, q]
                s01 = m[1, oc, q] + m[5, oc, q] + m[9, oc, q]
                s02 = m[2, oc, q] + m[6, oc, q] + m[10, oc, q]
                s03 = m[3, oc, q] + m[7, oc, q] + m[11, oc, q]
                s10 = m[4, oc, q] - m[8, oc, q] - m[12, oc, q]
                s11 = m[5, oc, q] - m[9, oc, q] - m[13, oc, q]
                s12 = m[6, oc, q] - m[10, oc, q] - m[14, oc, q]
                s13 = m[7, oc, q] - m[11, oc, q] - m[15, oc, q]
                # Y = s A (columns), the same two combinations, then the bias
                out[oc, y0, x0, b] = s00 + s01 + s02 + bv
                if col2:
                    out[oc, y0, x0 + 1, b] = s01 - s02 - s03 + bv
                if row2:
                    out[oc, y0 + 1, x0, b] = s10 + s11 + s12 + bv
                    if col2:
                        out[oc, y0 + 1, x0 + 1, b] = s11 - s12 - s13 + bv
    return out
