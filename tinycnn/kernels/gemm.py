"""The convolutions' matrix multiplies, split over tinycnn's threads with BLAS itself single-threaded.

    matmul(a, b, out):  out = a @ b      a: (M, K), b: (K, P), out: (M, P), float32 or float64

Why not just ``np.matmul(a, b, out=out)`` with a multi-threaded BLAS? Because of what BLAS's threads
do *between* products. OpenBLAS's workers spin-wait for the next job for ~0.1 s after each product
(its THREAD_TIMEOUT, read once when NumPy loads it), so the Numba kernels that run next (im2col,
ReLU, pooling) find the second core taken: on the 2-core benchmark machine a max-pool forward ran
in 1.7 ms right after a product and in 0.74 ms when the worker had gone to sleep
(benchmarks/NOTES.md, section 4.3). Here the product is cut into column (or row) blocks, one per
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

import os
import queue
import threading

import numba
import numpy as np

MIN_WORK = 1 << 22             # M*K*P below this (4 M multiply-adds, ~20 µs): not worth splitting


def matmul_reference(a, b, out):
    """out = a @ b, written into ``out`` and returned. Plain NumPy."""
    return np.matmul(a, b, out=out)


def matmul(a, b, out):
    """out = a @ b, written into ``out`` and returned; the blocks of ``out`` computed in parallel."""
    blas = _blas_controllers()
    if blas is None:
        return np.matmul(a, b, out=out)
    threads = numba.get_num_threads()
    m, k = a.shape
    p = b.shape[1]
    partials = []
    if threads < 2 or m * k * p < MIN_WORK:  # one block, still with BLAS single-threaded: a small
        blocks = [(a, b, out)]               # product would otherwise wake (and leave spinning) a worker
    elif k > 4 * max(m, p):                  # a long reduction (a weight gradient): split K and add up
        parts = _slices(k, threads)
        partials = [np.empty_like(out) for _ in parts[1:]]          # (M, P) each: small here
        blocks = [(a[:, s], b[s], o) for s, o in zip(parts, [out] + partials)]
    elif p >= m:                             # split the columns: out[:, s] = a @ b[:, s]
        blocks = [(a, b[:, s], out[:, s]) for s in _slices(p, threads)]
    else:                                    # split the rows: out[s] = a[s] @ b
        blocks = [(a[s], b, out[s]) for s in _slices(m, threads)]
    saved = [c.get_num_threads() for c in blas]
    for c in blas:
        c.set_num_threads(1)
    try:
        done = [_Workers.get().submit(blk) for blk in blocks[1:]] if len(blocks) > 1 else []
        np.matmul(blocks[0][0], blocks[0][1], out=blocks[0][2])      # the calling thread's share
        for d in done:
            d.wait()
    finally:
        for c, n in zip(blas, saved):
            c.set_num_threads(n)
    for part in partials:                    # fixed order: the same sum for the same thread count
        out += part
    return out


def _slices(n, parts):
    """``parts`` contiguous slices covering range(n), sizes differing by at most one."""
    step, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + step + (i < extra)
        out.append(slice(start, stop))
        start = stop
    return [s for s in out if s.stop > s.start]


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


class _Job:
    """One block of a product, run by a helper thread; ``wait`` returns when it is done (re-raising
    its error, if any)."""

    def __init__(self, block):
        self.block = block
        self.error = None
        self.finished = threading.Event()

    def run(self):
        try:
            a, b, out = self.block
            np.matmul(a, b, out=out)                   # releases the GIL inside BLAS
        except BaseException as err:                    # handed to the caller in wait()
            self.error = err
        finally:
            self.finished.set()

    def wait(self):
        self.finished.wait()
        if self.error is not None:
            raise self.error


class _Workers:
    """Daemon helper threads that sleep on a queue until a block arrives (no spinning)."""

    _instance = None
    _lock = threading.Lock()

    def __init__(self):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.count = 0

    @classmethod
    def get(cls) -> "_Workers":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            self = cls._instance
            while self.count < numba.get_num_threads() - 1:      # grow to the thread count
                threading.Thread(target=self._loop, name=f"tinycnn-matmul-{self.count}", daemon=True).start()
                self.count += 1
            return self

    def submit(self, block) -> _Job:
        job = _Job(block)
        self.jobs.put(job)
        return job

    def _loop(self):
        while True:
            self.jobs.get().run()


def _forget_workers_after_fork():
    """A forked child has none of the parent's threads: start afresh there."""
    _Workers._instance = None
    _Workers._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)
