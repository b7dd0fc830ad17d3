"""AdaptiveAvgPool2D and AdaptiveMaxPool2D: pool (N, C, H, W) to a chosen (N, C, OH, OW).

torch's bin rule (``nn.AdaptiveAvgPool2d``): output row i covers input rows

    start_i = floor(i * H / OH),   end_i = ceil((i + 1) * H / OH)      (end exclusive)

and likewise for columns with W, OW. Every bin holds at least one row (end_i > start_i), neighbouring
bins may overlap by a row when OH does not divide H, and OH > H repeats rows. The bins depend only on
(H, OH), so they are computed in integers, exactly. Global average pooling is AdaptiveAvgPool2D(1):
one bin, the whole map, output (N, C, 1, 1) (follow it with Flatten() for (N, C)).

``output_size``: an int (square), or an (OH, OW) pair where either may be None ("keep that size").

Forward and backward, per bin b = (i, j) of area A_b = (end_i - start_i) * (end_j - start_j)::

    avg:  y[.., i, j] = sum over the bin of x / A_b;     dx[bin] += g[.., i, j] / A_b
    max:  y[.., i, j] = x at the bin's winner w_b;       dx[w_b] += g[.., i, j]

``+=``: where bins overlap, a pixel collects the gradient of every bin it belongs to.

Max ties (torch's CPU rule, and tinycnn's): the winner is the FIRST maximum in row-major order
inside the bin; if the bin holds NaN, the output is NaN and the winner is the LAST NaN in row-major
order (torch's kernel replaces its running maximum when ``val > max or isnan(val)``).

Loops run over the OH * OW bins, each a NumPy slice over all samples and channels: plain, and fast
enough for the small outputs these layers are used for.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .base import Layer, check_input


def bin_edges(size: int, out: int) -> list[tuple[int, int]]:
    """[(start_i, end_i)] for i < out, torch's rule, in exact integer arithmetic."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _output_size(value, owner):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        oh, ow = value
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: output_size must be an int or an (OH, OW) pair (None keeps the input's "
                        f"size), got {value!r}") from None
    for v in (oh, ow):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
            raise ValueError(f"{owner}: output_size entries must be positive integers or None, got {value!r}")
    return (None if oh is None else int(oh), None if ow is None else int(ow))


@dataclass
class AdaptivePoolCache:
    x_shape: tuple            # (N, C, H, W)
    rows: list                # [(start_i, end_i)] for i < OH
    cols: list                # [(start_j, end_j)] for j < OW
    winners: np.ndarray | None   # max only: int64 (N, C, OH, OW), flat index inside each bin's window


class _AdaptivePool2D(Layer):
    kind = "AdaptivePool2D"

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        self.output_size = _output_size(output_size, self.kind)
        self._cache: AdaptivePoolCache | None = None

    def __repr__(self) -> str:
        oh, ow = self.output_size
        return f"{self.kind}(output_size={oh if oh == ow else (oh, ow)})"

    def _out_hw(self, h, w):
        oh, ow = self.output_size
        return (h if oh is None else oh), (w if ow is None else ow)

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(C, H, W) -> (C, OH, OW)."""
        in_shape = tuple(in_shape)
        if len(in_shape) != 3:
            raise ValueError(f"{self!r}: expects a (C, H, W) image per sample (input (N, C, H, W)), got "
                             f"per-sample shape {in_shape}")
        c, h, w = in_shape
        if h < 1 or w < 1:
            raise ValueError(f"{self!r}: needs a non-empty map, got H = {h}, W = {w}")
        return (c, *self._out_hw(h, w))

    def _prepare(self, x):
        x = check_input(self, x, 4, "(N, C, H, W)")
        n, c, h, w = x.shape
        self.output_shape((c, h, w))
        oh, ow = self._out_hw(h, w)
        return x, bin_edges(h, oh), bin_edges(w, ow)


class AdaptiveAvgPool2D(_AdaptivePool2D):
    """Average over torch's adaptive bins; AdaptiveAvgPool2D(1) is global average pooling."""
    kind = "AdaptiveAvgPool2D"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, rows, cols = self._prepare(x)
        n, c = x.shape[:2]
        y = np.empty((n, c, len(rows), len(cols)), dtype=x.dtype)            # (N, C, OH, OW)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        self._cache = AdaptivePoolCache(x_shape=x.shape, rows=rows, cols=cols, winners=None)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        n, c = cache.x_shape[:2]
        g = self._check_grad(grad_y, (n, c, len(cache.rows), len(cache.cols)))
        dx = np.zeros(cache.x_shape, dtype=g.dtype)                           # (N, C, H, W)
        for i, (h0, h1) in enumerate(cache.rows):
            for j, (w0, w1) in enumerate(cache.cols):
                area = (h1 - h0) * (w1 - w0)
                dx[:, :, h0:h1, w0:w1] += (g[:, :, i, j] / g.dtype.type(area))[:, :, None, None]
        return dx


class AdaptiveMaxPool2D(_AdaptivePool2D):
    """Maximum over torch's adaptive bins (ties: first maximum; NaN: last NaN; see the module docstring)."""
    kind = "AdaptiveMaxPool2D"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x, rows, cols = self._prepare(x)
        n, c = x.shape[:2]
        y = np.empty((n, c, len(rows), len(cols)), dtype=x.dtype)            # (N, C, OH, OW)
        winners = np.empty((n, c, len(rows), len(cols)), dtype=np.int64)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                window = x[:, :, h0:h1, w0:w1].reshape(n, c, (h1 - h0) * (w1 - w0))   # (N, C, area), row-major
                nan = np.isnan(window)
                last_nan = window.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
                first_max = np.argmax(window, axis=2) if window.size else np.zeros((n, c), np.int64)
                win = np.where(nan.any(axis=2), last_nan, first_max)         # (N, C)
                winners[:, :, i, j] = win
                y[:, :, i, j] = np.take_along_axis(window, win[:, :, None], axis=2)[:, :, 0]
        self._cache = AdaptivePoolCache(x_shape=x.shape, rows=rows, cols=cols, winners=winners)
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        cache = self._need_cache(self._cache)
        n, c = cache.x_shape[:2]
        g = self._check_grad(grad_y, (n, c, len(cache.rows), len(cache.cols)))
        dx = np.zeros(cache.x_shape, dtype=g.dtype)                           # (N, C, H, W)
        for i, (h0, h1) in enumerate(cache.rows):
            for j, (w0, w1) in enumerate(cache.cols):
                dwin = np.zeros((n, c, (h1 - h0) * (w1 - w0)), dtype=g.dtype)  # this bin's share
                np.put_along_axis(dwin, cache.winners[:, :, i, j][:, :, None], g[:, :, i, j][:, :, None], axis=2)
                dx[:, :, h0:h1, w0:w1] += dwin.reshape(n, c, h1 - h0, w1 - w0)
        return dx
