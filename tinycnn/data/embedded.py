"""The embedded default: a class-balanced subset of real MNIST shipped inside the package.

``embedded_mnist.npz`` (next to this file; origin, licence and how it was made: README.md beside it)
holds::

    x_train uint8 (N, 28, 28)   y_train uint8 (N,)   train_index uint16 (N,)  positions in MNIST train
    x_test  uint8 (M, 28, 28)   y_test  uint8 (M,)   test_index  uint16 (M,)  positions in MNIST test

It is read from the installed package (``importlib.resources``), so it works offline on a fresh
machine and never needs ``shared/`` or the network.
"""
from __future__ import annotations

from importlib import resources

import numpy as np

from .dataset import Dataset, as_nchw
from .errors import DataError
from .registry import DIGITS

FILE_NAME = "embedded_mnist.npz"


def load_embedded() -> Dataset:
    """The embedded MNIST subset as a Dataset: uint8 (N, 1, 28, 28), 10 classes "0".."9"."""
    res = resources.files(__package__).joinpath(FILE_NAME)
    try:
        with res.open("rb") as f, np.load(f, allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (FileNotFoundError, KeyError, ValueError, OSError) as err:
        raise DataError(f"load_embedded: the packaged file {FILE_NAME} is missing or damaged "
                        f"({type(err).__name__}: {err}); reinstall tinycnn") from None
    return Dataset("embedded", as_nchw(arrays["x_train"], "NHW", FILE_NAME), arrays["y_train"],
                   as_nchw(arrays["x_test"], "NHW", FILE_NAME), arrays["y_test"], DIGITS,
                   augment=False, source=f"tinycnn/data/{FILE_NAME} (MNIST subset, CC BY-SA 3.0)")
