"""Checks for the exercises of tutorial 1 (convolution by hand)."""
from __future__ import annotations

import numpy as np

import tinycnn as tc
from tinycnn.kernels import im2col

from . import exercise


@exercise("1.1 (output size)")
def check_output_size(output_size) -> list[str]:
    """output_size(n, k, s, p) -> int, or raise ValueError when the kernel does not fit."""
    problems = []
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 4):
                for p in range(3):
                    if n + 2 * p < k:
                        try:
                            output_size(n, k, s, p)
                        except ValueError:
                            continue
                        problems.append(f"n={n}, k={k}, s={s}, p={p}: the kernel does not fit, expected a ValueError")
                        continue
                    layer = tc.Conv2D(1, 1, k, stride=s, padding=p, rng=np.random.default_rng(0))
                    expected = layer(np.zeros((1, 1, n, n), dtype=np.float32)).shape[2]
                    got = output_size(n, k, s, p)
                    if got != expected:
                        problems.append(f"n={n}, k={k}, s={s}, p={p}: you say {got}, Conv2D gives {expected}")
    return problems


@exercise("1.2 (copies per pixel)")
def check_max_copies(max_copies) -> list[str]:
    """max_copies(k, s) -> the largest number of im2col columns one pixel of a large image appears in
    (square kernel k, stride s on both axes, no padding)."""
    problems = []
    for k in range(1, 6):
        for s in range(1, 5):
            n = 4 * k * s + 1
            index_image = np.arange(n * n, dtype=np.float64).reshape(1, 1, n, n)
            counts = np.bincount(im2col(index_image, k, k, s, s, 0, 0).astype(int).ravel(), minlength=n * n)
            got = max_copies(k, s)
            if got != counts.max():
                problems.append(f"k={k}, s={s}: you say {got}, counting im2col's columns gives {counts.max()}")
    return problems


@exercise("1.3 (a 1x1 convolution is a matrix multiply over channels)")
def check_conv1x1(conv1x1) -> list[str]:
    """conv1x1(x, w) -> y: x (N, C, H, W), w (O, C) -> y (N, O, H, W), without tinycnn or loops over pixels."""
    rng = np.random.default_rng(1)
    problems = []
    for (n, c, h, w_, o) in [(2, 3, 4, 5, 6), (1, 1, 3, 3, 2), (3, 8, 2, 7, 1)]:
        x = rng.standard_normal((n, c, h, w_))
        w = rng.standard_normal((o, c))
        layer = tc.Conv2D(c, o, 1, bias=False, dtype=np.float64, rng=rng)
        layer.weight.data[...] = w[:, :, None, None]
        expected = layer(x)
        got = np.asarray(conv1x1(x, w))
        if got.shape != expected.shape:
            problems.append(f"x {x.shape}, w {w.shape}: your output has shape {got.shape}, expected {expected.shape}")
            continue
        S = np.abs(w) @ np.abs(x).transpose(1, 0, 2, 3).reshape(c, -1)        # sum of |terms|, (O, N*H*W)
        bound = 2 * c * 2.0 ** -53 / (1 - c * 2.0 ** -53) * S.reshape(o, n, h, w_).transpose(1, 0, 2, 3)
        worst = np.abs(got - expected) - bound
        if (worst > 0).any():
            i = np.unravel_index(np.argmax(worst), worst.shape)
            problems.append(f"x {x.shape}: at index {i} you give {got[i]:.6g}, Conv2D gives {expected[i]:.6g}")
    return problems
