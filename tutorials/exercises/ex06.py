"""Checks for the exercises of tutorial 6 (making it fast)."""
from __future__ import annotations

import numpy as np

from tinycnn import kernels

from . import exercise

SHAPES = [(2, 3, 7, 6, 3, 1, 0), (1, 1, 5, 5, 2, 2, 0), (3, 4, 9, 8, 3, 2, 1), (2, 2, 6, 6, 1, 1, 0)]


@exercise("6.1 (the size of the im2col buffer)")
def check_im2col_bytes(im2col_bytes) -> list[str]:
    """im2col_bytes(n, c, h, w, k, s, p, itemsize) -> bytes of the column matrix of a square kernel k,
    stride s, padding p (no row of ones)."""
    problems = []
    for n, c, h, w, k, s, p in SHAPES:
        for dtype in (np.float32, np.float64):
            cols = kernels.im2col_reference(np.zeros((n, c, h, w), dtype=dtype), k, k, s, s, p, p)
            got = int(im2col_bytes(n, c, h, w, k, s, p, np.dtype(dtype).itemsize))
            if got != cols.nbytes:
                problems.append(f"N,C,H,W={n},{c},{h},{w}, k={k}, s={s}, p={p}, {np.dtype(dtype).name}: "
                                f"you say {got} bytes, the buffer has {cols.nbytes}")
    return problems


@exercise("6.2 (im2col with one NumPy slice per kernel offset)")
def check_im2col(my_im2col) -> list[str]:
    """my_im2col(x, k, s, p) -> (C*k*k, N*OH*OW), the columns ordered (n, oh, ow), rows (c, i, j), as
    kernels.im2col_reference orders them; at most k*k Python-level slices (no loop over pixels)."""
    rng = np.random.default_rng(9)
    problems = []
    for n, c, h, w, k, s, p in SHAPES:
        x = rng.standard_normal((n, c, h, w))
        expected = kernels.im2col_reference(x, k, k, s, s, p, p)
        got = np.asarray(my_im2col(x, k, s, p))
        if got.shape != expected.shape:
            problems.append(f"x {x.shape}, k={k}, s={s}, p={p}: shape {got.shape}, expected {expected.shape}")
        elif not np.array_equal(got, expected):
            r, q = np.argwhere(got != expected)[0]
            problems.append(f"x {x.shape}, k={k}, s={s}, p={p}: first difference at row {r}, column {q}")
    return problems


@exercise("6.3 (a channel-major view)")
def check_channel_major(channel_major) -> list[str]:
    """channel_major(x) -> an array with x's shape (N, C, H, W) and values whose memory is laid out as
    (C, H, W, N), i.e. y.transpose(1, 2, 3, 0) is C-contiguous."""
    rng = np.random.default_rng(10)
    problems = []
    for shape in [(2, 3, 4, 5), (1, 1, 2, 2), (4, 2, 1, 3)]:
        x = rng.standard_normal(shape)
        y = channel_major(x)
        if y.shape != x.shape or not np.array_equal(y, x):
            problems.append(f"x {shape}: the result must have the same shape and values as x")
        elif not y.transpose(1, 2, 3, 0).flags.c_contiguous:
            problems.append(f"x {shape}: y.transpose(1, 2, 3, 0) is not C-contiguous, strides {y.strides}")
    return problems


def _prune_answer(layers) -> list[str]:
    """What the executor's prune pass decides for a chain, one word per layer."""
    from tinycnn import fast
    from tinycnn.fast.passes import prune

    plan = fast.compile(layers, passes=("prune",))           # no fusion: one node per layer, in order
    steps = dict(prune.backward_steps(plan.graph, input_grad=False))
    return ["skip" if i not in steps else ("full" if steps[i] else "params") for i in range(len(layers))]


def _chains():
    import tinycnn as tc

    rng = np.random.default_rng(11)

    def conv(c_in, c_out):
        return tc.Conv2D(c_in, c_out, 3, padding=1, rng=rng)

    return [
        [tc.ReLU(), conv(1, 2), tc.ReLU(), tc.Flatten(), tc.Dense(2 * 4 * 4, 3, rng=rng)],
        [tc.Flatten(), tc.Dense(16, 3, rng=rng)],
        [conv(1, 2), tc.BatchNorm2D(2), tc.ReLU(), conv(2, 2)],
        [tc.MaxPool2D(2), tc.ReLU(), tc.AvgPool2D(1), conv(1, 2), tc.ReLU()],
        [tc.Sigmoid(), tc.Flatten()],
        [tc.BatchNorm2D(1), tc.ReLU(), conv(1, 2), tc.MaxPool2D(2)],
    ]


@exercise("6.4 (the prune pass by hand)")
def check_backward_work(backward_work) -> list[str]:
    """backward_work(layers) -> ["skip" | "params" | "full"] per layer of a chain trained with
    backward(g, input_grad=False), compared with the plan the prune pass makes."""
    problems = []
    for layers in _chains():
        expected = _prune_answer(layers)
        got = list(backward_work(list(layers)))
        if got != expected:
            names = [type(layer).__name__ for layer in layers]
            problems.append(f"{names}: you say {got}, the prune pass does {expected}")
    return problems
