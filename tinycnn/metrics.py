"""Classification metrics with the standard definitions, for integer class labels 0..K-1.

    confusion matrix C: (K, K), C[i, j] = number of samples of true class i predicted as class j
                        (rows: truth, columns: prediction; scikit-learn's convention)
    per class k:        TP = C[k, k],  FP = sum_i C[i, k] - TP,  FN = sum_j C[k, j] - TP
                        precision = TP / (TP + FP),  recall = TP / (TP + FN),
                        F1 = 2 * precision * recall / (precision + recall)

Zero division gives 0, silently: a class never predicted has precision 0/0 -> 0; a class absent
from y_true has recall 0/0 -> 0; precision = recall = 0 gives F1 = 0. This is scikit-learn's
``zero_division=0`` (its default "warn" returns the same numbers, with a warning).

Averages over all ``num_classes`` classes (scikit-learn with ``labels=range(num_classes)``), so a
class absent from both y_true and y_pred counts as 0 in the macro average:

    "macro":    unweighted mean of the per-class values
    "weighted": mean weighted by support (the number of true samples of each class)
    "micro":    from the summed counts: precision = sum TP / sum (TP + FP), recall likewise.
                With one label per sample, every sample is one TP or one (FP, FN) pair, so micro
                precision = micro recall = micro F1 = accuracy.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike


class PrecisionRecallF1(NamedTuple):
    """Per-class arrays (K,) when ``average=None``, floats when averaged."""
    precision: np.ndarray | float
    recall: np.ndarray | float
    f1: np.ndarray | float


def _labels(y, name: str, owner: str, num_classes: int | None = None) -> np.ndarray:
    """y as a 1-D int64 array, checked to be integer class indices in [0, num_classes)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{owner}: {name} must be 1-D class indices (N,), got shape {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)               # whole-number floats, e.g. labels read from a CSV
        elif y.size:
            raise TypeError(f"{owner}: {name} must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if num_classes is not None and y.size:
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{owner}: {name}[{i}] = {int(y[i])} is out of range for "
                             f"num_classes={num_classes} (valid: 0..{num_classes - 1})")
    return y


