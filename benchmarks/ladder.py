"""The convolution speed ladder, for learners: four ways to compute one Conv2D, each checked against the
one before and timed.

1. naive loops      Python loops over (image, filter, output row, output column), NumPy window sums
2. NumPy im2col     ``kernels.im2col_reference`` + one matrix multiply; ``col2im_reference`` back
3. Numba im2col     the Numba ``kernels.im2col`` / ``kernels.col2im`` + the same matrix multiplies
4. final fast path  ``tinycnn.Conv2D`` as it ships (benchmarks/PERFORMANCE.md has what it does beyond rung 3)

Every rung has the same signature: ``forward(x, w, b, stride, pad) -> (y, cache)`` and
``backward(g, cache) -> (dx, dw, db)``, all NCHW float32.

"Agrees" is a derived bound, not a tuned tolerance: two float32 computations of a sum of n products
each lie within gamma_n * A of the exact value, where gamma_n = n*u / (1 - n*u), u = 2**-24, and A is
the same sum taken over absolute values (computed in float64). So two rungs agree when
|a - b| <= 2 * gamma_n * A elementwise, with n the longest reduction any rung uses: C*KH*KW + 1 for
the output, N*OH*OW for the weight and bias gradients, O*KH*KW for the input gradient.
"""
from __future__ import annotations

import time

import numpy as np

import tinycnn as tc
from tinycnn import kernels

U32 = 2.0 ** -24


def _out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


# -- rung 1: naive loops ------------------------------------------------------------------------

