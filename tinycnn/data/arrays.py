"""A dataset as four arrays ready for ``fit``, the way Keras' ``load_data()`` hands them out.

    (x_train, y_train), (x_test, y_test) = tc.data.load_arrays("embedded")

x: float32 (N, C, H, W), normalised per channel with the mean and standard deviation of the
TRAINING images (the test images get the same statistics, never their own); y: int64 (N,).
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .normalize import Normalizer


def dataset_arrays(ds: Dataset) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``ds`` -> ((x_train, y_train), (x_test, y_test)), x float32 NCHW normalised with the training
    split's per-channel statistics."""
    norm = Normalizer.fit(ds.x_train)
    return (norm(ds.x_train), ds.y_train), (norm(ds.x_test), ds.y_test)


def load_arrays(name: str = "embedded", **options) -> tuple[tuple[np.ndarray, np.ndarray],
                                                              tuple[np.ndarray, np.ndarray]]:
    """``data.load(name, **options)`` as ((x_train, y_train), (x_test, y_test)): float32 NCHW images
    normalised with the training images' per-channel mean and std, int64 labels."""
    from . import load
    return dataset_arrays(load(name, **options))
