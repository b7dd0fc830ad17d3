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


def jit(func=None, *, parallel: bool = False):
    """Compile ``func`` with Numba in nopython mode, cached on disk when possible."""

    def wrap(f):
        try:
            return numba.njit(cache=True, parallel=parallel)(f)
        except RuntimeError as err:  # "cannot cache function ...: no locator available for file ..."
            # Numba (numba/core/caching.py, CacheImpl) tries NUMBA_CACHE_DIR, then __pycache__ beside
            # the source, then the user-wide cache folder (XDG_CACHE_HOME or ~/.cache); it raises when
            # none of them can be created and written to.
            _warn_no_cache(f.__name__, err)
            return numba.njit(cache=False, parallel=parallel)(f)

    return wrap if func is None else wrap(func)