def naive_forward(x, w, b, s, p):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = _out_size(h, kh, s, p), _out_size(wd, kw, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    y = np.empty((n, o, oh, ow), dtype=x.dtype)
    for b_ in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    window = xp[b_, :, i * s:i * s + kh, j * s:j * s + kw]       # (C, KH, KW)
                    y[b_, f, i, j] = np.sum(window * w[f]) + b[f]
    return y, (x, w, s, p)


def naive_backward(g, cache):
    x, w, s, p = cache
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    _, _, oh, ow = g.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for b_ in range(n):
        for f in range(o):
            for i in range(oh):
                for j in range(ow):
                    window = xp[b_, :, i * s:i * s + kh, j * s:j * s + kw]
                    dw[f] += g[b_, f, i, j] * window
                    dxp[b_, :, i * s:i * s + kh, j * s:j * s + kw] += g[b_, f, i, j] * w[f]
    return dxp[:, :, p:p + h, p:p + wd], dw, g.sum(axis=(0, 2, 3))


# -- rungs 2 and 3: im2col + one matrix multiply, with NumPy or Numba kernels -------------------

def _im2col_rung(im2col, col2im):
    def forward(x, w, b, s, p):
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        oh, ow = _out_size(h, kh, s, p), _out_size(wd, kw, s, p)
        cols = im2col(x, kh, kw, s, s, p, p)                          # (C*KH*KW, N*OH*OW)
        out = w.reshape(o, -1) @ cols + b[:, None]                    # (O, N*OH*OW)
        y = np.ascontiguousarray(out.reshape(o, n, oh, ow).transpose(1, 0, 2, 3))
        return y, (cols, x.shape, w, s, p)

    def backward(g, cache):
        cols, (n, c, h, wd), w, s, p = cache
        o, _, kh, kw = w.shape
        g2d = g.transpose(1, 0, 2, 3).reshape(o, -1)                  # (O, N*OH*OW)
        dw = (g2d @ cols.T).reshape(w.shape)
        dcols = np.ascontiguousarray(w.reshape(o, -1).T @ g2d)        # (C*KH*KW, N*OH*OW)
        return col2im(dcols, n, c, h, wd, kh, kw, s, s, p, p), dw, g2d.sum(axis=1)

    return forward, backward


numpy_forward, numpy_backward = _im2col_rung(kernels.im2col_reference, kernels.col2im_reference)
numba_forward, numba_backward = _im2col_rung(kernels.im2col, kernels.col2im)


# -- rung 4: the layer as it ships -------------------------------------------------------------

_LAYERS: dict = {}


def fast_forward(x, w, b, s, p):
    o, c, kh, kw = w.shape
    key = (w.shape, s, p, w.dtype)
    if key not in _LAYERS:                        # build once: construction is not convolution time
        _LAYERS[key] = tc.Conv2D(c, o, (kh, kw), stride=s, padding=p, dtype=w.dtype,
                                 rng=np.random.default_rng(0))
    layer = _LAYERS[key]
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    return layer.forward(x), layer


def fast_backward(g, layer):
    dx = layer.backward(g)
    return dx, layer.weight.grad, layer.bias.grad


RUNGS = [
    ("1 naive loops", naive_forward, naive_backward),
    ("2 NumPy im2col", numpy_forward, numpy_backward),
    ("3 Numba im2col", numba_forward, numba_backward),
    ("4 final fast path (tc.Conv2D)", fast_forward, fast_backward),
]


def bounds(x, w, b, g, s, p):
    """2 * gamma_n * A for (y, dx, dw, db), A computed on absolute values in float64 (see module doc)."""
    gamma = lambda n: n * U32 / (1 - n * U32)  # noqa: E731
    ax, aw, ab, ag = (np.abs(a).astype(np.float64) for a in (x, w, b, g))
    o, c, kh, kw = w.shape
    ay, cache = numpy_forward(ax, aw, ab, s, p)
    adx, adw, adb = numpy_backward(ag, cache)
    m = g.shape[0] * g.shape[2] * g.shape[3]
    return (2 * gamma(c * kh * kw + 1) * ay, 2 * gamma(o * kh * kw) * adx,
            2 * gamma(m) * adw, 2 * gamma(m) * adb)


def run(batch: int, reps: int, log, shape=(32, 64, 15, 3, 1, 0), threads: int = 1) -> dict:
    """Time every rung on one convolution (default: the seed CNN's second, C=32 -> O=64 on 15x15),
    on one thread by default: the ladder shows what each idea buys on one core."""
    from .timing import thread_count

    with thread_count(threads):
        return _run(batch, reps, log, shape, threads)


def _run(batch, reps, log, shape, threads):
    c, o, hw, k, s, p = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, hw, hw), dtype=np.float32)
    w = (rng.standard_normal((o, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    oh = _out_size(hw, k, s, p)
    g = rng.standard_normal((batch, o, oh, oh), dtype=np.float32)
    limits = bounds(x, w, b, g, s, p)
    rungs, prev = [], None
    for name, fwd, bwd in RUNGS:
        naive = fwd is naive_forward
        if not naive:
            bwd(g, fwd(x, w, b, s, p)[1])                             # warm-up (JIT compile)
        tf, tb = [], []
        for _ in range(1 if naive else reps):                         # naive: one run is seconds
            t0 = time.perf_counter()
            y, cache = fwd(x, w, b, s, p)
            t1 = time.perf_counter()
            grads = bwd(g, cache)
            t2 = time.perf_counter()
            tf.append(t1 - t0)
            tb.append(t2 - t1)
        result = (y, *grads)
        if prev is None:
            agrees = "(first rung)"
        else:
            worst = max(float(np.max(np.abs(a.astype(np.float64) - q) / np.maximum(lim, 1e-300)))
                        for a, q, lim in zip(result, prev, limits))
            agrees = f"yes (worst diff = {worst:.3f} of the bound)" if worst <= 1 else f"NO ({worst:.1f}x the bound)"
        prev = [np.asarray(a, np.float64) for a in result]
        r = {"name": name, "forward_ms": 1e3 * float(np.median(tf)), "backward_ms": 1e3 * float(np.median(tb)),
             "agrees": agrees}
        rungs.append(r)
        log(f"  {name:32s} forward {r['forward_ms']:9.2f} ms  backward {r['backward_ms']:9.2f} ms  {agrees}")
    return {"shape": f"Conv2D {c}->{o}, kernel {k}, stride {s}, padding {p}, input {batch}x{c}x{hw}x{hw}, float32, "
                      f"{threads} thread{'s' if threads > 1 else ''}",
            "rungs": rungs,
            "check": "Each rung is checked against the rung before on output, input gradient, weight gradient "
                     "and bias gradient, within the derived float32 bound 2*gamma_n*A (see benchmarks/ladder.py)."}
