"""Interleaved timing and thread control, shared by every section of the suite.

``interleave`` runs each contender's function in rounds: round r starts with contender r (mod n) and
goes through all of them, each one pausing ``SETTLE_S``, running untimed calls for ``WARM_S`` (see
below for both) and then ``reps`` timed calls. Machine
drift (other processes, frequency changes) therefore lands on every contender alike, and the median
of each contender's timed calls is what is reported.
"""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable

# Pause before each contender's turn, in seconds. Every engine leaves threads spinning after its
# work for a while: OpenBLAS's workers ~0.1 s (its THREAD_TIMEOUT), OpenMP's (PyTorch's) as its wait
# policy says. Without the pause the contender that follows finds the second core taken by the one
# before: measured on the seed CNN at batch 64 with 2 threads, a tinycnn step took 27.5 ms right after
# a PyTorch step and 20.7 ms after a 0.3 s pause; a PyTorch LeNet step 31.3 ms right after tinycnn
# and 18.4 ms after the pause (benchmarks/PERFORMANCE.md, 'Warm-up and pause in the benchmark
# harness'). A user runs one engine at a time, so each turn starts from a settled machine. ``run.py``
# sets 0 for --quick.
SETTLE_S = 0.3

# Untimed calls after the pause, for at least this many seconds (and at least one call). A core that
# sat idle through the pause comes back slowly: on the benchmark machine (a 2-vCPU VM) the first 3-4
# tinycnn LeNet steps after a 0.3 s pause took 13-20 ms and the following ones 10-11 ms, turn after
# turn, with no other engine running (benchmarks/PERFORMANCE.md, same section). One untimed call did
# not cover that, so the median of 5 timed calls measured the wake-up as much as the engine. Every contender
# gets the same warm-up; ``run.py`` sets 0 for --quick (then: one untimed call).
WARM_S = 0.25


def interleave(fns: dict[str, Callable[[], object]], rounds: int, reps: int) -> dict[str, list[float]]:
    """name -> list of ``rounds * reps`` wall times in seconds, measured round-robin."""
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn = fns[name]
            if SETTLE_S > 0 and len(names) > 1:
                time.sleep(SETTLE_S)                          # let the previous engine's threads go idle
            start = time.perf_counter()
            fn()                                              # untimed: the switch-over call ...
            while time.perf_counter() - start < WARM_S:       # ... and more, until the cores are awake
                fn()
            times[name] += timed_calls(fn, reps)
    return times


def timed_calls(fn: Callable[[], object], reps: int) -> list[float]:
    """Wall times in seconds of ``reps`` calls of ``fn``, one after another."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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
