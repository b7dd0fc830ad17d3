"""``Dataset``: the one in-memory form every loader returns, and the one place layouts are converted.

Layout: **NCHW uint8** (N images, C channels, H rows, W columns), the engine's layout. Grey images
have C = 1, colour images C = 3 (RGB). Labels are int64 class indices 0..K-1. Readers hand their
arrays to :func:`as_nchw` with the layout the file stores (``"NHW"`` for MNIST, ``"NHWC"`` for
the .npz CIFAR copies and Pillow images, ``"NCHW"`` for CIFAR's planar pickles); nothing else in the
package transposes images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError

LAYOUTS = ("NHW", "NHWC", "NCHW")


def as_nchw(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous uint8 (N, C, H, W) array.

    x: (N, H, W) for "NHW", (N, H, W, C) for "NHWC", (N, C, H, W) for "NCHW"; uint8.
    ``where`` names the file or function for the error message.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"as_nchw: layout must be one of {LAYOUTS}, got {layout!r}")
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (0..255), got dtype {x.dtype}")
    want = 3 if layout == "NHW" else 4
    if x.ndim != want:
        raise DataError(f"{where}: images must be {layout} ({want} dimensions), got shape {x.shape}")
    if layout == "NHW":
        x = x[:, None, :, :]                       # (N, 1, H, W)
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)                # (N, H, W, C) -> (N, C, H, W)
    return np.ascontiguousarray(x)


def as_labels(y, n: int, num_classes: int, where: str) -> np.ndarray:
    """Return ``y`` as int64 (n,), checking the length and that every label is in 0..num_classes-1."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{where}: expected {n} labels (one per image), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels must lie in 0..{num_classes - 1} ({num_classes} classes), "
                        f"found min {y.min()}, max {y.max()}")
    return y


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset, train and test splits, in memory.

    x_train: uint8 (N, C, H, W)     y_train: int64 (N,)
    x_test:  uint8 (M, C, H, W)     y_test:  int64 (M,)
    classes: K class names, ``classes[k]`` is the name of label k.
    augment: whether random crop + flip augmentation is the recommended default (CIFAR: yes,
             digits: no -- a flipped 2 is not a 2).
    source:  where the arrays came from (file or folder), for reports.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    augment: bool = False
    source: str = ""

    def __post_init__(self):
        where = f"Dataset {self.name!r}"
        classes = tuple(str(c) for c in self.classes)
        if len(classes) < 2:
            raise DataError(f"{where}: a classifier needs at least 2 classes, got {len(classes)}: "
                            f"{list(classes)}")
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
                raise DataError(f"{where}: x_{split} must be a uint8 (N, C, H, W) array, got "
                                f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
            y = as_labels(getattr(self, f"y_{split}"), x.shape[0], len(classes), f"{where} y_{split}")
            object.__setattr__(self, f"y_{split}", y)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{where}: train images are {self.x_train.shape[1:]} (C, H, W) but test "
                            f"images are {self.x_test.shape[1:]}")
        if self.x_train.shape[1] not in (1, 3):
            raise DataError(f"{where}: images must have 1 (grey) or 3 (RGB) channels, got "
                            f"{self.x_train.shape[1]}")
        object.__setattr__(self, "classes", classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple:
        """(C, H, W)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self):
        c, h, w = self.image_shape
        return (f"Dataset({self.name!r}: {len(self.x_train)} train + {len(self.x_test)} test images, "
                f"{c}x{h}x{w}, {self.num_classes} classes, from {self.source or '?'})")
