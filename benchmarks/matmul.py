"""The machine's own float32 matrix-multiply rate (NumPy's BLAS), the yardstick for tinycnn's FLOP rate."""
from __future__ import annotations

import numpy as np

from .timing import interleave, median, thread_count


def rate(threads: list[int], size: int, rounds: int = 3, reps: int = 5) -> dict[int, dict]:
    """threads -> {"gflops": median rate of an (s x s) @ (s x s) float32 product, "size": s}."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    result = {}
    for n in threads:
        with thread_count(n):
            t = median(interleave({"sgemm": lambda: np.matmul(a, b, out=out)}, rounds, reps)["sgemm"])
        result[n] = {"size": size, "median_s": t, "gflops": 2 * size ** 3 / t / 1e9}
    return result
