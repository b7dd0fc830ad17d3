"""One place that decides how tinycnn's kernels are compiled.

`jit(f)` is `numba.njit(cache=True)` with two promises:

* no ``fastmath``: kernels give the same IEEE results as the plain references beside them;
* a clean fallback: when Numba can find no writable folder for its cache (the package installed
  read-only, say), the kernel is compiled without a cache instead of failing at import.

Under ``NUMBA_DISABLE_JIT=1`` Numba hands back the plain Python function, so every kernel still runs
(slowly) and a learner can step through it in a debugger.
"""
from __future__ import annotations

import warnings

import numba

__all__ = ["jit", "prange"]

prange = numba.prange


def jit(func=None, *, parallel: bool = False):
    """Compile ``func`` with Numba in nopython mode, cached on disk when possible."""

    def wrap(f):
        try:
            return numba.njit(cache=True, parallel=parallel)(f)
        except RuntimeError as err:  # "cannot cache function ...: no locator available"
            warnings.warn(
                f"tinycnn: Numba cannot cache {f.__name__} ({err}); compiling without a cache. "
                "Set NUMBA_CACHE_DIR to a writable folder to keep compiled kernels between runs.",
                RuntimeWarning,
                stacklevel=3,
            )
            return numba.njit(cache=False, parallel=parallel)(f)

    return wrap if func is None else wrap(func)
