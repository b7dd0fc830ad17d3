"""Softmax cross-entropy on logits, loss and gradient from one computation.

    logits z: (N, K);  labels: int (N,) class indices, or (N, K) target probabilities t
    log p = z - logsumexp(z)          (log-sum-exp: subtract the row max before exp, no overflow)
    loss  = -(1/N) * sum_n sum_k t[n, k] * log p[n, k]        (t = one-hot for integer labels)
    dloss/dz = (p * sum_k t[n, k] - t) / N  =  (p - t) / N   when each row of t sums to 1

The mean over the batch matches ``torch.nn.functional.cross_entropy(reduction="mean")`` for
integer labels and for probability targets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SoftmaxCECache:
    probs: np.ndarray         # (N, K) softmax of the logits
    targets: np.ndarray       # (N, K) target probabilities (one-hot for integer labels)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """z: (N, K) -> log softmax along K, stable for any finite z."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy. ``forward(logits, labels) -> float``; ``backward() -> grad_logits``."""

    def __init__(self):
        self._cache: SoftmaxCECache | None = None

    def __repr__(self):
        return "SoftmaxCrossEntropy()"

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels) -> float:
        logits = np.asarray(logits)
        if logits.dtype.kind != "f":
            raise TypeError(f"{self!r}: logits dtype is {logits.dtype}, but a floating array is needed")
        if logits.ndim != 2:
            raise ValueError(f"{self!r}: expected logits of shape (N, K), got shape {logits.shape}")
        # C order whatever the caller's layout: the row sums' summation order depends on it
        logits = np.ascontiguousarray(logits)
        n, k = logits.shape
        labels = np.asarray(labels)
        targets = self._targets(labels, n, k, logits.dtype)
        logp = log_softmax(logits)                                      # (N, K)
        self._cache = SoftmaxCECache(probs=np.exp(logp), targets=targets)
        if labels.dtype.kind in "iu":
            # Pick the true class's log-probability (as torch's nll_loss does) rather than summing
            # one-hot * logp: a -inf logit of another class would give 0 * -inf = NaN there.
            return float(-logp[np.arange(n), labels].sum() / n)
        return float(-(targets * logp).sum() / n)

    def backward(self, grad=1.0):
        """Gradient of ``grad * loss`` with respect to the logits: (N, K)."""
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        p, t = self._cache.probs, self._cache.targets
        n = p.shape[0]
        return (p * t.sum(axis=1, keepdims=True) - t) * (p.dtype.type(grad) / n)

    def _targets(self, labels, n, k, dtype):
        if labels.dtype.kind in "iu":
            if labels.ndim != 1:
                raise ValueError(f"{self!r}: integer labels must be 1-D (N,), got shape {labels.shape}")
            if labels.shape[0] != n:
                raise ValueError(f"{self!r}: logits hold {n} samples but labels hold {labels.shape[0]}")
            bad = (labels < 0) | (labels >= k)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{self!r}: label {int(labels[i])} at index {i} is out of range "
                                 f"for {k} classes (valid: 0..{k - 1})")
            targets = np.zeros((n, k), dtype=dtype)
            targets[np.arange(n), labels] = 1
            return targets
        if labels.dtype.kind == "f":
            if labels.ndim == 1:
                raise TypeError(f"{self!r}: labels are 1-D {labels.dtype}; pass class indices as an integer "
                                f"array (e.g. labels.astype(np.int64)) or probabilities of shape (N, {k})")
            if labels.shape != (n, k):
                raise ValueError(f"{self!r}: probability labels must have the logits' shape {(n, k)}, "
                                 f"got {labels.shape}")
            if (labels < 0).any():
                raise ValueError(f"{self!r}: probability labels must be >= 0")
            return np.ascontiguousarray(labels, dtype=dtype)
        raise TypeError(f"{self!r}: labels must be integer class indices (N,) or float probabilities "
                        f"(N, K); got dtype {labels.dtype}")
