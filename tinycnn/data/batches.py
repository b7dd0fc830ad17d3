"""``Batches``: iterate over (images, labels) in mini-batches, like a small DataLoader.

Each ``iter(batches)`` is one epoch::

    order = rng.permutation(N) if shuffle else 0..N-1      (a new permutation every epoch)
    for each run of batch_size indices in order (the last, partial batch is kept):
        xb = x[idx]                   uint8 (B, C, H, W)
        xb = augment(xb, rng)         if an augmentation is given (training only)
        xb = normalizer(xb)           float32 (B, C, H, W); without a normalizer, xb / 255 as float32
        yield xb, y[idx]              labels int64 (B,)
    epoch += 1

``len(batches)`` = ceil(N / batch_size). Randomness only from the ``rng`` passed in: shuffling or
augmenting without one is an error.

``epoch`` counts the passes started (0 before the first); it is the epoch an augmentation with
``flip="alternate"`` is told. With that augmentation ``Batches`` draws epoch 0's flips, one per image,
from ``rng`` when it is made (an ``AlternatingFlip``) and passes each batch its images' flips
``augment(xb, rng, flips=alternating.flips(idx, epoch))``: the flip follows the image, not its place in
the batch. To continue a run at epoch E with a new ``Batches`` (resuming), set ``batches.epoch = E``
(and restore the generator's state).
"""
from __future__ import annotations

import math

import numpy as np

from .augment import AlternatingFlip
from .errors import DataError


class Batches:
    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False,
                 rng: np.random.Generator | None = None, augment=None, normalizer=None):
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            raise DataError(f"Batches: x must be an (N, C, H, W) array, got {getattr(x, 'shape', type(x))}")
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise DataError(f"Batches: {x.shape[0]} images but labels of shape {y.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Batches: batch_size must be a positive integer, got {batch_size!r}")
        if (shuffle or augment is not None) and not isinstance(rng, np.random.Generator):
            raise ValueError("Batches: shuffling or augmenting needs rng=np.random.default_rng(seed), "
                             f"got rng={rng!r}")
        self.x, self.y, self.batch_size = x, y.astype(np.int64), int(batch_size)
        self.shuffle, self.rng, self.augment, self.normalizer = shuffle, rng, augment, normalizer
        self.epoch = 0
        self.alternating = (AlternatingFlip(len(self.y), rng)
                            if getattr(augment, "flip_mode", None) == "alternate" else None)

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def __iter__(self):
        n = len(self.y)
        epoch = self.epoch
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"Batches: epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch + 1
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]                 # (B,)
            xb = self.x[idx]                                           # (B, C, H, W), source dtype
            if self.alternating is not None:
                xb = self.augment(xb, self.rng, flips=self.alternating.flips(idx, epoch))
            elif self.augment is not None:
                xb = self.augment(xb, self.rng)
            if self.normalizer is not None:
                xb = self.normalizer(xb)                               # float32
            else:
                xb = xb.astype(np.float32) / np.float32(255)
            yield xb, self.y[idx]
