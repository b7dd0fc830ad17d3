"""Dropout in the executor: the layer's own mask (``Dropout.scaled_mask``), drawn for the whole batch.

Uncut, this is the layer's forward. In lanes (training), lane 0 draws the mask of the *whole* batch,
exactly the draw the uncut batch makes, and every lane multiplies its rows by its rows of it
(``tinycnn.fast.lanesync``): the same masks, the same generator state afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Op


@dataclass
class DropoutOpCache:
    scaled_mask: np.ndarray | None      # keep * s, shape of x; None when the layer is the identity


class DropoutOp(Op):
    @property
    def per_sample(self):
        return not self.layer.training or self.layer.p == 0.0

    @property
    def mixes_samples_in_lanes(self):
        return True

    def forward(self, x):
        layer = self.layer
        if not layer.training or layer.p == 0.0:
            self.cache = DropoutOpCache(scaled_mask=None)
            return x
        if self.sync is None:
            mask = layer.scaled_mask(x.shape, x.dtype)
        else:
            rows = self.sync.gather(self.lane, x.shape[0])             # every lane's batch size
            start = sum(rows[:self.lane])
            full = layer.scaled_mask((sum(rows), *x.shape[1:]), x.dtype) if self.lane == 0 else None
            mask = self.sync.gather(self.lane, full)[0][start:start + x.shape[0]]
        self.cache = DropoutOpCache(scaled_mask=mask)
        with np.errstate(invalid="ignore"):                            # inf * 0 = NaN is meant, as the layer's
            return x * mask

    def backward(self, g, input_grad=True):
        if self.cache.scaled_mask is None:
            return g
        with np.errstate(invalid="ignore"):
            return g * self.cache.scaled_mask
