"""Interleaved timing and thread control, shared by every section of the suite.

``interleave`` runs each contender's function in rounds: round r starts with contender r (mod n) and
goes through all of them, each one running one untimed call and then ``reps`` timed calls. Machine
drift (other processes, frequency changes) therefore lands on every contender alike, and the median
of each contender's timed calls is what is reported.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable


def interleave(fns: dict[str, Callable[[], object]], rounds: int, reps: int) -> dict[str, list[float]]:
    """name -> list of ``rounds * reps`` wall times in seconds, measured round-robin."""
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = fns[name]
            fn()                                              # untimed: the switch-over call
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> float:
    """Interquartile range over the median: a rough noise figure for one contender."""
    if len(xs) < 4:
        return 0.0
    q = statistics.quantiles(xs, n=4)
    return (q[2] - q[0]) / statistics.median(xs)


@contextmanager
def thread_count(n: int):
    """Use ``n`` threads in every pool: OpenBLAS (threadpoolctl), Numba and (if loaded) torch."""
    import sys

    import numba
    from threadpoolctl import threadpool_limits

    old_numba = numba.get_num_threads()
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n, user_api="blas"):
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(old_numba)
            if torch is not None:
                torch.set_num_threads(old_torch)
