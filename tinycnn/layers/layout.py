"""Channel-major activations: the memory layout Conv2D and the pooling layers pass along.

Every 4-D activation is an (N, C, H, W) array to the user. Conv2D's matrix multiply, though, produces
its output naturally as (C, N, H, W) in memory (see ``tinycnn.kernels.im2col_cm``). Instead of paying a
transpose copy after every convolution (and another one for every gradient), Conv2D returns the view
``out.transpose(1, 0, 2, 3)``: shape (N, C, H, W), strides of a (C, N, H, W) array. Elementwise layers
(ReLU, Sigmoid) keep that layout by NumPy's ``order="K"`` rule, pooling works on it plane by plane, and
the next Conv2D reads it without a copy. Values never depend on the layout, only speed does; any
layer also accepts ordinary C-ordered (or any other) arrays.
"""
from __future__ import annotations

import numpy as np


def is_channel_major(x: np.ndarray) -> bool:
    """True when the (N, C, H, W) array ``x`` is a view of a C-contiguous (C, N, H, W) block and is
    not itself C-contiguous (with N == 1 or C == 1 the two layouts coincide: that counts as C order)."""
    return x.ndim == 4 and not x.flags.c_contiguous and x.transpose(1, 0, 2, 3).flags.c_contiguous


def to_channel_major(x: np.ndarray, dtype=None) -> np.ndarray:
    """(N, C, H, W) array -> C-contiguous (C, N, H, W) array; no copy when ``x`` is already laid out so."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3), dtype=dtype)
