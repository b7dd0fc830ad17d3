"""Test-time augmentation (TTA): a classifier's logits averaged over transformed copies of its input.

For a batch x: (B, C, H, W) of images as the network sees them (normalised) and the network's
logits f(x): (B, K), with m(x) the horizontal mirror ``x[..., ::-1]`` and t(x, d) the image translated
by d pixels along both axes with reflection padding, ``t(x, d)[b, c, r, s] = x[b, c, R(r + d), R(s + d)]``
(R reflects about the edge pixel: -1 -> 1, H -> H - 2; numpy's ``np.pad(mode="reflect")``, torch's
``ReflectionPad2d``)::

    "none"            f(x)
    "flip"            1/2 f(x) + 1/2 f(m(x))
    "flip-translate"  1/2 F(x) + 1/4 F(t(x, -1)) + 1/4 F(t(x, +1)),   F(v) = 1/2 f(v) + 1/2 f(m(v))

i.e. six views with weights 1/4 (x and its mirror) and 1/8 (the four translated ones), the test-time
scheme of Jordan's airbench (2024): translated one pixel up-and-left and one pixel down-and-right,
reflection padded, each also mirrored. What is averaged is the **logits**, as airbench does, not the
probabilities: the evaluation's probabilities are softmax(averaged logits) and its loss the
cross-entropy of those, so a TTA evaluation is an ordinary evaluation of the averaged-logit model.

The views are evaluated one after another (each a forward pass of B images, in eval mode), so the
memory a batch needs does not grow; the cost is 2x ("flip") or 6x ("flip-translate") the forward passes.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

TTA_LEVELS = ("none", "flip", "flip-translate")


def check_tta(tta: str | None, what: str) -> str:
    """``tta`` (None means "none") -> the level's name, or a ValueError naming ``what``."""
    if tta is None:
        return "none"
    if not isinstance(tta, str) or tta not in TTA_LEVELS:
        raise ValueError(f"{what}: tta must be None or one of {', '.join(map(repr, TTA_LEVELS))}, got {tta!r}")
    return tta


def mirror(x: np.ndarray) -> np.ndarray:
    """(B, C, H, W) -> (B, C, H, W) flipped left-right, C-contiguous."""
    return np.ascontiguousarray(x[..., ::-1])


def translate(x: np.ndarray, d: int) -> np.ndarray:
    """t(x, d): (B, C, H, W) -> (B, C, H, W) with out[..., r, s] = x[..., R(r + d), R(s + d)] (reflection)."""
    p = abs(int(d))
    h, w = x.shape[-2:]
    if p > min(h, w) - 1:
        raise ValueError(f"test-time augmentation: translating by {p} pixel(s) with reflection padding needs "
                         f"images of at least {p + 1}x{p + 1}, got {h}x{w}; use tta='flip' or 'none'")
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")    # (B, C, H + 2p, W + 2p)
    return np.ascontiguousarray(padded[:, :, p + d:p + d + h, p + d:p + d + w])


def views(x: np.ndarray, tta: str) -> list[tuple[float, np.ndarray]]:
    """The (weight, view) pairs of level ``tta`` for x: (B, C, H, W); the weights sum to 1."""
    if tta != "none" and np.ndim(x) != 4:
        raise ValueError(f"test-time augmentation {tta!r} mirrors and shifts images: it needs batches "
                         f"(B, C, H, W), got shape {np.shape(x)}")
    if tta == "none":
        return [(1.0, x)]
    if tta == "flip":
        return [(0.5, x), (0.5, mirror(x))]
    if tta == "flip-translate":
        out = [(0.25, x), (0.25, mirror(x))]
        for d in (-1, 1):
            v = translate(x, d)
            out += [(0.125, v), (0.125, mirror(v))]
        return out
    raise ValueError(f"test-time augmentation: unknown level {tta!r}; use one of {', '.join(TTA_LEVELS)}")


def tta_logits(logits_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tta: str) -> np.ndarray:
    """sum_v weight_v * logits_fn(view_v) over the level's views, in the order ``views`` lists them:
    (B, K) in the logits' dtype. ``tta="none"`` is ``logits_fn(x)`` itself."""
    if tta == "none":
        return logits_fn(x)
    total = None
    for weight, v in views(x, tta):
        term = logits_fn(v) * weight                                      # (B, K)
        total = term if total is None else total + term
    return total
