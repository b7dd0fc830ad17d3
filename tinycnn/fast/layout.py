"""Channel-major activations: the memory layout the executor's ops pass along (the layout pass).

Every 4-D activation is an (N, C, H, W) array to the user. Inside a network, though, tinycnn keeps
it in memory as (C, H, W, N): channel slowest, *images fastest*. Two reasons:

* Conv2D's matrix multiply produces its output that way with no copy. Its im2col matrix has one
  column per (output pixel, image), images fastest (``tinycnn.kernels.im2col_cm``), so
  ``w2d @ cols`` is (O, OH, OW, N) in memory; the layer returns the (N, O, OH, OW) *view*
  ``out.transpose(3, 0, 1, 2)`` instead of paying a transpose copy (and another for the gradient).
* With images fastest, im2col, col2im and pooling move runs of N contiguous numbers (64 at batch
  64) where the (N, C, H, W) order gives them rows of 13-30: the seed CNN's 32 -> 64 col2im went
  from 4.7 to 1.1 ms and its im2col from 2.3 to 0.8 ms on one core (benchmarks/PERFORMANCE.md, 'Channel-major layout').

Elementwise layers (ReLU, Sigmoid) keep the layout (NumPy's ``order="K"`` rule, or the fused ReLU
kernel working on the flat memory), pooling has kernels for it, and the next Conv2D reads it without
a copy. Values never depend on the layout, only speed does; any layer also accepts ordinary
C-ordered (or any other) arrays.
"""
from __future__ import annotations

import numpy as np

TO_MEMORY = (1, 2, 3, 0)      # (N, C, H, W) view -> (C, H, W, N) memory order
TO_VIEW = (3, 0, 1, 2)        # (C, H, W, N) memory -> (N, C, H, W) view


def is_channel_major(x: np.ndarray) -> bool:
    """True when the (N, C, H, W) array ``x`` is a view of a C-contiguous (C, H, W, N) block and is
    not itself C-contiguous (when the two layouts coincide, e.g. N == 1, that counts as C order)."""
    return x.ndim == 4 and not x.flags.c_contiguous and x.transpose(TO_MEMORY).flags.c_contiguous


def to_channel_major(x: np.ndarray, dtype=None) -> np.ndarray:
    """(N, C, H, W) array -> C-contiguous (C, H, W, N) array; no copy when ``x`` is already laid out so."""
    return np.ascontiguousarray(x.transpose(TO_MEMORY), dtype=dtype)


def as_view(mem: np.ndarray) -> np.ndarray:
    """C-contiguous (C, H, W, N) memory -> the (N, C, H, W) view the user sees (no copy)."""
    return mem.transpose(TO_VIEW)
