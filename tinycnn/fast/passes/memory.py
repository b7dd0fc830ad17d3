"""Memory pass: every op takes its outputs and workspaces from the recycling allocator.

What it changes: ``cfg.alloc = memory.RECYCLED`` (default ``memory.FRESH``, plain ``np.empty``).
Large arrays from ``np.empty`` come fresh from the operating system page by page on every step;
recycled ones are reused once nothing references them (``tinycnn.fast.memory``). Measured:
benchmarks/PERFORMANCE.md, 'Memory planning'.
"""
from __future__ import annotations

from .. import memory


def apply(graph) -> None:
    for node in graph.nodes:
        node.op.cfg.alloc = memory.RECYCLED
