"""Padding an image with copies of its own pixels, and the adjoint that folds a gradient back.

Conv2D's ``padding_mode`` (torch's names and semantics): ``'zeros'`` is the convolution's own zero
padding; the other three pad the input explicitly, as torch's ``F.pad`` does, and the convolution then
runs with padding 0. Along one axis of length n, padded by ``a`` before and ``b`` after, the padded
signal p (length a + n + b) reads, for 0 <= j < a and 0 <= k < b::

    p[a + i]     = x[i]                                               the input itself
    'reflect'    p[j] = x[a - j]          p[a + n + k] = x[n - 2 - k]  mirror, edge pixel not repeated
    'replicate'  p[j] = x[0]              p[a + n + k] = x[n - 1]      the edge pixel repeated
    'circular'   p[j] = x[n - a + j]      p[a + n + k] = x[k]          the other end wraps around

(numpy's ``np.pad`` modes ``'reflect'``, ``'edge'`` and ``'wrap'``.) torch refuses a reflect padding of
n or more (the mirror would run past the far edge: ``a, b <= n - 1``) and a circular padding of more
than n (it would wrap more than once: ``a, b <= n``); so does ``check_padding``.

Backward: padding copies pixels, so its adjoint adds every copy's gradient into the pixel it copied
(``dx[i] = sum of dp over the positions that read x[i]``)::

    dx           = dp[a : a + n]
    'reflect'    dx[1 : a + 1] += dp[:a][::-1]          dx[n - 1 - b : n - 1] += dp[a + n:][::-1]
    'replicate'  dx[0] += dp[:a].sum()                  dx[n - 1] += dp[a + n:].sum()
    'circular'   dx[n - a:] += dp[:a]                   dx[:b] += dp[a + n:]

The two image axes are padded one after the other, so the fold runs the 1-D rule over each axis.
``tests/test_conv_padding_mode.py`` checks the fold against the adjoint identity, finite differences
and torch.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_MODE: dict[str, Literal["reflect", "edge", "wrap"]] = {"reflect": "reflect", "replicate": "edge",
                                                            "circular": "wrap"}

Amounts = tuple[tuple[int, int], tuple[int, int]]     # ((top, bottom), (left, right))


def check_padding_mode(mode: object, owner: str) -> str:
    """``mode`` if it is one of torch's four padding modes, else a ValueError that lists them."""
    if not isinstance(mode, str) or mode not in PADDING_MODES:
        raise ValueError(f"{owner}: padding_mode must be one of {', '.join(repr(m) for m in PADDING_MODES)}, "
                         f"got padding_mode={mode!r}")
    return mode


def check_padding(owner: str, mode: str, size_hw: tuple[int, int], amounts: Amounts) -> None:
    """torch's limits: reflect padding below the input size on each side, circular padding at most it."""
    for axis, n, (before, after) in zip(("height", "width"), size_hw, amounts):
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"{owner}: padding_mode='reflect' needs each padding of the input {axis} to be less "
                             f"than that size (as in torch), got padding ({before}, {after}) for input "
                             f"{axis} {n}")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"{owner}: padding_mode='circular' needs each padding of the input {axis} to be at "
                             f"most that size (it would wrap around more than once; as in torch), got "
                             f"padding ({before}, {after}) for input {axis} {n}")


def pad(x: np.ndarray, amounts: Amounts, mode: str) -> np.ndarray:
    """x: (N, C, H, W) -> (N, C, H + top + bottom, W + left + right), padded with ``mode``'s copies."""
    (top, bottom), (left, right) = amounts
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=_NUMPY_MODE[mode])


def _fold_last_axis(dp: np.ndarray, before: int, after: int, mode: str) -> np.ndarray:
    """The 1-D adjoint above along the last axis: dp (..., a + n + b) -> dx (..., n)."""
    a, b = before, after
    n = dp.shape[-1] - a - b
    dx = dp[..., a:a + n].copy()
    head, tail = dp[..., :a], dp[..., a + n:]                    # the padding's gradients
    if mode == "reflect":
        dx[..., 1:a + 1] += head[..., ::-1]
        dx[..., n - 1 - b:n - 1] += tail[..., ::-1]
    elif mode == "replicate":
        dx[..., 0] += head.sum(axis=-1)
        dx[..., n - 1] += tail.sum(axis=-1)
    elif mode == "circular":
        dx[..., n - a:] += head
        dx[..., :b] += tail
    else:
        raise ValueError(f"padding: no fold for padding_mode={mode!r}")
    return dx


def pad_backward(grad_padded: np.ndarray, amounts: Amounts, mode: str) -> np.ndarray:
    """grad_padded: (N, C, H + top + bottom, W + left + right) -> grad_x: (N, C, H, W), each padded
    copy's gradient added into the pixel it copies."""
    (top, bottom), (left, right) = amounts
    g = _fold_last_axis(grad_padded, left, right, mode)                         # (N, C, Hp, W)
    g = _fold_last_axis(g.swapaxes(-1, -2), top, bottom, mode).swapaxes(-1, -2)  # (N, C, H, W)
    return np.ascontiguousarray(g)
