"""Helper threads that sleep on a queue until given work: one small pool for the whole process.

    job = submit(fn, *args)      # fn(*args) runs on a helper thread
    job.wait()                   # returns fn's result, or re-raises its exception here

Two users: ``kernels.matmul`` hands one block of a matrix multiply to a helper, and ``tinycnn.lanes``
hands one half of a batch (a whole forward or backward through a copy of the layers). The work must
release the GIL to run beside the caller: NumPy's BLAS calls do, and so do tinycnn's Numba kernels
(compiled ``nogil=True``, see ``_jit.py``).

Why not ``concurrent.futures.ThreadPoolExecutor``: the same idea, but its futures cost ~3x more per
job than this Event, and both users submit one job per layer or per pass (hundreds per second).
Helpers never spin: between jobs they block on the queue, so a core they leave is free for whatever
runs next (benchmarks/PERFORMANCE.md, 'Split matrix multiply', has what spinning threads cost on a
2-core machine).
"""
from __future__ import annotations

import os
import queue
import threading


class Job:
    """One call ``fn(*args)`` on a helper; ``wait`` returns its result when it is done."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.result = None
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as err:                    # handed to the caller in wait()
            self.error = err
        finally:
            self.finished.set()

    def wait(self):
        self.finished.wait()
        if self.error is not None:
            raise self.error
        return self.result


class _Pool:
    def __init__(self):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.count = 0


_pool: _Pool | None = None
_lock = threading.Lock()


def ensure(helpers: int) -> None:
    """Start helper threads until at least ``helpers`` exist (they live as daemons until exit)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = _Pool()
        while _pool.count < helpers:
            threading.Thread(target=_loop, args=(_pool,), name=f"tinycnn-helper-{_pool.count}",
                             daemon=True).start()
            _pool.count += 1


def submit(fn, *args) -> Job:
    """Queue ``fn(*args)`` for the next free helper (starting one if there is none yet)."""
    if _pool is None or _pool.count == 0:
        ensure(1)
    job = Job(fn, args)
    _pool.jobs.put(job)
    return job


def split(n: int, parts: int) -> list[slice]:
    """At most ``parts`` contiguous, non-empty slices covering range(n), sizes differing by at most
    one, the larger ones first: how both users share out work."""
    step, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + step + (i < extra)
        out.append(slice(start, stop))
        start = stop
    return [s for s in out if s.stop > s.start]


def _loop(pool: _Pool):
    while True:
        pool.jobs.get().run()


def _forget_after_fork():
    """A forked child has none of the parent's threads: start afresh there."""
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
