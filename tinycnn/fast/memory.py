"""The executor's one allocator: recycled arrays for large outputs and workspaces, and one growing
scratch buffer for temporaries, so that a training step asks the operating system for no memory.

    alloc = RECYCLED (the memory pass's choice) or FRESH (every call np.empty: the pass turned off)
    alloc.empty(shape, dtype)      an array nobody else holds; lives as long as someone references it
    alloc.scratch(shape, dtype)    a temporary valid until the next scratch call of this thread

Why. A training step of the seed CNN at batch 64 allocates ~50 MB of activations, masks and
gradients, most of them arrays of several MB. glibc's malloc hands blocks that large to the kernel
and takes them back on ``free`` (``mmap``/``munmap``), so every step touches fresh pages and the kernel
zero-fills each 4 KB page on first touch: ~4,200 page faults per step, 7-9 ms of system time on top
of a ~25 ms step on the benchmark machine (benchmarks/PERFORMANCE.md, 'Recycled output arrays and memory
planning'). Reusing the same
arrays from one step to the next makes those faults disappear.

How, safely. ``empty(shape, dtype)`` returns a view of a pooled 1-D array that nobody else is using,
and only then. "Nobody" is checked with the array's reference count: the pool's list holds one
reference, and every view of the array (an activation the user kept, a mask in a layer's cache, a
reshape of either) holds its base alive with another. So an array the user still holds is never
handed out again; it is simply not reusable until every view of it is gone. If no free array of the
right size and dtype exists, a new one is made, and kept in the pool while the pool is under its
limits (``MAX_PER_SIZE`` arrays of one size, ``MAX_BYTES`` in all); beyond them a plain array is
returned that the pool does not keep.

Arrays from ``empty`` are uninitialised, like ``np.empty``: the kernels that fill them write every
element. The pool is per thread (two models trained in two threads never share arrays), and
``TINYCNN_RECYCLE=0`` turns it off (every call is then ``np.empty``), to compare the two.

Caveat: the check sees only Python references. Memory reached without one (a raw pointer taken with
``arr.ctypes.data`` and kept after the array is dropped) is not protected, as it is not for any
array that Python has freed.
"""
from __future__ import annotations

import os
import sys
import threading

import numpy as np

MAX_PER_SIZE = 8               # arrays of one (size, dtype) kept at most
MAX_BYTES = 1 << 30            # bytes kept in all, per thread
MIN_BYTES = 1 << 17            # smaller arrays come from malloc's own free lists: not worth pooling

_ENABLED = os.environ.get("TINYCNN_RECYCLE", "1") != "0"
_local = threading.local()


def _refs_when_free() -> int:
    """What ``sys.getrefcount`` reports inside ``empty``'s loop for an array nobody else holds (the
    list, the loop variable, the call's argument: 3 on CPython 3.10-3.13). Measured, not assumed,
    because newer interpreters may borrow some of these references."""
    probe = [np.empty(1)]
    for arr in probe:
        return sys.getrefcount(arr)


_FREE_REFS = _refs_when_free()


class _Pool:
    def __init__(self):
        self.arrays: list[np.ndarray] = []     # 1-D, each owning its memory
        self.nbytes = 0


def _pool() -> _Pool:
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = _Pool()
    return pool


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, recycled when one is free."""
    dtype = np.dtype(dtype)
    size = 1
    for d in shape:
        size *= int(d)
    nbytes = size * dtype.itemsize
    if not _ENABLED or nbytes < MIN_BYTES:
        return np.empty(shape, dtype=dtype)
    pool = _pool()
    same = 0
    for arr in pool.arrays:
        if arr.size == size and arr.dtype == dtype:
            if sys.getrefcount(arr) == _FREE_REFS:     # no view of it is alive anywhere
                return arr.reshape(shape)
            same += 1
    arr = np.empty(size, dtype=dtype)
    if same < MAX_PER_SIZE and pool.nbytes + nbytes <= MAX_BYTES:
        pool.arrays.append(arr)
        pool.nbytes += nbytes
    return arr.reshape(shape)


def pooled_bytes() -> int:
    """Bytes held by this thread's pool (free or in use)."""
    return _pool().nbytes


def clear() -> None:
    """Forget this thread's pool (arrays still in use stay valid; they are just no longer recycled)."""
    _local.pool = _Pool()


_SCRATCH = threading.local()


def scratch(shape, dtype) -> np.ndarray:
    """A C-contiguous temporary of ``shape``, one buffer per thread and dtype, grown to the largest
    request. Valid only until the next ``scratch`` call of this thread: for values that die inside one
    op (Conv2D's ``dcols`` lives from its matrix multiply to its col2im). One buffer serves every layer,
    so no per-layer copy of the largest temporary is kept between steps."""
    dtype = np.dtype(dtype)
    size = 1
    for d in shape:
        size *= int(d)
    store = getattr(_SCRATCH, "buffers", None)
    if store is None:
        store = _SCRATCH.buffers = {}
    buf = store.get(dtype)
    if buf is None or buf.size < size:
        buf = store[dtype] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


class Allocator:
    """How an op gets memory: ``empty`` for outputs and workspaces, ``scratch`` for temporaries."""

    def __init__(self, name, empty_fn, scratch_fn):
        self.name, self.empty, self.scratch = name, empty_fn, scratch_fn

    def __repr__(self):
        return f"Allocator({self.name})"


RECYCLED = Allocator("recycled", empty, scratch)
FRESH = Allocator("fresh", lambda shape, dtype: np.empty(shape, dtype=dtype),
                  lambda shape, dtype: np.empty(shape, dtype=dtype))
