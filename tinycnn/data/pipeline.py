"""From a Dataset to the three iterators training needs, in one call.

    loaders = make_loaders(ds, batch_size=64, rng=np.random.default_rng(0), val_fraction=0.1)
    for xb, yb in loaders.train: ...      # shuffled, augmented (if on), normalised float32 NCHW
    for xb, yb in loaders.val: ...        # held out from the training data, in order, normalised
    for xb, yb in loaders.test: ...

Steps: (1) hold out a stratified ``val_fraction`` of the training images (drawn with ``rng``);
(2) fit the per-channel ``Normalizer`` on the remaining training images only; (3) build ``Batches``:
train shuffled with ``rng`` and augmented when ``augment`` is on (default: the dataset's own
recommendation -- on for CIFAR, off for digits), validation and test in order, unaugmented.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .augment import Augment
from .batches import Batches
from .dataset import Dataset
from .normalize import Normalizer
from .split import stratified_split


@dataclass
class Loaders:
    train: Batches
    val: Batches | None          # None when val_fraction == 0
    test: Batches
    normalizer: Normalizer       # fitted on train only; save it with the model
    classes: tuple
    image_shape: tuple           # (C, H, W)
    augment: Augment | None      # what the training batches use


def make_loaders(ds: Dataset, *, batch_size: int = 64, rng: np.random.Generator,
                 val_fraction: float = 0.1, augment=None, eval_batch_size: int | None = None) -> Loaders:
    """See module docstring. augment: None (dataset default), True/False, or an ``Augment``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"make_loaders: rng must be a numpy Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    if augment is None:
        augment = ds.augment
    if augment is True:
        augment = Augment()
    elif augment is False:
        augment = None
    elif not isinstance(augment, Augment):
        raise TypeError(f"make_loaders: augment must be None, a bool or an Augment, got {augment!r}")
    keep, held = stratified_split(ds.y_train, val_fraction, rng)
    x_tr, y_tr = ds.x_train[keep], ds.y_train[keep]
    norm = Normalizer.fit(x_tr)
    eval_bs = eval_batch_size or batch_size
    train = Batches(x_tr, y_tr, batch_size, shuffle=True, rng=rng, augment=augment, normalizer=norm)
    val = (Batches(ds.x_train[held], ds.y_train[held], eval_bs, normalizer=norm)
           if len(held) else None)
    test = Batches(ds.x_test, ds.y_test, eval_bs, normalizer=norm)
    return Loaders(train, val, test, norm, ds.classes, ds.image_shape, augment)
