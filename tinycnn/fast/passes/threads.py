"""Threads pass: how the work of one op is spread over the cores when the batch is not cut in lanes.

What it changes: ``cfg.split_products``. With it, every matrix multiply goes through
``kernels.matmul`` (split over tinycnn's threads, BLAS single-threaded, so no BLAS worker spins on a
core the next kernel needs) and every kernel through ``kernels.launch`` (its serial twin for work
under 2^18 elements, where starting threads costs more than it gains). Without it, products are one
``np.matmul`` call (BLAS's own threads) and kernels always start Numba's threads. Measured:
benchmarks/PERFORMANCE.md, 'Split matrix multiply' and 'Serial twins for small kernels'.
"""
from __future__ import annotations


def apply(graph) -> None:
    for node in graph.nodes:
        node.op.cfg.split_products = True