def _pair(y_true, y_pred, owner, num_classes=None):
    y_true = _labels(y_true, "y_true", owner, num_classes)
    y_pred = _labels(y_pred, "y_pred", owner, num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: y_true has {y_true.shape[0]} samples but y_pred has {y_pred.shape[0]}")
    return y_true, y_pred


def _num_classes(num_classes, owner) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{owner}: num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _scores(scores, owner) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.dtype.kind != "f":
        raise ValueError(f"{owner}: scores must be a float array (N, K) of logits or probabilities, "
                         f"got shape {scores.shape} dtype {scores.dtype}")
    if np.isnan(scores).any():
        n = int(np.argwhere(np.isnan(scores))[0][0])
        raise ValueError(f"{owner}: scores hold NaN (first in sample {n})")
    return scores


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of samples whose prediction equals the label.

    y_true: (N,) class indices. y_pred: (N,) class indices, or (N, K) scores (logits or
    probabilities), whose argmax is the prediction (ties: the lowest class index, np.argmax's rule).
    """
    owner = "accuracy"
    if np.ndim(y_pred) == 2:
        y_pred = _scores(y_pred, owner).argmax(axis=1)
    y_true, y_pred = _pair(y_true, y_pred, owner)
    if y_true.size == 0:
        raise ValueError(f"{owner}: no samples (empty y_true)")
    return float(np.mean(y_true == y_pred))


def top_k_accuracy(y_true: ArrayLike, scores: ArrayLike, k: int = 5) -> float:
    """Fraction of samples whose true class is among the k highest scores.

    y_true: (N,); scores: (N, K). A sample counts when fewer than k classes score *strictly* higher
    than its true class, so classes tied at the k-th place are all "in" (tf.math.in_top_k's rule).
    k = 1 is accuracy except on ties.
    """
    owner = "top_k_accuracy"
    scores = _scores(scores, owner)
    n, num_classes = scores.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
        raise ValueError(f"{owner}: k must be an integer in 1..{num_classes} (the number of classes), got {k!r}")
    y_true = _labels(y_true, "y_true", owner, num_classes)
    if y_true.shape[0] != n:
        raise ValueError(f"{owner}: y_true has {y_true.shape[0]} samples but scores have {n}")
    if n == 0:
        raise ValueError(f"{owner}: no samples (empty y_true)")
    true_score = scores[np.arange(n), y_true][:, None]            # (N, 1)
    higher = (scores > true_score).sum(axis=1)                     # (N,) classes that beat the truth
    return float(np.mean(higher < k))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """C: (K, K) int64, C[i, j] = count of samples with true class i and predicted class j."""
    owner = "confusion_matrix"
    num_classes = _num_classes(num_classes, owner)
    y_true, y_pred = _pair(y_true, y_pred, owner, num_classes)
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_divide(num, den):
    """num / den elementwise, 0 where den == 0 (no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _f1(precision, recall):
    return _safe_divide(2 * precision * recall, precision + recall)


def precision_recall_f1(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int,
                        average: str | None = None) -> PrecisionRecallF1:
    """Precision, recall and F1: per class (``average=None``: arrays (K,)) or averaged
    (``"macro"``, ``"micro"``, ``"weighted"``: floats). Definitions and zero-division rule: see the
    module docstring."""
    owner = "precision_recall_f1"
    if average not in (None, "macro", "micro", "weighted"):
        raise ValueError(f"{owner}: average must be None, 'macro', 'micro' or 'weighted', got {average!r}")
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm)                              # (K,)
    predicted = cm.sum(axis=0)                    # (K,) TP + FP
    support = cm.sum(axis=1)                      # (K,) TP + FN
    if average == "micro":
        p = float(_safe_divide(tp.sum(), predicted.sum()))
        r = float(_safe_divide(tp.sum(), support.sum()))
        return PrecisionRecallF1(p, r, float(_f1(p, r)))
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _f1(precision, recall)
    if average is None:
        return PrecisionRecallF1(precision, recall, f1)
    if average == "macro":
        return PrecisionRecallF1(float(precision.mean()), float(recall.mean()), float(f1.mean()))
    weights = support / support.sum() if support.sum() else np.zeros(len(support))
    return PrecisionRecallF1(float(precision @ weights), float(recall @ weights), float(f1 @ weights))


def classification_report(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int,
                          class_names: Sequence[str] | None = None, digits: int = 3) -> str:
    """A text table: per-class precision, recall, F1 and support; then accuracy, macro and
    weighted averages (the layout of scikit-learn's report)."""
    owner = "classification_report"
    num_classes = _num_classes(num_classes, owner)
    if class_names is None:
        class_names = [str(k) for k in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"{owner}: {len(class_names)} class_names for num_classes={num_classes}")
    p, r, f = precision_recall_f1(y_true, y_pred, num_classes)
    support = confusion_matrix(y_true, y_pred, num_classes).sum(axis=1)
    total = int(support.sum())
    width = max(len("weighted avg"), *(len(c) for c in class_names))
    head = f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1-score':>9}  {'support':>9}"

    def row(name, prec, rec, f1, count):
        return f"{name:>{width}}  {prec:>9.{digits}f}  {rec:>9.{digits}f}  {f1:>9.{digits}f}  {count:>9d}"

    lines = [head, ""]
    lines += [row(class_names[k], p[k], r[k], f[k], int(support[k])) for k in range(num_classes)]
    lines.append("")
    acc = accuracy(y_true, y_pred) if total else 0.0
    lines.append(f"{'accuracy':>{width}}  {'':>9}  {'':>9}  {acc:>9.{digits}f}  {total:>9d}")
    for avg, name in (("macro", "macro avg"), ("weighted", "weighted avg")):
        lines.append(row(name, *precision_recall_f1(y_true, y_pred, num_classes, avg), total))
    return "\n".join(lines) + "\n"
