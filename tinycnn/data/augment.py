"""Augmentation: random crop with zero padding and random horizontal flip, one gather per batch.

For each image i of a batch x: (N, C, H, W)::

    padded  = x with ``pad`` zero rows/columns on every side         (N, C, H + 2p, W + 2p)
    dy, dx  = uniform integers in 0 .. 2p                             (N,) each
    flip    = True with probability 1/2 (if ``flip``)                 (N,)
    out[i, c, r, s] = padded[i, c, dy[i] + r, dx[i] + (W - 1 - s if flip[i] else s)]

so the crop window and the mirror are folded into one index computation and a single fancy-indexed
gather; no Python loop over images. Works on any dtype (uint8 before normalisation is cheapest:
padding 0 is a black border). Randomness only from the ``rng`` passed in.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4,
                     flip: bool = True) -> np.ndarray:
    """x: (N, C, H, W) -> (N, C, H, W), same dtype; see the module docstring."""
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip: expected (N, C, H, W), got shape {x.shape}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError("random_crop_flip: rng must be a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"random_crop_flip: pad must be >= 0, got {pad}")
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    dy = rng.integers(0, 2 * pad + 1, size=n)                           # (N,)
    dx = rng.integers(0, 2 * pad + 1, size=n)                           # (N,)
    cols = np.broadcast_to(np.arange(w), (n, w))                        # (N, W)
    if flip:
        mirrored = rng.random(n) < 0.5                                  # (N,)
        cols = np.where(mirrored[:, None], w - 1 - cols, cols)
    rows = dy[:, None] + np.arange(h)                                   # (N, H)
    cols = dx[:, None] + cols                                           # (N, W)
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]       # (N, C, H, W)


@dataclass(frozen=True)
class Augment:
    """A configured augmentation: ``Augment(pad=4, flip=True)(x, rng)``."""

    pad: int = 4
    flip: bool = True

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return random_crop_flip(x, rng, self.pad, self.flip)
