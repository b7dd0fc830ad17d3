"""One place that decides how tinycnn's kernels are compiled.

`jit(f)` is `numba.njit(cache=True)` with two promises (and, for ``parallel=True``, a serial twin
that ``launch`` uses for work too small to pay for starting threads):

* no ``fastmath``: kernels give the same IEEE results as the plain references beside them;
* a clean fallback: when Numba can find no writable folder for its cache (the package installed
  read-only, say), the kernel is compiled without a cache instead of failing at import.

Every kernel is compiled ``nogil=True``: it releases Python's GIL while it runs, so two Python threads
can run kernels at the same time (``tinycnn.lanes`` runs the two halves of a batch that way). The
kernels only read and write the arrays they are given, so they need no lock of their own.

Under ``NUMBA_DISABLE_JIT=1`` Numba hands back the plain Python function, so every kernel still runs
(slowly) and a learner can step through it in a debugger.
"""
from __future__ import annotations

import threading
import types
import warnings
from contextlib import contextmanager

import numba

__all__ = ["jit", "launch", "prange", "serial", "serial_here"]

prange = numba.prange

_warned_no_cache = False      # one warning per process, not one per kernel


def _warn_no_cache(name: str, err: Exception) -> None:
    global _warned_no_cache
    if _warned_no_cache:
        return
    _warned_no_cache = True
    warnings.warn(
        f"tinycnn: Numba found no writable folder to cache compiled kernels (first refused: {name}: "
        f"{err}); compiling without a cache, so every new process compiles them again. "
        "Set NUMBA_CACHE_DIR to a writable folder to keep compiled kernels between runs.",
        RuntimeWarning,
        stacklevel=4,
    )


def _compile(f, parallel, **options):
    try:
        return numba.njit(cache=True, parallel=parallel, nogil=True, **options)(f)
    except RuntimeError as err:  # "cannot cache function ...: no locator available for file ..."
        # Numba (numba/core/caching.py, CacheImpl) tries NUMBA_CACHE_DIR, then __pycache__ beside
        # the source, then the user-wide cache folder (XDG_CACHE_HOME or ~/.cache); it raises when
        # none of them can be created and written to.
        _warn_no_cache(f.__name__, err)
        return numba.njit(cache=False, parallel=parallel, nogil=True, **options)(f)


def _serial_copy(f):
    """The same Python function under another name, so that its compiled code gets its own cache
    files (Numba names them after the function; two versions of one name would overwrite each other)."""
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + "_serial"
    g.__module__ = f.__module__
    g.__doc__ = f.__doc__
    return g


def jit(func=None, *, parallel: bool = False, float_division: bool = False, inline: bool = False):
    """Compile ``func`` with Numba in nopython mode, cached on disk when possible.

    With ``parallel=True`` the kernel is compiled twice: the returned dispatcher runs its ``prange``
    loops on Numba's threads, and its ``.serial`` attribute is the same code compiled plainly
    (``prange`` then runs as ``range``). ``launch`` picks one for the size of the work.

    ``float_division=True``: a float division by zero gives IEEE inf/NaN instead of raising
    ZeroDivisionError (Numba's ``error_model="numpy"``); the check Python's rule needs is a branch
    per division that keeps a loop from being vectorised. ``inline=True``: a helper compiled into
    every kernel that calls it (Numba's ``inline="always"``), so that the caller's loop stays one
    vectorisable body."""
    options = {}
    if float_division:
        options["error_model"] = "numpy"
    if inline:
        options["inline"] = "always"

    def wrap(f):
        kernel = _compile(f, parallel, **options)
        if parallel:
            kernel.serial = _compile(_serial_copy(f), False, **options)
        return kernel

    return wrap if func is None else wrap(func)


# Starting a parallel region costs ~0.1 ms with Numba's workqueue threading layer on the 2-core
# benchmark machine, even with one thread (its worker still has to be woken; measured 70-117 us per
# launch, against 1.6 us for the OpenMP layer, whose idle threads spin: benchmarks/PERFORMANCE.md,
# 'Serial twins and the parallel-launch threshold').
# A training step launches ~17 kernels, so work smaller than this many elements runs serially.
PARALLEL_MIN_ELEMENTS = 1 << 18


def launch(kernel, elements: int, *args, **kwargs):
    """Run ``kernel`` (made by ``jit(parallel=True)``) on all of Numba's threads if ``elements`` (the
    size of the work) is large enough to pay for starting them, else its serial twin."""
    if elements >= PARALLEL_MIN_ELEMENTS and not serial_here() and numba.get_num_threads() > 1:
        return kernel(*args, **kwargs)
    return kernel.serial(*args, **kwargs)


_local = threading.local()


@contextmanager
def serial():
    """Inside this block, in this thread only: every ``launch`` runs the serial twin and
    ``kernels.matmul`` is one plain BLAS call. For code that is itself one of several threads sharing
    the cores (``tinycnn.lanes``), where starting more threads would only oversubscribe them (and
    Numba's workqueue layer refuses parallel kernels launched from two threads at once)."""
    before = getattr(_local, "serial", False)
    _local.serial = True
    try:
        yield
    finally:
        _local.serial = before


def serial_here() -> bool:
    """True inside a ``serial()`` block of the calling thread."""
    return getattr(_local, "serial", False)
