"""The convolutions' matrix multiplies, split over tinycnn's threads with BLAS itself single-threaded.

    matmul(a, b, out):  out = a @ b      a: (M, K), b: (K, P), out: (M, P), float32 or float64

Why not just ``np.matmul(a, b, out=out)`` with a multi-threaded BLAS? Because of what BLAS's threads
do *between* products. OpenBLAS's workers spin-wait for the next job for ~0.1 s after each product
(its THREAD_TIMEOUT, read once when NumPy loads it), so the Numba kernels that run next (im2col,
ReLU, pooling) find the second core taken: on the 2-core benchmark machine a max-pool forward ran
in 1.7 ms right after a product and in 0.74 ms when the worker had gone to sleep
(benchmarks/PERFORMANCE.md, 'Split matrix multiply'). Here the product is cut into column (or row) blocks, one per
thread, or for a long reduction (a weight gradient, K = N*OH*OW) into K blocks whose partial
products are added up afterwards; each block is an ordinary single-threaded BLAS call on a strided view, and the helper
threads sleep on a queue between products, leaving the cores to whatever runs next.

With column or row blocks each element of ``out`` is computed by the same single-threaded kernel
over the same K; with K blocks the sum is regrouped (fixed for a given thread count, so runs repeat
bit for bit). Either way ``tests/test_fast_kernels.py`` checks the result against
``matmul_reference`` within the derived reduction bound.

Threads: ``numba.get_num_threads()``, the one knob for all of tinycnn's parallel work. During every
call, small products included, the BLAS library's own thread count is set to 1 (threadpoolctl, ~1 µs)
and restored after, so no BLAS worker is ever woken. Without threadpoolctl the call is ``np.matmul``.
"""
from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np

from .. import _jit, _workers

MIN_WORK = 1 << 22             # M*K*P below this (4 M multiply-adds, ~20 µs): not worth splitting


def matmul_reference(a, b, out):
    """out = a @ b, written into ``out`` and returned. Plain NumPy."""
    return np.matmul(a, b, out=out)


def matmul(a, b, out):
    """out = a @ b, written into ``out`` and returned; the blocks of ``out`` computed in parallel."""
    blas = _blas_controllers()
    if blas is None or _jit.serial_here():   # in a lane (tinycnn.lanes) BLAS is already single-threaded
        return np.matmul(a, b, out=out)
    threads = numba.get_num_threads()
    m, k = a.shape
    p = b.shape[1]
    partials = []
    if threads < 2 or m * k * p < MIN_WORK:  # one block, still with BLAS single-threaded: a small
        blocks = [(a, b, out)]               # product would otherwise wake (and leave spinning) a worker
    elif k > 4 * max(m, p):                  # a long reduction (a weight gradient): split K and add up
        parts = _workers.split(k, threads)
        partials = [np.empty_like(out) for _ in parts[1:]]          # (M, P) each: small here
        blocks = [(a[:, s], b[s], o) for s, o in zip(parts, [out] + partials)]
    elif p >= m:                             # split the columns: out[:, s] = a @ b[:, s]
        blocks = [(a, b[:, s], out[:, s]) for s in _workers.split(p, threads)]
    else:                                    # split the rows: out[s] = a[s] @ b
        blocks = [(a[s], b, out[s]) for s in _workers.split(m, threads)]
    with blas_single_threaded():
        if len(blocks) > 1:
            _workers.ensure(threads - 1)
        done = [_workers.submit(matmul_reference, a_, b_, o_) for a_, b_, o_ in blocks[1:]]
        np.matmul(blocks[0][0], blocks[0][1], out=blocks[0][2])      # the calling thread's share
        for d in done:
            d.wait()
    for part in partials:                    # fixed order: the same sum for the same thread count
        out += part
    return out


def matmul_batched_reference(a, b, out):
    """out[k] = a[k] @ b[k] for every k: a (K, M, C), b (K, C, P), out (K, M, P). Plain NumPy."""
    return np.matmul(a, b, out=out)


def _products(a, b, out, part):
    for k in range(part.start, part.stop):
        np.matmul(a[k], b[k], out=out[k])


def matmul_batched(a, b, out):
    """out[k] = a[k] @ b[k] for every k (Winograd's 16 products): the K products dealt out whole to
    tinycnn's threads, each an ordinary single-threaded BLAS call, so one hand-off serves all of them
    (K calls of ``matmul`` would wake the helpers K times). Each product is computed exactly as one
    ``np.matmul`` of its own operands."""
    blas = _blas_controllers()
    threads = numba.get_num_threads()
    if blas is None or _jit.serial_here() or threads < 2 or len(a) * a[0].size * b.shape[2] < MIN_WORK:
        with blas_single_threaded():           # a no-op without threadpoolctl, as in ``matmul``
            _products(a, b, out, range(len(a)))
        return out
    parts = [range(s.start, s.stop) for s in _workers.split(len(a), threads)]
    with blas_single_threaded():
        _workers.ensure(len(parts) - 1)
        done = [_workers.submit(_products, a, b, out, part) for part in parts[1:]]
        _products(a, b, out, parts[0])         # the calling thread's share
        for d in done:
            d.wait()
    return out


@contextmanager
def blas_single_threaded():
    """Inside this block the BLAS library runs every product on the calling thread alone (its thread
    count set to 1 through threadpoolctl, ~1 µs, and restored after). A no-op without threadpoolctl."""
    blas = _blas_controllers() or []
    saved = [c.get_num_threads() for c in blas]
    for c in blas:
        c.set_num_threads(1)
    try:
        yield
    finally:
        for c, n in zip(blas, saved):
            c.set_num_threads(n)


_BLAS = None


def _blas_controllers():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process, or None without
    threadpoolctl (then products run as plain ``np.matmul``)."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS = []
        else:
            _BLAS = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _BLAS or None
