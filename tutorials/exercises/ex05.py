"""Checks for the exercises of tutorial 5 (what did the network learn)."""
from __future__ import annotations

import numpy as np

import tinycnn as tc

from . import exercise


@exercise("5.1 (the confusion matrix)")
def check_confusion(confusion) -> list[str]:
    """confusion(y_true, y_pred, k) -> int array (k, k), rows: truth, columns: prediction."""
    rng = np.random.default_rng(7)
    problems = []
    for n, k in [(100, 3), (1000, 10), (7, 5)]:
        y_true, y_pred = rng.integers(0, k, n), rng.integers(0, k, n)
        expected = tc.metrics.confusion_matrix(y_true, y_pred, k)
        got = np.asarray(confusion(y_true, y_pred, k))
        if got.shape != (k, k) or not np.array_equal(got, expected):
            problems.append(f"n={n}, k={k}: your matrix differs from tc.metrics.confusion_matrix "
                            f"(got shape {got.shape}, row sums {got.sum(axis=-1).tolist() if got.ndim == 2 else '?'},"
                            f" expected row sums {expected.sum(axis=1).tolist()})")
    return problems


@exercise("5.2 (precision, recall and F1 from the confusion matrix)")
def check_prf(precision_recall_f1) -> list[str]:
    """precision_recall_f1(cm) -> three arrays (k,) from a confusion matrix (rows truth, columns
    prediction); a class never predicted has precision 0, a class never present has recall 0, and F1 is 0
    where precision + recall is 0."""
    problems = []
    cm = np.array([[50, 3, 0, 0], [10, 40, 0, 0], [5, 5, 0, 0], [0, 0, 0, 0]])
    tp = np.diag(cm).astype(float)
    pred, true = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, pred, out=np.zeros(4), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros(4), where=true > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(4), where=precision + recall > 0)
    got = [np.asarray(a, dtype=float) for a in precision_recall_f1(cm)]
    for name, g, e in zip(("precision", "recall", "F1"), got, (precision, recall, f1)):
        if g.shape != e.shape or not np.allclose(g, e, rtol=1e-12, atol=0):
            problems.append(f"{name}: you give {np.round(g, 4).tolist()}, expected {np.round(e, 4).tolist()}")
    return problems


@exercise("5.3 (the saliency of a linear model is its weight row)")
def check_saliency(saliency) -> list[str]:
    """saliency(model, x, classes) -> d s_c / d x for each image of x (N, ...) and its class in classes,
    with ONE backward pass of the model. For a model that is linear in x, the answer is known exactly."""
    rng = np.random.default_rng(8)
    problems = []
    model = tc.Sequential(tc.Flatten(), tc.Dense(12, 4, dtype=np.float64, rng=rng))
    x = rng.standard_normal((5, 1, 3, 4))
    classes = rng.integers(0, 4, 5)
    got = np.asarray(saliency(model, x, classes))
    expected = model[1].weight.data[classes].reshape(5, 1, 3, 4)           # d (W x + b)_c / d x = W[c]
    if got.shape != x.shape:
        problems.append(f"your saliency has shape {got.shape}, the images {x.shape}")
    elif not np.allclose(got, expected, rtol=1e-12, atol=1e-15):
        problems.append("for a Dense model the saliency of class c must be row c of the weight matrix; yours is not")
    return problems
