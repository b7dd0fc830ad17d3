"""Per-channel normalisation with statistics from the training split.

    mean[c] = average of every pixel value of channel c over the training images   (0..255 units)
    std[c]  = population standard deviation of the same values
    z       = (x - mean[c]) / std[c]      as float32, (N, C, H, W)

The statistics are exact: they come from a 256-bin histogram of each channel's uint8 values,
summed in float64, so no float32 reduction over millions of pixels is involved. Fit them on the
training images only (not validation, not test) and store them with the model -- ``to_dict`` /
``from_dict`` give plain arrays an .npz checkpoint can hold -- so that prediction normalises the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError


@dataclass(frozen=True, eq=False)
class Normalizer:
    mean: np.ndarray      # float64 (C,), pixel units
    std: np.ndarray       # float64 (C,), > 0

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normalizer":
        """Statistics of uint8 images x: (N, C, H, W)."""
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[0] == 0:
            raise DataError(f"Normalizer.fit: need uint8 (N, C, H, W) images with N >= 1, got "
                            f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        values = np.arange(256, dtype=np.float64)
        mean, std = [], []
        for c in range(x.shape[1]):
            counts = np.bincount(x[:, c].ravel(), minlength=256).astype(np.float64)   # (256,)
            n = counts.sum()
            m = (counts @ values) / n
            v = (counts @ (values - m) ** 2) / n
            if v == 0:
                raise DataError(f"Normalizer.fit: channel {c} has the same value {m:g} in every "
                                f"training pixel; its standard deviation is 0, cannot normalise")
            mean.append(m)
            std.append(np.sqrt(v))
        return cls(np.array(mean), np.array(std))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """uint8 (or float) (N, C, H, W) -> float32 (N, C, H, W), (x - mean) / std per channel."""
        if x.ndim != 4 or x.shape[1] != len(self.mean):
            raise DataError(f"Normalizer: expected (N, {len(self.mean)}, H, W) images, got shape {x.shape}")
        out = x.astype(np.float32)
        out -= self.mean.astype(np.float32)[None, :, None, None]
        out /= self.std.astype(np.float32)[None, :, None, None]
        return out

    def to_dict(self) -> dict:
        return {"mean": self.mean.copy(), "std": self.std.copy()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        mean, std = np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64)
        if mean.ndim != 1 or mean.shape != std.shape or not np.all(std > 0):
            raise DataError(f"Normalizer.from_dict: need mean and std of one shape (C,), std > 0; got "
                            f"{mean.shape} and {std.shape}")
        return cls(mean, std)
