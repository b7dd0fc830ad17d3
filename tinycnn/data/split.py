"""Stratified hold-out: split indices so that every class keeps its share in both parts.

Used for the validation split (held out from the training data) and for image folders that have no
train/test sub-folders.
"""
from __future__ import annotations

import numpy as np


def stratified_split(labels, fraction: float, rng: np.random.Generator):
    """Split ``range(len(labels))`` into (kept, held_out) index arrays, both sorted, int64.

    labels: (N,) integer class labels. For each class with n >= 2 images, round(fraction * n) of them,
    at least 1 and at most n - 1, are held out, chosen by ``rng``; a class with one image is kept
    whole. fraction = 0 holds out nothing.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"stratified_split: labels must be 1-D, got shape {labels.shape}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"stratified_split: fraction must be in [0, 1), got {fraction}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"stratified_split: rng must be a numpy Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    kept, held = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    if fraction > 0:
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            n = len(idx)
            n_held = 0 if n < 2 else min(max(int(round(fraction * n)), 1), n - 1)
            held.append(idx[:n_held])
            kept.append(idx[n_held:])
    else:
        kept.append(np.arange(len(labels)))
    return np.sort(np.concatenate(kept)).astype(np.int64), np.sort(np.concatenate(held)).astype(np.int64)
