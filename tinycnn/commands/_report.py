"""The test report ``tinycnn train`` and ``tinycnn evaluate`` print, and its JSON form.

    test accuracy 0.9812 (4906 / 5000), loss 0.0581
    per-class precision / recall / F1 (tinycnn.metrics.classification_report)
    confusion matrix: rows = true class, columns = predicted class (printed up to 20 classes)
"""
from __future__ import annotations

import numpy as np

from .. import metrics as M

MAX_PRINTED_CLASSES = 20


def report_dict(labels: np.ndarray, predictions: np.ndarray, loss: float, classes) -> dict:
    """Everything the report shows, JSON-able. labels, predictions: int (N,)."""
    k = len(classes)
    p, r, f = M.precision_recall_f1(labels, predictions, k)            # (K,) each
    cm = M.confusion_matrix(labels, predictions, k)                     # (K, K)
    macro = M.precision_recall_f1(labels, predictions, k, "macro")
    return {
        "accuracy": M.accuracy(labels, predictions), "loss": float(loss),
        "samples": int(len(labels)), "correct": int(np.count_nonzero(labels == predictions)),
        "classes": list(classes),
        "per_class": {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                      "support": cm.sum(axis=1).tolist()},
        "macro": {"precision": macro.precision, "recall": macro.recall, "f1": macro.f1},
        "confusion_matrix": cm.tolist(),
    }


def confusion_text(cm: np.ndarray, classes) -> str:
    """Rows: true class ("index name"; the index alone for digits), columns: predicted class (index)."""
    k = len(classes)
    names = [str(c) if str(c) == str(i) else f"{i} {c}" for i, c in enumerate(classes)]
    corner = "true \\ predicted"
    name_w = max(len(corner), *(len(n) for n in names))
    cell = max(len(str(int(cm.max()))), len(str(k - 1))) + 1
    head = f"{corner:>{name_w}} " + "".join(f"{j:>{cell}}" for j in range(k))
    rows = [f"{names[i]:>{name_w}} " + "".join(f"{int(v):>{cell}}" for v in cm[i]) for i in range(k)]
    return "\n".join([head, *rows])


def print_report(rep: dict, print_fn=print, title: str = "test") -> None:
    """Print the accuracy line, the per-class table and (up to 20 classes) the confusion matrix."""
    classes = rep["classes"]
    print_fn(f"{title} accuracy {rep['accuracy']:.4f} ({rep['correct']} / {rep['samples']} images), "
             f"loss {rep['loss']:.4f}")
    # the per-class table depends on the counts only: rebuild (label, prediction) pairs from them
    cm = np.asarray(rep["confusion_matrix"])                            # (K, K)
    labels = np.repeat(np.arange(len(classes)), cm.sum(axis=1))        # (N,)
    predictions = np.concatenate([np.repeat(np.arange(len(classes)), row) for row in cm])   # (N,)
    print_fn("")
    print_fn(M.classification_report(labels, predictions, len(classes), class_names=classes).rstrip())
    print_fn("")
    if len(classes) <= MAX_PRINTED_CLASSES:
        print_fn("confusion matrix (rows: true class, columns: predicted class)")
        print_fn(confusion_text(cm, classes))
    else:
        print_fn(f"confusion matrix: {len(classes)} classes, too many to print; it is in metrics.json "
                 f"(and confusion_matrix.png with matplotlib)")
